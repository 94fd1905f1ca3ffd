"""Running simulations and storing them: the layer between the front doors and the core.

The measuring itself (facts, scenario metrics, statistics) lives in ``core`` so the browser
build reuses it; this module adds what needs the server side: GARCH fits, the run store, and
(later) many seeds in parallel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from marl_market.core.config import MarketConfig, config_to_dict
from marl_market.core.facts import StylisedFacts
from marl_market.core.market import Market, simulate
from marl_market.core.results import RunResult
from marl_market.core.scenarios import (
    Scenario,
    baseline_metrics,
    measure,
    run_with_baseline,
    summarise,
)
from marl_market.core.takers import ExecutionTask
from marl_market.lab.analysis import facts_with_garch
from marl_market.lab.engine import run_tasks
from marl_market.store import RunRecord, RunStore, code_version, make_run_id

# Returns are sampled every 5 steps by default: long enough that the bid-ask bounce of a
# one-tick mid move no longer dominates (raw ACF at 1 step is strongly negative), short enough
# to keep thousands of returns in a default run and to see clustering at short lags.
DEFAULT_RETURN_INTERVAL = 5


@dataclass
class SimulationOutcome:
    """A simulation's run ID, its facts, and the full record when it was computed now."""

    run_id: str
    facts: StylisedFacts
    cached: bool  # True when the run was already stored and was not recomputed
    result: RunResult | None = None
    market: dict = field(default_factory=dict)  # ``market_summary``: per asset, regimes

    @property
    def asset_facts(self) -> list[StylisedFacts]:
        """The stylised facts of every asset (asset 0's are ``facts``)."""
        return [StylisedFacts.from_dict(a["facts"]) for a in self.market.get("assets", [])]


def market_summary(result: RunResult, return_interval: int, facts: StylisedFacts) -> dict:
    """What a multi-asset, regime-switching run with fees and execution takers adds to its
    facts: every book's facts, the correlation of the simulated fundamentals' log returns, how
    much of the run was stressed, each taker's execution and the venue's charges. ``facts`` are
    book 0's, already computed.

    A market listing its assets on several venues (``MarketConfig.listings``) has a book per
    asset and venue: each entry of ``assets`` then also names its ``fundamental`` (the asset it
    trades) and its ``venue``, and the correlation is over the fundamentals (venues of one asset
    share theirs, so a matrix over books would repeat rows of ones).
    """
    n_books = result.config.n_assets
    assets = [{"asset": 0, "facts": facts.as_dict()}] + [
        {"asset": a, "facts": facts_of(result, return_interval, a).as_dict()}
        for a in range(1, n_books)
    ]
    listings = result.config.listings
    first_book = list(range(n_books))  # the book whose fair value stands for each fundamental
    if listings is not None:
        first_book = [list(listings).index(f) for f in range(max(listings) + 1)]
        for entry, fundamental in zip(assets, listings, strict=True):
            entry["fundamental"] = int(fundamental)
            entry["venue"] = list(listings)[: entry["asset"]].count(fundamental)
    fair = np.array([result.asset_series("fair_value", a) for a in first_book])
    returns = np.diff(np.log(fair), axis=1)
    correlation = np.corrcoef(returns) if len(first_book) > 1 else np.ones((1, 1))
    regime = result.asset_series("regime", 0)
    return {
        "assets": assets,
        "fundamental_correlation": np.atleast_2d(correlation).round(6).tolist(),
        "regime_stress_share": float(regime.mean()) if len(regime) else 0.0,
        "regime_switches": int(np.count_nonzero(np.diff(regime))),
        "execution": execution_of(result),
        "fees": fees_of(result),
    }


def execution_of(result: RunResult) -> list[dict]:
    """``Market.execution_report`` of a finished run, from its record: per execution taker
    (fixed and learning) agent, asset, style, side, target, filled, horizon, arrival mid and
    implementation shortfall in bp (None before a fill).

    The parent orders and their arrival mids are those of the market as built from the run's
    config and seed (deterministic, and cheap: the book is seeded, nothing is played); the fills
    are the run's end-of-run positions and cash.
    """
    population = result.config.population
    if not population.takers and "taker" not in population.learners:
        return []
    report = Market(result.config, result.seed, record=False).execution_report()
    cash = result.agents["cash"]
    positions = result.positions
    held = {
        (int(agent), int(asset)): int(qty)
        for agent, asset, qty in zip(
            positions["agent_id"], positions["asset"], positions["inventory"], strict=True
        )
    }
    for row in report:
        task = ExecutionTask(
            row["agent"],
            row["asset"],
            1 if row["side"] == "buy" else -1,
            row["target"],
            row["horizon"],
            row["arrival_mid"],
        )
        position = held[(row["agent"], row["asset"])]
        shortfall = task.shortfall_bp(position, float(cash[row["agent"]]))
        row["filled"] = task.filled(position)
        row["shortfall_bp"] = round(shortfall, 6) if np.isfinite(shortfall) else None
    return report


def fees_of(result: RunResult) -> dict[str, float]:
    """The venue's charges over the run, in ticks x shares: taker fees paid by the aggressors,
    maker rebates paid to the resting side, and the Tobin tax paid by both."""
    agents = result.agents
    return {
        "taker_fees": round(float(np.sum(agents["fees_paid"])), 6),
        "maker_rebates": round(float(np.sum(agents["rebates_received"])), 6),
        "taxes": round(float(np.sum(agents["taxes_paid"])), 6),
    }


def simulation_config(config: MarketConfig, return_interval: int) -> dict:
    """The JSON config stored with a simulation (its run ID is a hash of this and the seed)."""
    return {"market": config_to_dict(config), "analysis": {"return_interval": return_interval}}


def facts_of(result: RunResult, return_interval: int, asset: int = 0) -> StylisedFacts:
    """Stylised facts of one asset of a run, GARCH persistence included."""
    return facts_with_garch(
        result.asset_series("mid", asset),
        result.asset_series("spread", asset),
        result.asset_series("volume", asset),
        return_interval,
    )


def facts_metrics(facts: StylisedFacts) -> dict[str, float]:
    """Flat scalar metrics for the ``metrics`` table (lists are kept in the run's summary)."""
    metrics = {
        "excess_kurtosis": facts.excess_kurtosis,
        "hill_tail_index": facts.hill_tail_index,
        "mean_spread_ticks": facts.mean_spread_ticks,
        "mean_volume": facts.mean_volume,
        "return_std": facts.return_std,
    }
    for lag in (1, 5, 10, 50):
        if lag <= len(facts.acf_abs):
            metrics[f"acf_abs_lag{lag}"] = facts.acf_abs[lag - 1]
            metrics[f"acf_raw_lag{lag}"] = facts.acf_raw[lag - 1]
    if facts.garch_persistence is not None:
        metrics["garch_persistence"] = facts.garch_persistence
    return metrics


def game_metrics(market: dict) -> dict[str, float]:
    """The venue's charges and the takers' mean shortfall as metrics, for runs that have them
    (a run without fees or takers keeps the metrics it had before these existed)."""
    metrics = {
        name: value
        for name, value in (market.get("fees") or {}).items()
        if value  # nonzero
    }
    execution = market.get("execution") or []
    shortfalls = [row["shortfall_bp"] for row in execution if row["shortfall_bp"] is not None]
    if shortfalls:
        metrics["taker_shortfall_bp"] = float(np.mean(shortfalls))
    return metrics


def simulation_run_id(config: MarketConfig, seed: int, return_interval: int) -> str:
    """The deterministic run ID of a simulation (what ``marlsim simulate`` stores it under)."""
    stored = simulation_config(config, return_interval)
    return make_run_id("simulate", stored, seed, code_version())


def store_simulation(
    store: RunStore,
    config: MarketConfig,
    seed: int,
    return_interval: int,
    result: RunResult,
    facts: StylisedFacts,
    market: dict | None = None,
) -> tuple[str, bool]:
    """Store a simulation as ``marlsim simulate`` does; return (run ID, whether it was new)."""
    run_id = simulation_run_id(config, seed, return_interval)
    if store.get_run(run_id) is not None:
        return run_id, False
    store.save_runs([simulation_record(config, seed, return_interval, result, facts, market)])
    return run_id, True


def simulation_record(
    config: MarketConfig,
    seed: int,
    return_interval: int,
    result: RunResult,
    facts: StylisedFacts,
    market: dict | None = None,
) -> RunRecord:
    """A simulation as the run ``marlsim simulate`` stores (kind ``simulate``), ready to save
    (a sweep's worker builds it, its driver saves it)."""
    market = market or market_summary(result, return_interval, facts)
    return RunRecord(
        simulation_run_id(config, seed, return_interval),
        "simulate",
        seed,
        simulation_config(config, return_interval),
        result,
        {**facts_metrics(facts), **game_metrics(market)},
        summary={"facts": facts.as_dict(), "counters": result.counters, "market": market},
    )


def run_simulation(
    config: MarketConfig,
    seed: int,
    return_interval: int = DEFAULT_RETURN_INTERVAL,
    store: RunStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationOutcome:
    """Simulate (or fetch the stored run of) ``config`` with ``seed`` and compute its facts."""
    run_id = simulation_run_id(config, seed, return_interval)
    if store is not None:
        row = store.get_run(run_id)
        if row is not None:
            facts = StylisedFacts.from_dict(row["summary"]["facts"])
            return SimulationOutcome(run_id, facts, True, market=row["summary"].get("market", {}))
    result = simulate(config, seed, progress)
    facts = facts_of(result, return_interval)
    market = market_summary(result, return_interval, facts)
    if store is not None:
        store_simulation(store, config, seed, return_interval, result, facts, market)
    return SimulationOutcome(run_id, facts, cached=False, result=result, market=market)


# ------------------------------------------------------------------------------ scenarios
SCENARIO_STEPS = 5_000  # default run length of scenario runs (compare: 20 seeds x 7 runs)
CRASH_ABSENCE = 500  # default steps the makers stay away in a flash crash


@dataclass
class ScenarioOutcome:
    """The result of ``run_scenarios``: statistics per scenario and every run's ID."""

    run_id: str | None  # the compare row (None when a single scenario ran)
    kinds: list[str]
    seeds: list[int]
    steps: int
    summaries: dict[str, dict]  # kind -> metric -> {mean, ci_low, ci_high, sign_fraction, ...}
    per_seed: dict[str, list[dict]]  # kind -> the scenario's metrics for each seed
    run_ids: dict[str, list[str]]  # "baseline" and each kind -> one run ID per seed
    cached: bool = False
    # A market of several books: per book, {"asset": book, "summaries": kind -> metric -> ...}
    # (book 0's are ``summaries``); empty for one book, whose JSON stays as it was.
    assets: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        payload = {
            "run_id": self.run_id,
            "kinds": self.kinds,
            "seeds": self.seeds,
            "steps": self.steps,
            "run_ids": self.run_ids,
            "cached": self.cached,
            "per_seed": self.per_seed,
        }
        if self.assets:
            payload["assets"] = self.assets
        payload.update(self.summaries)
        return payload


def resolve_scenario(
    kind: str,
    steps: int,
    pull_at: int | None = None,
    return_at: int | None = None,
    tax_bp: float = 10.0,
) -> Scenario:
    """A scenario of ``kind`` with the CLI's timing options and defaults, checked for ``steps``.

    The flash crash pulls the makers at ``pull_at`` (default: mid-run) and brings them back at
    ``return_at`` (default: ``CRASH_ABSENCE`` steps later, if the run is long enough); every
    other scenario starts at ``pull_at`` too.
    """
    start = steps // 2 if pull_at is None else pull_at
    end = None
    if kind == "flash_crash":
        end = return_at if return_at is not None else start + CRASH_ABSENCE
        if return_at is None and end >= steps:
            end = None
    return Scenario(kind, start_at=start, end_at=end, tax_bp=tax_bp).resolved(steps)


def _scenario_config(config: MarketConfig, scenario: Scenario | None) -> dict:
    stored = {"market": config_to_dict(config)}
    if scenario is not None:
        stored["scenario"] = dataclasses.asdict(scenario)
    return stored


class _OneBook:
    """A run seen through one of its books: ``asset_series`` reads book ``book`` whichever
    asset is asked for, so ``core.scenarios.measure`` (which measures asset 0) measures it."""

    def __init__(self, result: RunResult, book: int):
        self._result = result
        self._book = book

    def asset_series(self, column: str, asset: int = 0) -> np.ndarray:
        return self._result.asset_series(column, self._book)


def _measure_pairs(
    runs: list[RunResult], scenarios: list[Scenario], baseline: RunResult, book: int = 0
) -> list[tuple[dict, dict]]:
    """(scenario metrics, baseline metrics) of every scenario on one book."""
    if book:
        baseline = _OneBook(baseline, book)
        runs = [_OneBook(run, book) for run in runs]
    return [
        (measure(run, scenario, baseline), baseline_metrics(baseline, scenario))
        for run, scenario in zip(runs, scenarios, strict=True)
    ]


def _run_one_seed(config: MarketConfig, scenarios: list[Scenario], seed: int) -> tuple:
    """Worker: the baseline and every scenario for one seed (common random numbers), measured
    on book 0 and, in a market of several books, on each of the others too."""
    baseline, runs = run_with_baseline(config, scenarios, seed)
    pairs = _measure_pairs(runs, scenarios, baseline)
    others = [_measure_pairs(runs, scenarios, baseline, b) for b in range(1, config.n_assets)]
    return seed, baseline, runs, pairs, others


def scenario_run_id(config: MarketConfig, scenario: Scenario, seed: int) -> str:
    """The run ID a scenario run of ``config`` and ``seed`` is stored under."""
    return make_run_id("scenario", _scenario_config(config, scenario), seed, code_version())


def scenario_records(
    config: MarketConfig,
    scenarios: list[Scenario],
    seed: int,
    baseline: RunResult,
    runs: list[RunResult],
    pairs: list[tuple[dict, dict]],
) -> list[RunRecord]:
    """One seed's same-seed baseline (first) and scenario runs, as the runs to store: each
    scenario run with its measured metrics, its interventions and its baseline's ID."""
    base_config = _scenario_config(config, None)
    base_id = make_run_id("baseline", base_config, seed, code_version())
    records = [RunRecord(base_id, "baseline", seed, base_config, baseline, {})]
    for scenario, run, (metrics, _) in zip(scenarios, runs, pairs, strict=True):
        numeric = {k: v for k, v in metrics.items() if v is not None}
        summary = {
            "kind": scenario.kind,
            "metrics": metrics,
            "baseline_run_id": base_id,
            "interventions": run.interventions,  # the stored config is the initial one
        }
        records.append(
            RunRecord(
                scenario_run_id(config, scenario, seed),
                "scenario",
                seed,
                _scenario_config(config, scenario),
                run,
                numeric,
                summary,
                base_id,
            )
        )
    return records


def run_one_seed(config: MarketConfig, scenarios: list[Scenario], seed: int) -> list[RunRecord]:
    """The baseline and every scenario for one seed (common random numbers), measured on book
    0, as the runs to store (``scenario_records``)."""
    _, baseline, runs, pairs, _ = _run_one_seed(config, scenarios, seed)
    return scenario_records(config, scenarios, seed, baseline, runs, pairs)


def run_scenarios(
    config: MarketConfig,
    scenarios: list[Scenario],
    seeds: list[int],
    store: RunStore | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScenarioOutcome:
    """Run each scenario and its baseline on every seed, measure, summarise, and store.

    Seeds run on ``engine.run_tasks`` (a process pool over all cores by default, as sweeps
    do); workers return results and only this process writes the database, in one
    transaction for the whole comparison.
    """
    kinds = [s.kind for s in scenarios]
    is_compare = len(scenarios) > 1
    compare_config = {
        **_scenario_config(config, None),
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
        "seeds": seeds,
    }
    compare_id = make_run_id("compare", compare_config, None, code_version())
    if store is not None and is_compare:
        row = store.get_run(compare_id)
        if row is not None:
            s = row["summary"]
            return ScenarioOutcome(
                compare_id, kinds, seeds, config.steps, s["summaries"], s["per_seed"],
                s["run_ids"], cached=True, assets=s.get("assets", []),
            )  # fmt: skip

    by_seed = {}
    calls = [(config, scenarios, seed) for seed in seeds]
    for done, (_, outcome) in enumerate(run_tasks(_run_one_seed, calls, workers), 1):
        if isinstance(outcome, BaseException):
            raise outcome  # a comparison is all its seeds or nothing
        seed, *rest = outcome
        by_seed[seed] = rest
        if progress is not None:
            progress(done, len(seeds))

    run_ids: dict[str, list[str]] = {"baseline": [], **{k: [] for k in kinds}}
    per_seed: dict[str, list[dict]] = {k: [] for k in kinds}
    records = []
    for seed in seeds:
        baseline, runs, pairs, _ = by_seed[seed]
        seed_records = scenario_records(config, scenarios, seed, baseline, runs, pairs)
        records += seed_records
        run_ids["baseline"].append(seed_records[0].run_id)
        for scenario, record in zip(scenarios, seed_records[1:], strict=True):
            run_ids[scenario.kind].append(record.run_id)
            per_seed[scenario.kind].append({"seed": seed, **record.summary["metrics"]})
    summaries = {
        s.kind: summarise(s.kind, [by_seed[seed][2][i] for seed in seeds])
        for i, s in enumerate(scenarios)
    }
    assets = []
    if config.n_assets > 1:
        assets = [{"asset": 0, "summaries": summaries}] + [
            {
                "asset": book,
                "summaries": {
                    s.kind: summarise(s.kind, [by_seed[seed][3][book - 1][i] for seed in seeds])
                    for i, s in enumerate(scenarios)
                },
            }
            for book in range(1, config.n_assets)
        ]
    outcome = ScenarioOutcome(
        compare_id if is_compare else None, kinds, seeds, config.steps, summaries, per_seed,
        run_ids, assets=assets,
    )  # fmt: skip
    if store is not None:
        if is_compare:
            summary = {"summaries": summaries, "per_seed": per_seed, "run_ids": run_ids}
            if assets:
                summary["assets"] = assets
            records.append(
                RunRecord(compare_id, "compare", None, compare_config, None, {}, summary)
            )
        store.save_runs(records)
    return outcome
