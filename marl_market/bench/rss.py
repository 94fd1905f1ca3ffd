"""Child process of the bench's memory workload: one default run, then its own peak RSS.

``python -m marl_market.bench.rss --steps 1000000 [--seed 42] [--no-record]`` prints one JSON
object (``--no-record``: the market keeps no history, as an environment plays it):
``steps``, ``seconds`` (the run alone), ``peak_rss_mb`` (this process's high-water mark) and
``vm_hwm_mb`` / ``rusage_max_rss_mb``, the two readings it is taken from.

Why VmHWM (``/proc/self/status``) first: Linux keeps ``getrusage``'s ``ru_maxrss`` across
``execve``, so a child started from a big parent (the bench, after its training workload has
loaded torch) reports the parent's peak, not its own. VmHWM belongs to the new address space.
``getrusage`` is the fallback where there is no ``/proc``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from marl_market.core.config import MarketConfig
from marl_market.core.market import Market


def vm_hwm_mb() -> float | None:
    """VmHWM from ``/proc/self/status`` in MB, or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    market = Market(MarketConfig(steps=args.steps), args.seed, record=not args.no_record)
    started = time.perf_counter()
    if args.no_record:
        market.advance(args.steps)
    else:
        market.run()  # the record and its RunResult, as a stored run needs
    seconds = time.perf_counter() - started
    rusage_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux
    hwm_mb = vm_hwm_mb()
    report = {
        "steps": args.steps,
        "recorded": not args.no_record,
        "seconds": seconds,
        "peak_rss_mb": hwm_mb if hwm_mb is not None else rusage_mb,
        "vm_hwm_mb": hwm_mb,
        "rusage_max_rss_mb": rusage_mb,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
