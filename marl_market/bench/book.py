"""Book throughput: our ``submit(Order)`` and ``submit_fast`` against the plain baseline book.

All three replay the same stream (``marl_market.bench.stream``) in this process, one after the
other, with the collector out of the way (set-up objects frozen, cyclic GC off), each keeping
every operation's fills. Then their fills are compared, fill by fill; a mismatch is an error,
not a figure.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

from marl_market.bench.baseline import Fill, PlainBook
from marl_market.bench.stream import CANCEL, Op
from marl_market.core.book import Order, OrderBook


class EnginesDisagree(AssertionError):
    """The engines produced different fills or final books on the same stream."""


@dataclass(frozen=True)
class BookFigures:
    """Best-of-``repeats`` throughput of each engine on one stream, and what they traded."""

    ops: int
    repeats: int
    submit_orders_per_s: float
    fast_orders_per_s: float
    baseline_orders_per_s: float
    fills: int
    filled_qty: int

    def as_dict(self) -> dict:
        return {
            "ops": self.ops,
            "repeats": self.repeats,
            "submit_orders_per_s": self.submit_orders_per_s,
            "fast_orders_per_s": self.fast_orders_per_s,
            "baseline_orders_per_s": self.baseline_orders_per_s,
            "submit_vs_baseline": self.submit_orders_per_s / self.baseline_orders_per_s,
            "fast_vs_baseline": self.fast_orders_per_s / self.baseline_orders_per_s,
            "fills": self.fills,
            "filled_qty": self.filled_qty,
            "identical_fills": True,
        }


def replay_submit(ops: list[Op]) -> tuple[float, list[list[Fill]], tuple]:
    """Replay through ``OrderBook.submit(Order(...))``, the public validating API."""
    book = OrderBook()
    submit, cancel = book.submit, book.cancel
    out: list = []
    keep = out.append
    started = time.perf_counter()
    for kind, is_buy, qty, price, agent in ops:
        if kind == CANCEL:
            cancel(qty)
        else:
            keep(submit(Order("buy" if is_buy else "sell", qty, price, agent)))
    seconds = time.perf_counter() - started
    return seconds, [[_fill(t) for t in trades] for trades in out], _final(book)


def replay_fast(ops: list[Op]) -> tuple[float, list[list[Fill]], tuple]:
    """Replay through ``OrderBook.submit_fast``, the unvalidated path the market uses."""
    book = OrderBook()
    submit_fast, cancel = book.submit_fast, book.cancel
    out: list = []
    keep = out.append
    started = time.perf_counter()
    for kind, is_buy, qty, price, agent in ops:
        if kind == CANCEL:
            cancel(qty)
        else:
            keep(submit_fast(is_buy, qty, price, agent)[1])
    seconds = time.perf_counter() - started
    return seconds, [[_fill(t) for t in trades] for trades in out], _final(book)


def replay_baseline(ops: list[Op]) -> tuple[float, list[list[Fill]], tuple]:
    """Replay through the plain baseline book (``marl_market.bench.baseline``)."""
    book = PlainBook()
    submit, cancel = book.submit, book.cancel
    out: list = []
    keep = out.append
    started = time.perf_counter()
    for kind, is_buy, qty, price, agent in ops:
        if kind == CANCEL:
            cancel(qty)
        else:
            keep(submit(is_buy, qty, price, agent)[1])
    seconds = time.perf_counter() - started
    return seconds, out, (book.depth(True), book.depth(False))


def _fill(trade) -> Fill:
    return (
        trade.price,
        trade.qty,
        trade.buy_agent,
        trade.sell_agent,
        trade.buy_order_id,
        trade.sell_order_id,
    )


def _final(book: OrderBook) -> tuple:
    return (book.depth("buy", 10**9), book.depth("sell", 10**9))


def without_collector(replay: Callable, ops: list[Op]):
    """Run ``replay(ops)`` with set-up objects frozen and cyclic GC off, as a tuned loop would."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return replay(ops)
    finally:
        gc.enable()
        gc.unfreeze()


def measure_book(ops: list[Op], repeats: int = 3) -> BookFigures:
    """Time the three engines on ``ops`` (best of ``repeats``, interleaved) and check fills.

    Raises ``EnginesDisagree`` if any engine's fills or final book differ from the baseline's.
    """
    engines = {"submit": replay_submit, "fast": replay_fast, "baseline": replay_baseline}
    best = dict.fromkeys(engines, float("inf"))
    results = {}
    for _ in range(max(1, repeats)):
        for name, replay in engines.items():  # interleaved, so a noisy spell hits all three
            seconds, fills, final = without_collector(replay, ops)
            best[name] = min(best[name], seconds)
            results[name] = (fills, final)
    reference_fills, reference_final = results["baseline"]
    for name in ("submit", "fast"):
        fills, final = results[name]
        if fills != reference_fills:
            pairs = zip(fills, reference_fills, strict=False)
            first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(reference_fills))
            raise EnginesDisagree(f"{name} and the baseline differ first at operation {first}")
        if final != reference_final:
            raise EnginesDisagree(f"{name} and the baseline end with different books")
    flat = [fill for fills in reference_fills for fill in fills]
    n = len(ops)
    return BookFigures(
        ops=n,
        repeats=max(1, repeats),
        submit_orders_per_s=n / best["submit"],
        fast_orders_per_s=n / best["fast"],
        baseline_orders_per_s=n / best["baseline"],
        fills=len(flat),
        filled_qty=sum(fill[1] for fill in flat),
    )
