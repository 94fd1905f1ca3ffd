"""Throughput benchmark for the limit order book.

Run:  python benchmarks/bench_book.py [--orders N] [--seed S] [--json]

One message stream (default 1,000,000 messages: 60% limit, 25% cancel, 15% market) is generated
up front with ``numpy.random.default_rng(seed)`` and replayed, untimed set-up excluded, through

  (a) ``OrderBook.submit(Order(...))`` -- the public, validating API;
  (b) ``OrderBook.submit_fast(...)``  -- the unvalidated path the simulator uses;
  (c) a plain dict-of-deques engine defined below (``PlainBook``): ``{price: deque}`` per side,
      best price by ``min()`` / ``max()`` over the dict keys, cancel by scanning the deque.

All three must print the same trades (count, total quantity and an order-sensitive checksum)
and end with the same book, or the script exits with status 1.

Stream shape. A fundamental mid does a slow random walk (one tick every ~250 messages on
average). Passive limit orders rest 1 + Geometric(0.08) ticks (mean ~13) behind the mid, on
their own side; "aggressive" limit orders are priced 0-3 ticks through the mid, so they trade
against the top of the opposite side and rest any remainder. Market orders take 1-15 lots.
Cancels pick a uniformly random *live* resting order. Because cancels and market orders remove
a roughly fixed amount per message, a fixed mix would either drain the book or let it grow
without bound; so, as a crude stand-in for the size-dependent cancellation hazard of real books,
the share of aggressive limits rises with the number of resting orders (0.5 * N / (N + 5000)).
The book then hovers at a few thousand resting orders over ~80 price levels per side.
Finding live orders and the current book size needs the book itself, so the generator replays
the stream once through ``submit_fast`` while building it (this is set-up, not timed).

The ABIDES figure printed for comparison (15-23k messages/s) is the reference throughput of its
Python exchange agent on this kind of machine; our target is >= 500k orders/s (25x ABIDES).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import zlib
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marl_market import Order, OrderBook, Trade  # noqa: E402

LIMIT, CANCEL, MARKET = 0, 1, 2
TARGET_RESTING = 5_000
ABIDES_MSG_PER_S = (15_000, 23_000)
TARGET_ORDERS_PER_S = 500_000


# ----------------------------------------------------------------------------- stream


def generate_stream(n: int, seed: int) -> list[tuple]:
    """Build ``n`` messages ``(kind, is_buy, side, qty_or_target, price, agent_id)``.

    For a cancel, the fourth field is the id of the order to cancel. All values are plain
    Python ints / bools / strs / None so the timed loops do no conversions.
    """
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n, p=[0.60, 0.25, 0.15]).tolist()
    is_buy = (rng.random(n) < 0.5).tolist()
    limit_qty = rng.integers(1, 11, size=n).tolist()
    market_qty = rng.integers(1, 16, size=n).tolist()
    passive_offset = (1 + rng.geometric(0.08, size=n)).tolist()
    aggressive_offset = rng.integers(0, 4, size=n).tolist()
    aggressive_draw = rng.random(n).tolist()
    cancel_draw = rng.random(n).tolist()
    agents = rng.integers(0, 100, size=n).tolist()
    mid_steps = rng.choice([-1, 0, 1], size=n, p=[0.002, 0.996, 0.002])
    mids = (10_000 + np.cumsum(mid_steps)).tolist()

    book = OrderBook()
    candidates: list[int] = []  # ids that may still be resting (dead ones removed lazily)
    stream: list[tuple] = []
    for i in range(n):
        kind = kinds[i]
        buy = is_buy[i]
        side = "buy" if buy else "sell"
        if kind == LIMIT:
            resting = len(book)
            if aggressive_draw[i] < 0.5 * resting / (resting + TARGET_RESTING):
                offset = -aggressive_offset[i]
            else:
                offset = passive_offset[i]
            price = mids[i] - offset if buy else mids[i] + offset
            msg = (LIMIT, buy, side, limit_qty[i], price, agents[i])
            order_id, _ = book.submit_fast(buy, limit_qty[i], price, agents[i])
            candidates.append(order_id)
        elif kind == MARKET:
            msg = (MARKET, buy, side, market_qty[i], None, agents[i])
            book.submit_fast(buy, market_qty[i], None, agents[i])
        else:
            target = 0  # an unknown id (cancel returns 0) if nothing is resting
            while candidates:
                j = int(cancel_draw[i] * len(candidates))
                order_id = candidates[j]
                candidates[j] = candidates[-1]  # swap-remove: O(1)
                candidates.pop()
                if book.order_qty(order_id):
                    target = order_id
                    book.cancel(order_id)
                    break
            msg = (CANCEL, buy, side, target, None, 0)
        stream.append(msg)
    return stream


# ----------------------------------------------------------------------------- plain engine


class PlainBook:
    """The straightforward engine to compare against: per side a dict ``price -> deque`` of
    ``[qty, order_id, agent_id]``; best price by ``min()``/``max()`` over the keys; cancel looks
    up the order's side and price and scans that level's deque."""

    def __init__(self) -> None:
        self.bids: dict[int, deque] = {}
        self.asks: dict[int, deque] = {}
        self.where: dict[int, tuple[bool, int]] = {}  # order_id -> (is_buy, price)
        self.next_id = 1

    def submit(self, is_buy: bool, qty: int, price: int | None, agent_id: int):
        order_id = self.next_id
        self.next_id += 1
        trades = []
        opposite = self.asks if is_buy else self.bids
        while qty and opposite:
            best = min(opposite) if is_buy else max(opposite)
            if price is not None and (best > price if is_buy else best < price):
                break
            level = opposite[best]
            while qty and level:
                entry = level[0]
                fill = min(qty, entry[0])
                if is_buy:
                    trades.append(Trade(best, fill, agent_id, entry[2], order_id, entry[1], "buy"))
                else:
                    trades.append(Trade(best, fill, entry[2], agent_id, entry[1], order_id, "sell"))
                qty -= fill
                entry[0] -= fill
                if entry[0] == 0:
                    level.popleft()
                    del self.where[entry[1]]
            if not level:
                del opposite[best]
        if qty and price is not None:
            own = self.bids if is_buy else self.asks
            own.setdefault(price, deque()).append([qty, order_id, agent_id])
            self.where[order_id] = (is_buy, price)
        return order_id, trades

    def cancel(self, order_id: int) -> int:
        located = self.where.pop(order_id, None)
        if located is None:
            return 0
        is_buy, price = located
        side = self.bids if is_buy else self.asks
        level = side[price]
        for entry in level:
            if entry[1] == order_id:
                level.remove(entry)
                if not level:
                    del side[price]
                return entry[0]
        raise AssertionError("order index out of sync")

    def depth(self, side: str) -> list[tuple[int, int]]:
        levels = self.bids if side == "buy" else self.asks
        totals = [(p, sum(e[0] for e in q)) for p, q in levels.items()]
        return sorted(totals, reverse=side == "buy")


# ----------------------------------------------------------------------------- runners
# Each runner returns (seconds, list of per-message trade lists, final depth). The loops are
# written the way a user would write them; the only extra work is keeping the trade lists.


def run_public(stream: list[tuple]):
    book = OrderBook()
    submit, cancel = book.submit, book.cancel
    out = []
    record = out.append
    t0 = time.perf_counter()
    for kind, _buy, side, qty, price, agent in stream:
        if kind == CANCEL:
            cancel(qty)
        else:
            record(submit(Order(side, qty, price, agent)))
    elapsed = time.perf_counter() - t0
    return elapsed, out, (book.depth("buy", 10**9), book.depth("sell", 10**9))


def run_fast(stream: list[tuple]):
    book = OrderBook()
    submit_fast, cancel = book.submit_fast, book.cancel
    out = []
    record = out.append
    t0 = time.perf_counter()
    for kind, buy, _side, qty, price, agent in stream:
        if kind == CANCEL:
            cancel(qty)
        else:
            record(submit_fast(buy, qty, price, agent)[1])
    elapsed = time.perf_counter() - t0
    return elapsed, out, (book.depth("buy", 10**9), book.depth("sell", 10**9))


def run_plain(stream: list[tuple]):
    book = PlainBook()
    submit, cancel = book.submit, book.cancel
    out = []
    record = out.append
    t0 = time.perf_counter()
    for kind, buy, _side, qty, price, agent in stream:
        if kind == CANCEL:
            cancel(qty)
        else:
            record(submit(buy, qty, price, agent)[1])
    elapsed = time.perf_counter() - t0
    return elapsed, out, (book.depth("buy"), book.depth("sell"))


def timed(runner, stream):
    """Run with the collector out of the way: set-up objects frozen, cyclic GC off."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return runner(stream)
    finally:
        gc.enable()
        gc.unfreeze()


def summarise(trade_lists: list[list[Trade]]) -> dict:
    rows = [
        (t.price, t.qty, t.buy_agent, t.sell_agent, t.buy_order_id, t.sell_order_id)
        + (t.aggressor == "buy",)
        for trades in trade_lists
        for t in trades
    ]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 7)
    return {
        "trades": len(rows),
        "traded_qty": int(arr[:, 1].sum()),
        "checksum": f"{zlib.crc32(arr.tobytes()):08x}",
    }


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="messages in the stream")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    stream = generate_stream(args.orders, args.seed)
    gen_seconds = time.perf_counter() - t0
    mix = np.bincount([m[0] for m in stream], minlength=3) / len(stream)

    runs = {}
    for name, runner in (("public", run_public), ("fast", run_fast), ("plain", run_plain)):
        seconds, trade_lists, final = timed(runner, stream)
        runs[name] = {"seconds": seconds, "orders_per_s": len(stream) / seconds}
        runs[name].update(summarise(trade_lists))
        runs[name]["final_book"] = final
        del trade_lists

    reference = {k: runs["plain"][k] for k in ("trades", "traded_qty", "checksum", "final_book")}
    identical = all(
        {k: runs[name][k] for k in reference} == reference for name in ("public", "fast")
    )
    final_bids, final_asks = runs["plain"]["final_book"]
    abides_mid = sum(ABIDES_MSG_PER_S) / 2
    result = {
        "orders": len(stream),
        "seed": args.seed,
        "mix": {"limit": mix[LIMIT], "cancel": mix[CANCEL], "market": mix[MARKET]},
        "generate_seconds": gen_seconds,
        "final_resting_levels": {"buy": len(final_bids), "sell": len(final_asks)},
        "trades": reference["trades"],
        "traded_qty": reference["traded_qty"],
        "checksum": reference["checksum"],
        "identical_trades": identical,
        "orders_per_s": {name: runs[name]["orders_per_s"] for name in runs},
        "seconds": {name: runs[name]["seconds"] for name in runs},
        "ratio_fast_vs_plain": runs["fast"]["orders_per_s"] / runs["plain"]["orders_per_s"],
        "ratio_public_vs_plain": runs["public"]["orders_per_s"] / runs["plain"]["orders_per_s"],
        "abides_msg_per_s": list(ABIDES_MSG_PER_S),
        "fast_vs_abides": runs["fast"]["orders_per_s"] / abides_mid,
        "target_orders_per_s": TARGET_ORDERS_PER_S,
        "meets_target": runs["fast"]["orders_per_s"] >= TARGET_ORDERS_PER_S,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if not identical:
        for name in runs:
            summary = {k: runs[name][k] for k in ("trades", "traded_qty", "checksum")}
            print(f"MISMATCH {name}: {summary}", file=sys.stderr)

    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"stream: {len(stream):,} messages (limit {mix[LIMIT]:.1%}, cancel {mix[CANCEL]:.1%},"
            f" market {mix[MARKET]:.1%}), seed {args.seed}, generated in {gen_seconds:.1f} s"
        )
        print(
            f"trades: {result['trades']:,}, qty {result['traded_qty']:,}, checksum "
            f"{result['checksum']}, identical across engines: {identical}"
        )
        labels = {
            "public": "OrderBook.submit(Order(...))",
            "fast": "OrderBook.submit_fast",
            "plain": "plain dict-of-deques engine",
        }
        for name, label in labels.items():
            r = runs[name]
            print(f"  {label:<30} {r['orders_per_s']:>12,.0f} orders/s  ({r['seconds']:.2f} s)")
        print(
            f"ratio ours/plain: submit_fast {result['ratio_fast_vs_plain']:.2f}x, "
            f"submit {result['ratio_public_vs_plain']:.2f}x"
        )
        print(
            f"ABIDES reference: {ABIDES_MSG_PER_S[0]:,}-{ABIDES_MSG_PER_S[1]:,} msg/s; "
            f"submit_fast = {result['fast_vs_abides']:.0f}x ABIDES (mid); target "
            f">= {TARGET_ORDERS_PER_S:,} orders/s: {'met' if result['meets_target'] else 'NOT met'}"
        )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
