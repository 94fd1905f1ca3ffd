"""What the lab's pages and its HTML report do with runs, kept out of the UI files.

- ``run_market``: simulate a market with order-book snapshots and store it under the same run ID
  ``marlsim simulate`` gives it;
- ``spread_vs_makers``: the spread as market makers are added (stored runs, so it is computed
  once per database);
- ``open_run`` / ``run_facts`` / ``replay_book``: a stored run's tables, facts and (by replaying
  it) its order book;
- ``export_zip`` and ``share``: a run as Parquet files in a zip, and the query and command that
  reopen it;
- ``compare_scenarios``: scenarios against paired baselines over seeds, stored;
- ``execution`` / ``execution_fills`` / ``reward_rows`` / ``position_rows``: what the execution
  takers did and why every agent earned what it earned.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marl_market.core.facts import StylisedFacts, log_returns, mean_ci
from marl_market.core.results import RunResult
from marl_market.core.scenarios import Scenario
from marl_market.lab.analysis import facts_with_garch
from marl_market.lab.experiments import (
    DEFAULT_RETURN_INTERVAL,
    ScenarioOutcome,
    execution_of,
    facts_of,
    fees_of,
    resolve_scenario,
    run_scenarios,
    run_simulation,
    simulation_run_id,
    store_simulation,
)
from marl_market.lab.snapshots import BookSnapshots, simulate_with_snapshots
from marl_market.store import RunStore, StoreError, code_version
from marl_market.store.records import ScenarioRequest, SimulateRequest, parse_config

Progress = Callable[[int, int], None]

#: Runs longer than this are not replayed for their order book (a replay is a full simulation).
REPLAY_MAX_STEPS = 50_000
SPREAD_MAKERS = (1, 2, 3, 4)


# ------------------------------------------------------------------------------ a new market
@dataclass
class MarketRun:
    """A simulated market with its facts and book snapshots, and where it is stored."""

    run_id: str
    seed: int
    return_interval: int
    facts: StylisedFacts
    result: RunResult
    snapshots: BookSnapshots
    newly_stored: bool  # False when the store already had this run (or there is no store)
    seconds: float  # simulation time

    @property
    def kinds(self) -> np.ndarray:
        """Agent type by agent ID."""
        return self.result.agents["kind"]


def run_market(
    request: SimulateRequest,
    store: RunStore | None = None,
    snapshot_every: int | None = None,
    progress: Progress | None = None,
) -> MarketRun:
    """Simulate ``request`` with book snapshots and store the run if it is not stored yet.

    Stored by ``experiments.store_simulation``, like ``marlsim simulate``, so the same options
    find the same run. It is always simulated, even when stored, because the book snapshots are
    not in the database; at 5,000 steps that takes well under a second.
    """
    # Why not run_simulation: it builds its own Market, so the snapshot recorder cannot ride
    # along, and simulating twice would double the cost of the Market page.
    config = request.to_config()
    started = time.perf_counter()
    result, snapshots = simulate_with_snapshots(
        config, request.seed, every=snapshot_every, progress=progress
    )
    seconds = time.perf_counter() - started
    facts = facts_of(result, request.return_interval)
    if store is not None:
        run_id, newly_stored = store_simulation(
            store, config, request.seed, request.return_interval, result, facts
        )
    else:
        run_id = simulation_run_id(config, request.seed, request.return_interval)
        newly_stored = False
    return MarketRun(
        run_id,
        request.seed,
        request.return_interval,
        facts,
        result,
        snapshots,
        newly_stored,
        seconds,
    )


def returns_of(mid: np.ndarray, return_interval: int) -> np.ndarray:
    """Log returns of a mid series every ``return_interval`` steps (empty if too short)."""
    if len(mid) <= return_interval or not np.all(np.isfinite(mid) & (mid > 0)):
        return np.zeros(0)
    return log_returns(mid, return_interval)


# ------------------------------------------------------------------------------ the game
def execution(result: RunResult) -> list[dict]:
    """Every execution taker's parent order and how it went (``experiments.execution_of``)."""
    return execution_of(result)


def fees(result: RunResult) -> dict[str, float]:
    """The venue's charges over the run: taker fees, maker rebates, taxes (``fees_of``)."""
    return fees_of(result)


def execution_fills(result: RunResult, order: dict) -> dict[str, np.ndarray]:
    """One taker's fills (an ``execution`` row): shares filled per step that it traded and the
    cumulative total, from the run's trades of that agent on that asset and side."""
    trades = result.trades
    side = "buy_agent" if order["side"] == "buy" else "sell_agent"
    mine = (trades["asset"] == order["asset"]) & (trades[side] == order["agent"])
    steps, where = np.unique(trades["step"][mine], return_inverse=True)
    qty = np.bincount(where, weights=trades["qty"][mine], minlength=len(steps)).astype(np.int64)
    return {"step": steps, "qty": qty, "cumulative": np.cumsum(qty)}


# The reward table's columns: the reward's terms (``core.results.REWARD_COMPONENTS``; mtm is the
# PnL), the reward, and the charges that are already inside the PnL.
REWARD_TABLE = {
    "pnl": "pnl",
    "inventory_penalty": "inventory penalty",
    "liquidity_bonus": "liquidity bonus",
    "delay_penalty": "delay",
    "unhedged_penalty": "unhedged",
    "reward": "reward",
    "fees_paid": "fees paid",
    "rebates_received": "rebates",
    "taxes_paid": "taxes",
}


def reward_rows(result: RunResult) -> list[dict]:
    """One row per agent: its type, policy and every term of its reward (spec 000), so the
    reward reads as pnl + inventory penalty + liquidity bonus + delay + unhedged."""
    agents = result.agents
    return [
        {
            "agent": int(agent),
            "kind": str(agents["kind"][agent]),
            "policy": str(agents["policy"][agent]),
            # + 0.0: a term that is zero for this type shows as 0, not -0
            **{label: float(agents[column][agent]) + 0.0 for column, label in REWARD_TABLE.items()},
        }
        for agent in agents["agent_id"]
    ]


def position_rows(result: RunResult) -> list[dict]:
    """One row per agent: its end-of-run inventory of every asset and their sum."""
    positions = result.positions
    kinds = result.agents["kind"]
    n_assets = result.config.n_assets
    held = np.zeros((len(kinds), n_assets), dtype=np.int64)
    held[positions["agent_id"], positions["asset"]] = positions["inventory"]
    return [
        {
            "agent": agent,
            "kind": str(kinds[agent]),
            **{f"asset {a}": int(held[agent, a]) for a in range(n_assets)},
            "total": int(held[agent].sum()),
        }
        for agent in range(len(kinds))
    ]


# ------------------------------------------------------------------------------ spread vs makers
@dataclass
class SpreadCurve:
    """Mean spread by number of market makers (over ``seeds``), with CIs when seeds > 1."""

    makers: np.ndarray
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    seeds: list[int]
    run_ids: dict[int, list[str]] = field(default_factory=dict)


def spread_vs_makers(
    request: SimulateRequest,
    makers: tuple[int, ...] = SPREAD_MAKERS,
    n_seeds: int = 1,
    store: RunStore | None = None,
    progress: Progress | None = None,
) -> SpreadCurve:
    """The mean spread of ``request``'s market with 1, 2, ... makers (other agents unchanged).

    Each point is an ordinary simulation run, stored like ``marlsim simulate`` stores it, so a
    second call with the same settings reads the stored facts instead of simulating.
    """
    seeds = list(range(request.seed, request.seed + n_seeds))
    total = len(makers) * len(seeds)
    means, lows, highs = [], [], []
    run_ids: dict[int, list[str]] = {}
    done = 0
    for count in makers:
        values = []
        for seed in seeds:
            variant = request.model_copy(update={"makers": count, "seed": seed})
            outcome = run_simulation(
                variant.to_config(), seed, variant.return_interval, store=store
            )
            values.append(outcome.facts.mean_spread_ticks)
            run_ids.setdefault(count, []).append(outcome.run_id)
            done += 1
            if progress is not None:
                progress(done, total)
        finite = [v for v in values if np.isfinite(v)]
        mean, low, high = mean_ci(finite) if finite else (np.nan, np.nan, np.nan)
        means.append(mean)
        lows.append(low)
        highs.append(high)
    return SpreadCurve(
        np.array(makers), np.array(means), np.array(lows), np.array(highs), seeds, run_ids
    )


# ------------------------------------------------------------------------------ stored runs
@dataclass
class StoredRun:
    """A stored run: its ``runs`` row (config and summary parsed), tables and metrics.

    Summary-only runs (a ``compare``) have empty tables.
    """

    row: dict
    steps: dict[str, np.ndarray]
    agents: dict[str, np.ndarray]
    agent_steps: dict[str, np.ndarray]
    metrics: dict[str, float]

    @property
    def run_id(self) -> str:
        return self.row["run_id"]

    @property
    def kind(self) -> str:
        return self.row["kind"]

    @property
    def has_steps(self) -> bool:
        return len(self.steps.get("step", ())) > 0

    @property
    def return_interval(self) -> int:
        """The run's return interval (simulations store theirs; others use the default)."""
        analysis = (self.row.get("config") or {}).get("analysis") or {}
        return int(analysis.get("return_interval", DEFAULT_RETURN_INTERVAL))

    def asset_series(self, column: str, asset: int = 0) -> np.ndarray:
        return self.steps[column][self.steps["asset"] == asset]


def open_run(store: RunStore, run_id: str) -> StoredRun:
    """Everything stored for ``run_id``; ``StoreError`` if there is no such finished run."""
    run_id = run_id.strip()
    row = store.get_run(run_id)
    if row is None:
        raise StoreError(f"no run {run_id!r} in {store.path}")
    return StoredRun(
        row=row,
        steps=store.load_steps(run_id),
        agents=store.load_agents(run_id),
        agent_steps=store.load_agent_steps(run_id),
        metrics=store.load_metrics(run_id),
    )


def run_facts(run: StoredRun) -> StylisedFacts | None:
    """The run's stylised facts: stored ones if any, else computed from its steps (or None)."""
    stored = (run.row.get("summary") or {}).get("facts")
    if stored:
        return StylisedFacts.from_dict(stored)
    if not run.has_steps:
        return None
    try:
        return facts_with_garch(
            run.asset_series("mid"),
            run.asset_series("spread"),
            run.asset_series("volume"),
            run.return_interval,
        )
    except ValueError:  # too few returns, or a mid that is not positive
        return None


def replay_book(run: StoredRun, every: int | None = None) -> BookSnapshots:
    """The order book of a stored run, rebuilt by running it again with snapshots.

    Runs are deterministic given config, seed (and scenario), so a replay is the same run; that
    is checked against the stored mid prices, and a mismatch (the model changed since the run
    was stored) raises ``ValueError`` rather than showing a book that never existed.
    """
    config_json = run.row.get("config") or {}
    if run.kind not in ("simulate", "baseline", "scenario") or "market" not in config_json:
        raise ValueError(f"a {run.kind!r} run has no order book to replay")
    config = parse_config(config_json["market"])
    if config.steps > REPLAY_MAX_STEPS:
        raise ValueError(
            f"the run has {config.steps:,} steps; replays are limited to {REPLAY_MAX_STEPS:,}"
        )
    scenario = None
    if config_json.get("scenario"):
        scenario = Scenario(**config_json["scenario"])
    result, snapshots = simulate_with_snapshots(config, run.row["seed"], every, scenario=scenario)
    if not np.array_equal(result.steps["mid"], run.steps["mid"]):
        raise ValueError(
            f"replaying run {run.run_id} does not reproduce its stored prices (stored with code "
            f"version {run.row.get('code_version')}, this is {code_version()}): the model has "
            "changed since, so its order book cannot be shown"
        )
    return snapshots


def export_zip(store: RunStore, run_id: str) -> bytes:
    """A zip of the run's tables as Parquet files (``<run_id>_<table>.parquet``)."""
    with tempfile.TemporaryDirectory(prefix="marl_market-export-") as tmp:
        paths = store.export_parquet(run_id, tmp)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            # Parquet is already compressed: storing is as small and much faster.
            for path in paths:
                archive.write(path, arcname=Path(path).name)
    return buffer.getvalue()


def export_duckdb(store: RunStore, run_ids: list[str]) -> bytes:
    """The runs as a DuckDB file's bytes, as ``marlsim runs export`` writes it."""
    with tempfile.TemporaryDirectory(prefix="marl_market-export-") as tmp:
        return store.export_runs(run_ids, Path(tmp) / "runs.duckdb").read_bytes()


def import_duckdb(store: RunStore, data: bytes) -> dict[str, list[str]]:
    """Merge an exported DuckDB file (its bytes, e.g. an upload) as ``marlsim runs import``."""
    with tempfile.TemporaryDirectory(prefix="marl_market-import-") as tmp:
        path = Path(tmp) / "upload.duckdb"
        path.write_bytes(data)
        return store.import_runs(path)


def share(run_id: str) -> dict[str, str]:
    """How someone else reopens the run: SQL, the CLI command and the app's query string."""
    return {
        "sql": f"SELECT * FROM steps WHERE run_id = '{run_id}' ORDER BY step",
        "cli": f"marlsim runs show {run_id}",
        "verify": f"marlsim runs verify {run_id}",
        "export": f"marlsim runs export {run_id} --to run_{run_id}.duckdb",
        "report": f"marlsim report {run_id} --out run_{run_id}.html",
        "query_string": f"?run_id={run_id}",
    }


# ------------------------------------------------------------------------------ scenarios
def compare_scenarios(
    request: ScenarioRequest,
    kinds: list[str],
    store: RunStore | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    market: SimulateRequest | None = None,
) -> ScenarioOutcome:
    """Run each scenario of ``kinds`` and its same-seed baseline over ``request``'s seeds.

    Timings and defaults are those of ``marlsim scenario`` (``resolve_scenario``); everything is
    stored in one transaction (``run_scenarios``). ``market``, if given, is the market the
    scenarios run on (assets, venues, correlation, regimes, fees, takers and arbitrageurs, as
    the Market page sets them), with ``request``'s steps and population; the outcome then has
    every book's statistics in ``assets``. Raises ``ValueError`` for an unknown kind or timings
    that do not fit the run.
    """
    if not kinds:
        raise ValueError("choose at least one scenario to compare")
    scenarios = [
        resolve_scenario(k, request.steps, request.pull_at, request.return_at, request.tax_bp)
        for k in kinds
    ]
    return run_scenarios(
        request.to_config(market.to_config() if market is not None else None),
        scenarios,
        request.seed_list,
        store=store,
        workers=workers or request.workers,
        progress=progress,
    )
