"""Run an ABIDES workload and print its figures as one JSON object (our driver, not ABIDES code).

Usage (under ABIDES's own interpreter, which has numpy < 2 and pandas < 2)::

    python abides_driver.py check  --abides PATH
    python abides_driver.py book   --abides PATH --stream FILE [--repeats N]
    python abides_driver.py rmsc04 --abides PATH [--seed 0] [--end-time 16:00:00]

``PATH`` is an ABIDES checkout (the folder holding ``abides-core/`` and ``abides-markets/``);
its packages are imported from there. ``book`` replays the stream that ``marlsim bench`` wrote
(a JSON list of ``[kind, is_buy, qty_or_target, price, agent_id]``; kind 0 limit, 1 cancel,
2 market; a cancel's target is the order id our engines gave that order, since both number
every submitted order 1, 2, ...) through ``abides_markets.order_book.OrderBook`` with an owner
stub whose ``book_logging`` is off, timing the loop; ``rmsc04`` runs one rmsc04 day as shipped
and counts the order messages (limit, market, cancel, modify, replace) its exchange receives.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time


def _import_paths(root: str) -> None:
    # abides/ itself too: the peers' snapshot keeps a sampling-only pomegranate stand-in there,
    # which rmsc04's order-size model imports (a user's checkout has pomegranate installed).
    for sub in ("abides-core", "abides-markets", ""):
        path = os.path.join(root, sub) if sub else root
        if path not in sys.path:
            sys.path.insert(0, path)


def check(_args: argparse.Namespace) -> dict:
    import abides_core  # noqa: F401
    import abides_markets.order_book  # noqa: F401
    import numpy
    import pandas

    versions = {"numpy": numpy.__version__, "pandas": pandas.__version__}
    return {"python": sys.version.split()[0], **versions}


class _Owner:
    """The least an ``OrderBook`` needs from its exchange: a clock, no logging, no messages."""

    mkt_open = 0
    current_time = 0
    book_logging = False
    book_log_depth = 10

    def send_message(self, *_args, **_kwargs) -> None:
        pass

    def logEvent(self, *_args, **_kwargs) -> None:  # noqa: N802 - ABIDES's name
        pass


def book(args: argparse.Namespace) -> dict:
    from abides_markets.order_book import OrderBook
    from abides_markets.orders import LimitOrder, MarketOrder, Side

    with open(args.stream) as handle:
        stream = [tuple(op) for op in json.load(handle)]
    best = None
    for _ in range(args.repeats):
        seconds, book_ = _replay_book(stream, OrderBook, LimitOrder, MarketOrder, Side)
        if best is None or seconds < best[0]:
            best = (seconds, book_)
    seconds, book_ = best
    fills = book_.buy_transactions + book_.sell_transactions
    return {
        "ops": len(stream),
        "seconds": seconds,
        "orders_per_s": len(stream) / seconds,
        "fills": len(fills),
        "filled_qty": sum(qty for _, qty in fills),
    }


def _replay_book(stream, OrderBook, LimitOrder, MarketOrder, Side):  # noqa: N803 - classes
    owner = _Owner()
    book_ = OrderBook(owner, "ABM")
    bid, ask = Side.BID, Side.ASK
    resting = {}  # our order id -> the LimitOrder ABIDES needs to cancel it
    next_id = 1
    gc.collect()
    gc.freeze()
    gc.disable()  # the same collector treatment our engines get in the bench
    try:
        started = time.perf_counter()
        for i, (kind, is_buy, qty, price, agent) in enumerate(stream):
            if kind == 1:
                order = resting.pop(qty, None)
                if order is not None:
                    book_.cancel_order(order)
                continue
            side = bid if is_buy else ask
            if kind == 0:
                order = LimitOrder(agent, 0, "ABM", qty, side, price, order_id=next_id)
                resting[next_id] = order
                book_.handle_limit_order(order)
            else:
                book_.handle_market_order(MarketOrder(agent, 0, "ABM", qty, side, order_id=next_id))
            next_id += 1
            if i % 1000 == 0:
                book_.history.clear()  # ABIDES's exchange trims this history too
        seconds = time.perf_counter() - started
    finally:
        gc.enable()
        gc.unfreeze()
    return seconds, book_


def rmsc04(args: argparse.Namespace) -> dict:
    from abides_core import abides
    from abides_markets.agents import ExchangeAgent
    from abides_markets.configs import rmsc04 as rmsc04_config
    from abides_markets.messages.order import OrderMsg

    received = [0]
    original = ExchangeAgent.receive_message

    def counting(self, current_time, sender_id, message):
        if isinstance(message, OrderMsg):
            received[0] += 1
        return original(self, current_time, sender_id, message)

    ExchangeAgent.receive_message = counting
    logging.disable(logging.WARNING)
    config = rmsc04_config.build_config(
        seed=args.seed, end_time=args.end_time, stdout_log_level="WARNING"
    )
    with tempfile.TemporaryDirectory(prefix="abides-rmsc04-") as tmp:
        here = os.getcwd()
        os.chdir(tmp)  # ABIDES writes its logs under ./log
        try:
            started = time.perf_counter()
            end_state = abides.run(config)
            wall = time.perf_counter() - started
        finally:
            os.chdir(here)
    kernel_seconds = end_state["kernel_event_queue_elapsed_wallclock"].total_seconds()
    return {
        "agents": len(config["agents"]),
        "book_events": received[0],
        "seconds": kernel_seconds,
        "wall_seconds": wall,
        "events_per_s": received[0] / kernel_seconds,
        "end_time": args.end_time,
        "seed": args.seed,
        "config": "rmsc04.build_config as shipped (its book_logging and log_orders on)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("check", "book", "rmsc04"))
    parser.add_argument("--abides", required=True)
    parser.add_argument("--stream")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end-time", default="16:00:00")
    args = parser.parse_args()
    _import_paths(args.abides)
    result = {"check": check, "book": book, "rmsc04": rmsc04}[args.workload](args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
