"""Running simulations and storing them: the layer between the front doors and the core.

The measuring itself (facts, scenario metrics, statistics) lives in ``core`` so the browser
build reuses it; this module adds what needs the server side: GARCH fits, the run store, and
(later) many seeds in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from marl_market.analysis import facts_with_garch
from marl_market.core.config import MarketConfig, config_to_dict
from marl_market.core.facts import StylisedFacts
from marl_market.core.market import simulate
from marl_market.core.results import RunResult
from marl_market.store import RunStore, code_version, make_run_id

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


def run_simulation(
    config: MarketConfig,
    seed: int,
    return_interval: int = DEFAULT_RETURN_INTERVAL,
    store: RunStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationOutcome:
    """Simulate (or fetch the stored run of) ``config`` with ``seed`` and compute its facts."""
    stored_config = simulation_config(config, return_interval)
    run_id = make_run_id("simulate", stored_config, seed, code_version())
    if store is not None:
        row = store.get_run(run_id)
        if row is not None:
            facts = StylisedFacts.from_dict(row["summary"]["facts"])
            return SimulationOutcome(run_id, facts, cached=True)
    result = simulate(config, seed, progress)
    facts = facts_of(result, return_interval)
    if store is not None:
        store.save_run(
            run_id,
            "simulate",
            seed,
            stored_config,
            result,
            facts_metrics(facts),
            summary={"facts": facts.as_dict(), "counters": result.counters},
        )
    return SimulationOutcome(run_id, facts, cached=False, result=result)
