"""Calibration: which behavioural parameters make the market's returns look like a real one's?

The simulated method of moments. The moments are the stylised facts (``MOMENTS``: excess
kurtosis, the Hill tail index, the ACF of |r| at lags 1, 5, 10, 20 and 50, the raw ACF at lags 1
to 5), each difference to the target scaled by ``MOMENT_SCALES`` (a fact's typical size, so a
kurtosis 3 off and an ACF 0.1 off weigh alike). A candidate's moments are the means over
``seeds`` simulated markets, every market a task on ``lab.engine`` (local pool or Ray). The
search is scipy's ``differential_evolution`` (seeded, integer-aware, derivative-free - the
distance is noisy and has integer parameters such as the number of makers, where gradients and
simplex methods stall), its population evaluated in one batch so all of a generation's markets
run in parallel, within ``budget`` candidates. Volatility is not a moment: a daily index's
return scale has no counterpart in a market measured in ticks and steps.

``calibrate`` stores the result as a run of kind ``calibrate`` under an ID of its config: the
fitted parameters, the distance, and the simulated facts (mean and 95% CI over the seeds) of the
fitted market beside the target's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution

from marl_market.core.config import MarketConfig
from marl_market.core.facts import compute_facts, facts_from_returns, mean_ci
from marl_market.core.market import simulate
from marl_market.lab.engine import run_tasks
from marl_market.store import RunStore, code_version, make_run_id

CALIBRATE_KIND = "calibrate"
MOMENTS = (
    ("excess_kurtosis", None),
    ("hill_tail_index", None),
    *(("acf_abs", lag) for lag in (1, 5, 10, 20, 50)),
    *(("acf_raw", lag) for lag in (1, 2, 3, 4, 5)),
)
"""(fact, lag) pairs; the lag indexes an ACF (lag 1 first)."""
MOMENT_SCALES = {"excess_kurtosis": 3.0, "hill_tail_index": 0.5, "acf_abs": 0.1, "acf_raw": 0.1}


@dataclass(frozen=True)
class Parameter:
    """A behavioural parameter the calibration may fit: where it lives and its range."""

    field: str  # dotted path into MarketConfig, e.g. "noise.orders_per_step"
    low: float
    high: float
    integer: bool = False


PARAMETERS = {
    "noise_intensity": Parameter("noise.orders_per_step", 0.2, 3.0),
    "momentum_share": Parameter("population.momentum", 0, 12, integer=True),
    "momentum_strength": Parameter("momentum.act_probability", 0.05, 0.9),
    "value_share": Parameter("population.value", 0, 12, integer=True),
    "value_strength": Parameter("value.gain", 2_000.0, 100_000.0),
    "makers": Parameter("population.makers", 1, 6, integer=True),
    "fundamental_volatility": Parameter("fundamental.volatility", 5e-5, 1e-3),
}
DEFAULT_PARAMS = ("noise_intensity", "fundamental_volatility")


def with_params(base: MarketConfig, values: dict[str, float]) -> MarketConfig:
    """``base`` with each named parameter set (integers rounded)."""
    config = base
    for name, value in values.items():
        parameter = PARAMETERS[name]
        group, attribute = parameter.field.split(".")
        value = int(round(value)) if parameter.integer else float(value)
        part = dataclasses.replace(getattr(config, group), **{attribute: value})
        config = config.replace(**{group: part})
    return config


def moments(facts: dict) -> np.ndarray:
    """The moment vector of a facts dict (``StylisedFacts.as_dict()``)."""
    out = []
    for name, lag in MOMENTS:
        value = facts[name] if lag is None else facts[name][lag - 1]
        out.append(np.nan if value is None else float(value))
    return np.array(out)


def simulated_facts(config: MarketConfig, seed: int, return_interval: int) -> dict:
    """Task: the stylised facts (numpy-only, no GARCH) of one simulated market."""
    result = simulate(config, seed)
    facts = compute_facts(
        result.asset_series("mid"),
        result.asset_series("spread"),
        result.asset_series("volume"),
        return_interval,
    )
    return facts.as_dict()


def target_facts(returns: np.ndarray) -> dict:
    """The facts of a real return series (one return per period)."""
    return facts_from_returns(np.asarray(returns, dtype=np.float64), 1).as_dict()


def distance(simulated: np.ndarray, target: np.ndarray) -> float:
    """Sum of squared scaled moment differences (a moment the market lacks costs 100)."""
    scales = np.array([MOMENT_SCALES[name] for name, _ in MOMENTS])
    gaps = (simulated - target) / scales
    return float(np.sum(np.where(np.isfinite(gaps), gaps**2, 100.0)))


@dataclass
class Calibration:
    """What ``calibrate`` found (the ``--json`` **contract**'s fields, plus the search)."""

    run_id: str
    params: dict[str, float]
    distance: float
    facts: dict
    """{"target": {moment: value}, "simulated": {moment: {"mean", "ci_low", "ci_high"}}}."""
    evaluations: int
    cached: bool = False


def moment_names() -> list[str]:
    return [name if lag is None else f"{name}_lag{lag}" for name, lag in MOMENTS]


def calibrate(
    target_returns: np.ndarray,
    target_name: str,
    names: tuple[str, ...] = DEFAULT_PARAMS,
    seeds: int = 3,
    budget: int = 20,
    steps: int = 10_000,
    seed: int = 42,
    return_interval: int = 5,
    store: RunStore | None = None,
    workers: int | None = None,
    backend: str = "local",
    address: str | None = None,
) -> Calibration:
    """Fit ``names`` to ``target_returns`` within ``budget`` candidates (see the module)."""
    for name in names:
        if name not in PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}: choose from {', '.join(PARAMETERS)}")
    if not names or len(set(names)) != len(names):
        raise ValueError("give one or more distinct parameters to fit")
    if seeds < 2:
        raise ValueError(f"seeds must be at least 2 (a CI needs two), got {seeds}")
    if budget < minimum_budget(len(names)):
        raise ValueError(
            f"budget must be at least {minimum_budget(len(names))} for {len(names)} parameter(s)"
        )
    target = target_facts(target_returns)
    target_vector = moments(target)
    base = MarketConfig(steps=steps)
    digest = hashlib.sha256(np.asarray(target_returns, dtype=np.float64).tobytes()).hexdigest()
    config = {
        "target": target_name,
        "target_sha256": digest[:16],
        "params": list(names),
        "seeds": seeds,
        "budget": budget,
        "steps": steps,
        "return_interval": return_interval,
        "optimizer": "scipy.optimize.differential_evolution",
    }
    run_id = make_run_id(CALIBRATE_KIND, config, seed, code_version())
    if store is not None:
        row = store.get_run(run_id)
        if row is not None:
            summary = row["summary"]
            return Calibration(
                run_id, summary["params"], summary["distance"], summary["facts"],
                summary["evaluations"], cached=True,
            )  # fmt: skip
    seed_list = list(range(seed, seed + seeds))
    bounds = [(PARAMETERS[n].low, PARAMETERS[n].high) for n in names]
    integrality = [PARAMETERS[n].integer for n in names]
    # scipy's population is popsize x parameters, and never below 5; the first generation is
    # its initial population, each later one as many candidates again.
    population = max(2, budget // (2 * len(names)))
    size = max(5, population * len(names))
    generations = max(0, budget // size - 1)
    evaluated: list[tuple[dict, float, np.ndarray]] = []

    def evaluate(batch: np.ndarray) -> np.ndarray:
        candidates = [dict(zip(names, row, strict=True)) for row in batch.T]
        calls = [
            (with_params(base, values), s, return_interval)
            for values in candidates
            for s in seed_list
        ]
        per_call: list[dict | None] = [None] * len(calls)
        for position, outcome in run_tasks(simulated_facts, calls, workers, backend, address):
            if isinstance(outcome, BaseException):
                raise outcome
            per_call[position] = outcome
        out = []
        for i, values in enumerate(candidates):
            rows = np.array([moments(f) for f in per_call[i * seeds : (i + 1) * seeds]])
            with warnings.catch_warnings():  # a moment no seed produced stays NaN, quietly
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(rows, axis=0)
            d = distance(mean, target_vector)
            evaluated.append((values, d, rows))
            out.append(d)
        return np.array(out)

    differential_evolution(
        evaluate,
        bounds,
        integrality=integrality,
        popsize=population,
        maxiter=generations,
        seed=seed,
        polish=False,
        vectorized=True,
        updating="deferred",
        init="sobol" if _is_power_of_two(size) else "latinhypercube",
    )
    best_values, best_distance, best_rows = min(evaluated, key=lambda item: item[1])
    params = {
        name: (int(round(v)) if PARAMETERS[name].integer else float(v))
        for name, v in best_values.items()
    }
    facts = {
        "target": dict(zip(moment_names(), _clean(target_vector), strict=True)),
        "simulated": {name: _interval(best_rows[:, j]) for j, name in enumerate(moment_names())},
    }
    outcome = Calibration(run_id, params, best_distance, facts, len(evaluated))
    if store is not None:
        summary = {
            "params": params,
            "distance": best_distance,
            "facts": facts,
            "evaluations": len(evaluated),
            "candidates": [
                {"params": {k: float(v) for k, v in values.items()}, "distance": d}
                for values, d, _ in evaluated
            ],
        }
        metrics = {"distance": best_distance, **{f"param_{k}": float(v) for k, v in params.items()}}
        store.save_run(run_id, CALIBRATE_KIND, seed, config, None, metrics, summary)
    return outcome


def minimum_budget(n_params: int) -> int:
    """The fewest candidates a fit of ``n_params`` can run: one generation of at least 5."""
    return max(5, 2 * n_params + 2)


def _interval(samples: np.ndarray) -> dict:
    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        value = float(finite[0]) if finite.size else None
        return {"mean": value, "ci_low": None, "ci_high": None}
    mean, low, high = mean_ci(finite)
    return {"mean": mean, "ci_low": low, "ci_high": high}


def _clean(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0
