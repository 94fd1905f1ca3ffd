"""Time ``marlsim scenario --kind compare`` (20 seeds of the default population by default).

Run:  python benchmarks/bench_compare.py [--seeds 20] [--json]

Target: <= 60 s on 2 cores, storing every run. A fresh database each time (the compare is
otherwise returned from the store).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "compare.duckdb"
        command = [sys.executable, "-m", "marl_market.cli", "scenario", "--kind", "compare"]
        command += ["--seeds", str(args.seeds), "--db", str(db), "--json"]
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            sys.exit(out.stderr)
        payload = json.loads(out.stdout)
        db_mb = db.stat().st_size / 1e6
    blowups = [r["spread_blowup"] for r in payload["per_seed"]["flash_crash"]]
    recovered = sum(r["recovery_steps"] is not None for r in payload["per_seed"]["flash_crash"])
    report = {
        "seeds": args.seeds,
        "cores": os.cpu_count(),
        "seconds": seconds,
        "db_mb": db_mb,
        "flash_crash_min_blowup": min(blowups),
        "flash_crash_recovered": recovered,
    }
    for kind in payload["kinds"]:
        for metric, s in payload[kind].items():
            if s["documented"]:
                report[f"{kind}.{metric}.sign_fraction"] = s["sign_fraction"]
                report[f"{kind}.{metric}.mean"] = s["mean"]
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"compare, {args.seeds} seeds x 7 runs: {seconds:.1f} s on {os.cpu_count()} cores "
        f"(target <= 60 s); database {db_mb:.0f} MB"
    )
    print(
        f"flash crash: blow-up >= {min(blowups):.1f}x on every seed; "
        f"recovered on {recovered}/{args.seeds}"
    )
    for kind in payload["kinds"]:
        for metric, s in payload[kind].items():
            if s["documented"]:
                ci = f"[{s['ci_low']:+.3g}, {s['ci_high']:+.3g}]" if s["ci_low"] is not None else ""
                print(
                    f"  {kind:12s} {metric:18s} {s['mean']:9.3g} "
                    f"(baseline {s['baseline_mean']:.3g}, diff {ci}) "
                    f"documented sign on {s['sign_fraction']:.0%} of seeds"
                )


if __name__ == "__main__":
    main()
