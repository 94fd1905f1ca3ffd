"""Speed of the market simulation.

Run:  python benchmarks/bench_market.py [--repeats 3] [--crowd-steps 2000] [--json]

1. The default population (2 makers, 4 momentum, 3 value, 4 noise) for 10,000 steps: simulation
   time of ``Market.run()`` (building the market is excluded), best of ``--repeats``.
   Target: <= 1 s.
2. An ABIDES-rmsc04-sized crowd: 1,000 noise, 100 value, 12 momentum, 2 makers (ABIDES has
   1,117 agents). Per-agent rates are set so the crowd sends a busy but plausible flow (noise
   traders 0.05 orders a step each, value traders act with probability 0.1 x activity each).
   Reported: book events (submits + cancels) per second, against ABIDES rmsc04's 73k book
   events in 87.7 s measured on this kind of machine (832 events/s). Goal: >= 100x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl_market.core.config import MarketConfig, NoiseParams, Population, ValueParams  # noqa: E402
from marl_market.core.market import Market  # noqa: E402

ABIDES_EVENTS = 73_000
ABIDES_SECONDS = 87.7


def time_run(config: MarketConfig, seed: int) -> tuple[float, dict]:
    market = Market(config, seed)
    start = time.perf_counter()
    result = market.run()
    return time.perf_counter() - start, result.counters


def crowd_config(steps: int) -> MarketConfig:
    base = MarketConfig(steps=steps)
    return dataclasses.replace(
        base,
        population=Population(makers=2, momentum=12, value=100, noise=1_000),
        noise=NoiseParams(orders_per_step=0.05),
        value=dataclasses.replace(ValueParams(), act_probability=0.1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crowd-steps", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    default_times = [time_run(MarketConfig(), args.seed)[0] for _ in range(args.repeats)]
    crowd_seconds, counters = time_run(crowd_config(args.crowd_steps), args.seed)
    events = counters["book_events"]
    events_per_s = events / crowd_seconds
    abides_per_s = ABIDES_EVENTS / ABIDES_SECONDS
    report = {
        "python": platform.python_version(),
        "default_10k_steps_seconds": min(default_times),
        "default_10k_steps_all": default_times,
        "crowd_agents": 1_114,
        "crowd_steps": args.crowd_steps,
        "crowd_seconds": crowd_seconds,
        "crowd_book_events": events,
        "crowd_events_per_s": events_per_s,
        "abides_rmsc04_events_per_s": abides_per_s,
        "speedup_vs_abides": events_per_s / abides_per_s,
        "seconds_for_73k_events": ABIDES_EVENTS / events_per_s,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"default population, 10,000 steps: {min(default_times):.3f} s (target <= 1 s)")
    print(
        f"rmsc04-sized crowd (1,114 agents), {args.crowd_steps:,} steps: {events:,} book events "
        f"in {crowd_seconds:.2f} s = {events_per_s:,.0f} events/s"
    )
    print(
        f"  ABIDES rmsc04: {ABIDES_EVENTS:,} events in {ABIDES_SECONDS} s = {abides_per_s:,.0f}/s"
        f" -> {events_per_s / abides_per_s:,.0f}x; 73k events here take "
        f"{ABIDES_EVENTS / events_per_s:.2f} s"
    )


if __name__ == "__main__":
    main()
