"""The market workloads of ``marlsim bench``: our side of every figure except the book's.

Each function builds its market first (untimed) and times only the run, so a figure is the
simulation's speed, not the import or set-up. The peak-RSS run happens in a child process
(``python -m marl_market.bench.rss``), so this process's own memory does not count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

from marl_market.core.config import MarketConfig, Population, zi_crowd_config
from marl_market.core.market import Market

# The rmsc04-sized crowd: ABIDES's rmsc04 has 2 adaptive makers, 12 momentum, 102 value and
# 1,000 noise agents. Per-agent rates make a busy but plausible flow: noise traders send 0.05
# orders a step each, value traders act with probability 0.1 x activity.
CROWD_POPULATION = Population(makers=2, momentum=12, value=100, noise=1_000)


def timed_run(config: MarketConfig, seed: int) -> tuple[float, dict[str, int]]:
    """Build ``Market(config, seed)``, then time ``run()``; return (seconds, counters)."""
    market = Market(config, seed)
    started = time.perf_counter()
    result = market.run()
    return time.perf_counter() - started, dict(result.counters)


def default_market(steps: int = 10_000, repeats: int = 3, seed: int = 42) -> dict:
    """The default 13-agent market: best-of-``repeats`` steps per second."""
    times = [timed_run(MarketConfig(steps=steps), seed)[0] for _ in range(max(1, repeats))]
    best = min(times)
    return {"steps": steps, "repeats": len(times), "seconds": best, "steps_per_s": steps / best}


def crowd_config(steps: int = 2_000) -> MarketConfig:
    """The rmsc04-sized crowd (1,114 agents) for ``steps`` steps."""
    base = MarketConfig(steps=steps)
    return dataclasses.replace(
        base,
        population=CROWD_POPULATION,
        noise=dataclasses.replace(base.noise, orders_per_step=0.05),
        value=dataclasses.replace(base.value, act_probability=0.1),
    )


def book_events_rate(config: MarketConfig, seed: int = 42) -> dict:
    """Run ``config`` once; book events (submits + cancels) per second of the run."""
    seconds, counters = timed_run(config, seed)
    events = counters["book_events"]
    return {
        "agents": config.population.total,
        "steps": config.steps,
        "book_events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
    }


def zi_crowd(agents: int = 500, steps: int = 50_000, seed: int = 42) -> dict:
    """PyMarketSim's zero-intelligence workload in our market (``zi_crowd_config``)."""
    return book_events_rate(zi_crowd_config(n_agents=agents, steps=steps), seed)


def compare_wall(seeds: int = 20, steps: int = 5_000, workers: int | None = None) -> dict:
    """Wall time of ``marlsim scenario --kind compare`` (all scenarios x ``seeds`` seeds).

    Runs the same library call the command makes, storing every run, into a temporary database
    that is deleted afterwards (never the user's).
    """
    from marl_market.lab.experiments import resolve_scenario, run_scenarios
    from marl_market.store import RunStore
    from marl_market.store.records import validate_scenario

    request = validate_scenario(kind="compare", seeds=seeds, steps=steps, workers=workers)
    scenarios = [
        resolve_scenario(k, request.steps, request.pull_at, request.return_at, request.tax_bp)
        for k in request.kinds
    ]
    with tempfile.TemporaryDirectory(prefix="marlsim-bench-") as tmp:
        store = RunStore(os.path.join(tmp, "compare.duckdb"))
        started = time.perf_counter()
        outcome = run_scenarios(
            request.to_config(), scenarios, request.seed_list, store=store, workers=workers
        )
        seconds = time.perf_counter() - started
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return {
        "seeds": seeds,
        "scenarios": len(scenarios),
        "runs": seeds * (len(scenarios) + 1),
        "steps": request.steps,
        "workers": workers or os.cpu_count(),
        "seconds": seconds,
        "cached": bool(getattr(outcome, "cached", False)),
    }


def peak_rss(
    steps: int = 1_000_000, seed: int = 42, timeout: float = 1_800, record: bool = True
) -> dict:
    """Peak resident memory of a default ``steps``-step run, measured in a child process
    (``record=False``: a market that keeps no history)."""
    command = [sys.executable, "-m", "marl_market.bench.rss", "--steps", str(steps)]
    command += ["--seed", str(seed)] + ([] if record else ["--no-record"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {steps:,}-step memory run failed: {last}")
    return json.loads(done.stdout)


def calibration_wall(small: bool = False) -> dict:
    """Wall time of ``marlsim calibrate``'s default fit (noise intensity and fundamental
    volatility to the S&P 500, 20 candidates x 5 seeds x 10,000 steps) on the local backend,
    nothing stored; ``small``: 6 candidates x 5 seeds x 2,000 steps (tests, --quick)."""
    from marl_market.lab.analysis import sp500_returns
    from marl_market.scale.calibrate import calibrate

    budget, steps = (6, 2_000) if small else (20, 10_000)
    started = time.perf_counter()
    fit = calibrate(sp500_returns(), "sp500", seeds=5, budget=budget, steps=steps)
    return {
        "seconds": time.perf_counter() - started,
        "params": fit.params,
        "distance": fit.distance,
        "evaluations": fit.evaluations,
        "seeds": 5,
        "steps": steps,
        "budget": budget,
    }
