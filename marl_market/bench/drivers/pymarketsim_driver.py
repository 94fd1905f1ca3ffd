"""Run PyMarketSim's zero-intelligence crowd and print its figures as one JSON object.

Our driver, not PyMarketSim code. Usage (in an interpreter that has torch and fastcubicspline,
which PyMarketSim imports)::

    python pymarketsim_driver.py check --pymarketsim PATH
    python pymarketsim_driver.py zi    --pymarketsim PATH [--agents 500] [--steps 50000] [--seed 0]

``PATH`` is a PyMarketSim checkout (the folder holding ``marketsim/``). ``zi`` builds
``SimulatorSampledArrival(num_background_agents=500, sim_time=50000, lam=0.005, mean=1e5,
r=0.05, shock_var=5e6, q_max=10, pv_var=5e6, shade=[500, 1000])``, seeded through
``random.seed`` and ``numpy.random.seed`` (PyMarketSim draws from the global generators), and
times ``run()``. Book events are orders placed plus orders withdrawn: every order placed ends
matched, withdrawn or still resting, so withdrawn = placed - matched - resting.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings


def _import_path(root: str) -> None:
    if root not in sys.path:
        sys.path.insert(0, root)


def check(_args: argparse.Namespace) -> dict:
    import numpy
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fastcubicspline's numpy-2 fallback warning
        from marketsim.simulator.sampled_arrival_simulator import (  # noqa: F401
            SimulatorSampledArrival,
        )
    versions = {"numpy": numpy.__version__, "torch": torch.__version__}
    return {"python": sys.version.split()[0], **versions}


def zi(args: argparse.Namespace) -> dict:
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from marketsim.simulator.sampled_arrival_simulator import SimulatorSampledArrival

    random.seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 - PyMarketSim draws from the global generator
    sim = SimulatorSampledArrival(
        num_background_agents=args.agents,
        sim_time=args.steps,
        lam=0.005,
        mean=1e5,
        r=0.05,
        shock_var=5e6,
        q_max=10,
        pv_var=5e6,
        shade=[500, 1000],
    )
    started = time.perf_counter()
    sim.run()
    seconds = time.perf_counter() - started
    market = sim.markets[0]
    placed = sum(agent._order_counter for agent in sim.agents.values())
    matched = len(market.matched_orders)
    resting = sum(len(queue.order_dict) for queue in market.order_book.heaps)
    withdrawn = placed - matched - resting
    events = placed + withdrawn
    return {
        "agents": args.agents,
        "steps": args.steps,
        "orders": placed,
        "cancels": withdrawn,
        "trades": matched // 2,
        "book_events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "seed": args.seed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("check", "zi"))
    parser.add_argument("--pymarketsim", required=True)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    _import_path(args.pymarketsim)
    result = {"check": check, "zi": zi}[args.workload](args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
