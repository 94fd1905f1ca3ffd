"""Check the default ecology's stylised-fact targets over many seeds.

Run:  python -m marl_market.bench.model_targets [--seeds 20] [--first-seed 0] [--steps 10000]
      [--json]

For each seed: excess kurtosis >= 5; ACF of |r| >= 0.1 at lag 1 and positive through lag 10;
|raw ACF(1)| < 0.1 (an aim: one seed's estimate from 2,000 fat-tailed returns scatters by about
+-0.1, so the cross-seed mean is reported too); mean spread strictly falling as makers go
1 -> 2 -> 3 -> 4. Returns are sampled every 5 steps (the CLI default). Uses all cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from marl_market.core.config import MarketConfig, Population
from marl_market.core.facts import compute_facts
from marl_market.core.market import simulate

RETURN_INTERVAL = 5


def one_seed(seed: int, steps: int) -> dict:
    out = {"seed": seed, "spreads": []}
    for makers in (1, 2, 3, 4):
        config = dataclasses.replace(MarketConfig(steps=steps), population=Population(makers))
        result = simulate(config, seed)
        facts = compute_facts(
            result.asset_series("mid"),
            result.asset_series("spread"),
            result.asset_series("volume"),
            RETURN_INTERVAL,
        )
        out["spreads"].append(facts.mean_spread_ticks)
        if makers == 2:  # the default population
            out["kurtosis"] = facts.excess_kurtosis
            out["acf_abs"] = facts.acf_abs[:10]
            out["acf_raw_1"] = facts.acf_raw[0]
            out["hill"] = facts.hill_tail_index
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        rows = list(pool.map(one_seed, seeds, [args.steps] * len(seeds)))
    kurt = np.array([r["kurtosis"] for r in rows])
    acf1 = np.array([r["acf_abs"][0] for r in rows])
    acf_pos = np.array([min(r["acf_abs"]) > 0 for r in rows])
    raw = np.array([r["acf_raw_1"] for r in rows])
    falling = np.array([bool(np.all(np.diff(r["spreads"]) < 0)) for r in rows])
    spreads = np.array([r["spreads"] for r in rows])
    n = len(rows)
    summary = {
        "seeds": seeds,
        "steps": args.steps,
        "return_interval": RETURN_INTERVAL,
        "kurtosis_min": kurt.min(),
        "kurtosis_median": float(np.median(kurt)),
        "kurtosis_ge_5": int((kurt >= 5).sum()),
        "acf_abs_lag1_min": acf1.min(),
        "acf_abs_lag1_median": float(np.median(acf1)),
        "acf_abs_lag1_ge_0.1": int((acf1 >= 0.1).sum()),
        "acf_abs_positive_to_lag10": int(acf_pos.sum()),
        "acf_raw_lag1_mean": raw.mean(),
        "acf_raw_lag1_min": raw.min(),
        "acf_raw_lag1_max": raw.max(),
        "acf_raw_lag1_within_0.1": int((np.abs(raw) < 0.1).sum()),
        "spread_by_makers_mean": spreads.mean(axis=0).tolist(),
        "spread_strictly_falling": int(falling.sum()),
        "seconds": time.perf_counter() - start,
    }
    summary = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in summary.items()}
    if args.json:
        print(json.dumps({"summary": summary, "per_seed": rows}))
        return
    print(f"{n} seeds x {args.steps:,} steps, returns every {RETURN_INTERVAL} steps")
    print(
        f"excess kurtosis >= 5:        {summary['kurtosis_ge_5']}/{n}  "
        f"(min {kurt.min():.1f}, median {np.median(kurt):.1f})"
    )
    print(
        f"ACF|r| lag 1 >= 0.1:         {summary['acf_abs_lag1_ge_0.1']}/{n}  "
        f"(min {acf1.min():.3f}, median {np.median(acf1):.3f})"
    )
    print(f"ACF|r| > 0 through lag 10:   {int(acf_pos.sum())}/{n}")
    print(
        f"|raw ACF(1)| < 0.1:          {summary['acf_raw_lag1_within_0.1']}/{n}  "
        f"(mean {raw.mean():+.3f}, range {raw.min():+.3f} .. {raw.max():+.3f})"
    )
    print(
        "spread 1->4 makers (mean):   "
        + " / ".join(f"{s:.2f}" for s in spreads.mean(axis=0))
        + f"  strictly falling on {int(falling.sum())}/{n}"
    )
    print(f"({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
