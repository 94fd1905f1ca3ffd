"""Parameter sweeps: every scenario x every point of a grid x every seed, one stored run each.

A ``SweepSpec`` names the scenarios (``baseline`` is the plain market, stored as ``marlsim
simulate`` stores it; every other kind is stored as ``marlsim scenario`` stores it, beside its
same-seed baseline), a grid of market parameters (``SWEEP_PARAMS``) and the seeds. Its tasks
run in a process pool over all cores (``backend="local"``) or as Ray tasks on an existing
cluster (``backend="ray"``, ``pip install '.[ray]'``); each returns the runs it made and
only this process writes them to the database, task by task, so an interrupted sweep keeps
everything finished. Run IDs are deterministic and follow the code, so running a sweep again
skips every run already stored. A task that raises is reported with its parameters and the
sweep goes on. The sweep itself is stored as one run of kind ``sweep`` (its spec, and every
task's run ID and metrics, or its error) with an ID of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from marl_market.core.config import MarketConfig
from marl_market.core.market import simulate
from marl_market.core.scenarios import SCENARIO_KINDS
from marl_market.lab.engine import BACKENDS, run_tasks
from marl_market.lab.experiments import (
    DEFAULT_RETURN_INTERVAL,
    SCENARIO_STEPS,
    facts_of,
    resolve_scenario,
    run_one_seed,
    scenario_run_id,
    simulation_record,
    simulation_run_id,
)
from marl_market.store import RunRecord, RunStore, code_version, make_run_id
from marl_market.store.records import SimulateRequest, one_line

BASELINE = "baseline"
SWEEP_KIND = "sweep"
SWEEP_SCENARIOS = (BASELINE, *SCENARIO_KINDS)
SWEEP_PARAMS: dict[str, type] = {
    "makers": int,
    "momentum": int,
    "value": int,
    "noise": int,
    "tobin_tax": float,  # a Tobin tax in force all run long, a fraction of notional
    "taker_fee": float,
    "maker_rebate": float,
    "assets": int,
    "correlation": float,
}
"""The market parameters a sweep can vary, and their types."""


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: a scenario on one grid point with one seed."""

    scenario: str
    params: dict
    seed: int

    def describe(self) -> dict:
        return {"scenario": self.scenario, **self.params, "seed": self.seed}


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs (validated on construction: one ``ValueError`` naming the problem)."""

    scenarios: tuple[str, ...] = (BASELINE,)
    grid: tuple[tuple[str, tuple], ...] = ()
    """(parameter, its values) in the user's order; the sweep runs their Cartesian product."""
    seeds: tuple[int, ...] = (42,)
    steps: int = SCENARIO_STEPS
    return_interval: int = DEFAULT_RETURN_INTERVAL

    def __post_init__(self) -> None:
        if not self.scenarios:
            raise ValueError("choose at least one scenario")
        for kind in self.scenarios:
            if kind not in SWEEP_SCENARIOS:
                raise ValueError(
                    f"unknown scenario {kind!r}: choose from {', '.join(SWEEP_SCENARIOS)}"
                )
        if len(set(self.scenarios)) != len(self.scenarios):
            raise ValueError("a scenario is given twice")
        if not self.seeds:
            raise ValueError("a sweep needs at least one seed")
        names = [name for name, _ in self.grid]
        for name, values in self.grid:
            if name not in SWEEP_PARAMS:
                raise ValueError(
                    f"unknown sweep parameter {name!r}: choose from {', '.join(SWEEP_PARAMS)}"
                )
            if not values:
                raise ValueError(f"{name}: give at least one value")
        if len(set(names)) != len(names):
            raise ValueError("a parameter is swept twice")
        for point in self.points():  # every market of the grid is checked before any runs
            self.config(point, self.seeds[0])
        if self.steps <= 1 or any(s < 0 for s in self.seeds):
            raise ValueError("steps must be > 1 and seeds >= 0")

    def points(self) -> list[dict]:
        """Every combination of the grid's values, the first parameter varying slowest."""
        names = [name for name, _ in self.grid]
        values = [values for _, values in self.grid]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

    def tasks(self) -> list[SweepTask]:
        return [
            SweepTask(scenario, point, seed)
            for point in self.points()
            for scenario in self.scenarios
            for seed in self.seeds
        ]

    def config(self, params: dict, seed: int) -> MarketConfig:
        """The market of one grid point (``marlsim simulate``'s options, so the same market has
        the same run ID there); ``ValueError`` with one line for a bad combination."""
        options = {k: v for k, v in params.items() if k != "tobin_tax"}
        if options.get("correlation") == 0.0:
            options["correlation"] = None  # 0 is no correlation (simulate stores it so too)
        try:
            request = SimulateRequest(
                steps=self.steps, seed=seed, return_interval=self.return_interval, **options
            )
        except ValidationError as error:
            raise ValueError(f"{_point(params)}: {one_line(error)}") from None
        config = request.to_config()
        tax = float(params.get("tobin_tax", 0.0))
        if not 0.0 <= tax < 1.0:
            raise ValueError(f"{_point(params)}: tobin_tax must be a fraction in [0, 1)")
        if tax:
            config = config.replace(rules=dataclasses.replace(config.rules, tobin_tax=tax))
        return config

    def run_id(self, task: SweepTask) -> str:
        """The run ID ``task`` is stored under (known before it runs: stored ones are skipped)."""
        config = self.config(task.params, task.seed)
        if task.scenario == BASELINE:
            return simulation_run_id(config, task.seed, self.return_interval)
        return scenario_run_id(config, self._scenario(task.scenario), task.seed)

    def _scenario(self, kind: str):
        return resolve_scenario(kind, self.steps)

    def to_dict(self) -> dict:
        return {
            "scenarios": list(self.scenarios),
            "grid": [[name, list(values)] for name, values in self.grid],
            "seeds": list(self.seeds),
            "steps": self.steps,
            "return_interval": self.return_interval,
        }


def _point(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "the default market"


def run_task(spec: SweepSpec, task: SweepTask) -> tuple[list[RunRecord], dict]:
    """Worker: play one task; return the runs to store and the task's metrics.

    The baseline's metrics are its stylised facts and market figures (``marlsim simulate``'s);
    a scenario's are the paired measures ``marlsim scenario`` reports against its baseline.
    """
    config = spec.config(task.params, task.seed)
    if task.scenario == BASELINE:
        result = simulate(config, task.seed)
        record = simulation_record(
            config, task.seed, spec.return_interval, result, facts_of(result, spec.return_interval)
        )
        return [record], _floats(record.metrics)
    records = run_one_seed(config, [spec._scenario(task.scenario)], task.seed)
    return records, _floats(records[-1].metrics)


def _floats(metrics) -> dict[str, float]:
    """Metrics as the store keeps them (plain floats), so a run's metrics read the same
    whether it ran now or was read back."""
    return {name: float(value) for name, value in metrics.items()}


@dataclass
class SweepOutcome:
    """What ``run_sweep`` did. ``runs``/``failed`` are the ``--json`` **contract**'s lists."""

    sweep_id: str
    runs: list[dict] = field(default_factory=list)
    """{"run_id", "scenario", "seed", "params", "metrics", "cached"} per finished task."""
    failed: list[dict] = field(default_factory=list)
    """{"params", "error"} per task that raised."""

    @property
    def ran(self) -> int:
        return sum(not run["cached"] for run in self.runs)


def run_sweep(
    spec: SweepSpec,
    store: RunStore,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: str = "local",
    address: str | None = None,
) -> SweepOutcome:
    """Run every task of ``spec`` not stored yet, store each as it finishes, then the sweep.

    ``backend="local"``: ``workers`` processes (default: every core; 1 runs in this process).
    ``backend="ray"``: the same tasks as Ray tasks on the cluster at ``address`` (None: the
    instance this process already joined, else a local one started for the sweep and shut
    down after it); results are identical, run IDs and metrics, since a task depends only on
    its spec and seed. Ctrl-C stops it: finished runs stay stored, the sweep row is not
    written, and running it again picks up where it stopped. Returns the outcome (``sweep_id``
    names the stored sweep).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    sweep_config = spec.to_dict()
    seed = spec.seeds[0]
    outcome = SweepOutcome(make_run_id(SWEEP_KIND, sweep_config, seed, code_version()))
    tasks = spec.tasks()
    pending = []
    results: dict[int, dict] = {}
    for index, task in enumerate(tasks):
        run_id = spec.run_id(task)
        if store.get_run(run_id) is None:
            pending.append(index)
        else:
            results[index] = _entry(task, run_id, store.load_metrics(run_id), cached=True)
    failures: dict[int, dict] = {}
    done = len(results)
    total = len(tasks)
    if progress is not None:
        progress(done, total)
    try:
        calls = [(spec, tasks[i]) for i in pending]
        # ``run_task`` is looked up now, not imported by name, so a test can replace it.
        finished = run_tasks(run_task, calls, workers, backend, address)
        for position, outcome_ in finished:
            index = pending[position]
            task = tasks[index]
            if isinstance(outcome_, BaseException):
                failures[index] = {"params": task.describe(), "error": _error_line(outcome_)}
            else:
                records, metrics = outcome_
                store.save_runs(records)
                results[index] = _entry(task, records[-1].run_id, metrics, cached=False)
            done += 1
            if progress is not None:
                progress(done, total)
    finally:  # Ctrl-C propagates; every run finished so far is already stored
        outcome.runs = [results[i] for i in sorted(results)]
        outcome.failed = [failures[i] for i in sorted(failures)]
    summary = {"runs": outcome.runs, "failed": outcome.failed}
    metrics = {"tasks": float(total), "failed": float(len(outcome.failed))}
    if not outcome.failed:  # a sweep with failures is stored once a re-run completes it
        store.save_run(outcome.sweep_id, SWEEP_KIND, seed, sweep_config, None, metrics, summary)
    return outcome


def _entry(task: SweepTask, run_id: str, metrics: dict, cached: bool) -> dict:
    return {
        "run_id": run_id,
        "scenario": task.scenario,
        "seed": task.seed,
        "params": dict(task.params),
        "metrics": metrics,
        "cached": cached,
    }


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
