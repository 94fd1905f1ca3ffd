"""Behaviour tests for the limit order book (``marl_market.core.book``).

The example tests pin down what a user of ``OrderBook`` relies on; the property tests at the
bottom replay random streams of limit / market / cancel operations against a deliberately
simple reference book (plain lists scanned linearly) and check the invariants after every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from marl_market import Order, OrderBook, Trade

# ----------------------------------------------------------------------------- helpers


def snapshot(book: OrderBook) -> tuple:
    """Everything observable about the book's resting state."""
    return (
        book.depth("buy", 1000),
        book.depth("sell", 1000),
        book.best_bid(),
        book.best_ask(),
        len(book),
    )


def fills(trades: list[Trade]) -> list[tuple]:
    return [t.as_tuple() for t in trades]


def rest(book: OrderBook, side: str, qty: int, price: int, agent_id: int = 0) -> int:
    order = Order(side, qty, price, agent_id)
    assert book.submit(order) == []
    return order.order_id


def seeded_book() -> OrderBook:
    """A small two-sided book: bids 99 (4) and 98 (6); asks 101 (5) and 103 (2)."""
    book = OrderBook()
    rest(book, "buy", 4, 99, agent_id=10)
    rest(book, "buy", 6, 98, agent_id=11)
    rest(book, "sell", 5, 101, agent_id=12)
    rest(book, "sell", 2, 103, agent_id=13)
    return book


# ----------------------------------------------------------------------------- priority


def test_price_time_priority_and_partial_fill():
    book = OrderBook()
    first = rest(book, "sell", 5, 100, agent_id=1)
    second = rest(book, "sell", 5, 100, agent_id=2)
    buy = Order("buy", 7, 100, agent_id=3)
    trades = book.submit(buy)

    assert [(t.sell_agent, t.qty, t.price) for t in trades] == [(1, 5, 100), (2, 2, 100)]
    assert [t.sell_order_id for t in trades] == [first, second]
    assert all(t.buy_agent == 3 and t.buy_order_id == buy.order_id for t in trades)
    assert all(t.aggressor == "buy" for t in trades)
    # Agent 2's remainder of 3 rests; the buy was filled completely and does not rest.
    assert book.order_qty(first) == 0
    assert book.order_qty(second) == 3
    assert book.order_qty(buy.order_id) == 0
    assert book.depth("sell") == [(100, 3)]
    assert book.depth("buy") == []
    assert len(book) == 1


def test_fifo_within_a_level():
    book = OrderBook()
    ids = [rest(book, "buy", 2, 50, agent_id=a) for a in (7, 8, 9, 10)]
    trades = book.submit(Order("sell", 7, 50, agent_id=1))

    assert [t.buy_order_id for t in trades] == ids
    assert [t.buy_agent for t in trades] == [7, 8, 9, 10]
    assert [t.qty for t in trades] == [2, 2, 2, 1]
    assert all(t.aggressor == "sell" and t.sell_agent == 1 for t in trades)
    assert book.depth("buy") == [(50, 1)]
    assert book.order_qty(ids[-1]) == 1


def test_fifo_order_survives_an_earlier_partial_fill():
    book = OrderBook()
    a = rest(book, "sell", 5, 100, agent_id=1)
    b = rest(book, "sell", 5, 100, agent_id=2)
    book.submit(Order("buy", 3, 100))  # partially fills a
    c = rest(book, "sell", 5, 100, agent_id=3)
    trades = book.submit(Order("buy", 9, 100))
    # a keeps its place at the front after the partial fill; c, the newest, comes last.
    assert [(t.sell_order_id, t.qty) for t in trades] == [(a, 2), (b, 5), (c, 2)]


def test_better_price_beats_older_order():
    book = OrderBook()
    rest(book, "sell", 5, 101, agent_id=1)  # older, worse price
    better = rest(book, "sell", 5, 100, agent_id=2)  # newer, better price
    trades = book.submit(Order("buy", 5, 101, agent_id=3))
    assert fills(trades) == [(100, 5, 3, 2, trades[0].buy_order_id, better, "buy")]
    assert book.depth("sell") == [(101, 5)]

    book = OrderBook()
    rest(book, "buy", 5, 99, agent_id=1)
    better = rest(book, "buy", 5, 100, agent_id=2)
    trades = book.submit(Order("sell", 5, 99, agent_id=3))
    assert [(t.buy_order_id, t.price) for t in trades] == [(better, 100)]
    assert book.depth("buy") == [(99, 5)]


def test_market_order_walks_levels_and_remainder_is_dropped():
    book = OrderBook()
    rest(book, "sell", 2, 100, agent_id=1)
    rest(book, "sell", 3, 101, agent_id=2)
    rest(book, "sell", 4, 103, agent_id=3)
    rest(book, "buy", 1, 90, agent_id=4)
    market = Order("buy", 20, agent_id=5)
    trades = book.submit(market)

    assert [(t.price, t.qty, t.sell_agent) for t in trades] == [
        (100, 2, 1),
        (101, 3, 2),
        (103, 4, 3),
    ]
    assert sum(t.qty for t in trades) == 9
    # The unfilled 11 is dropped: nothing new rests on either side.
    assert book.depth("sell") == []
    assert book.depth("buy") == [(90, 1)]
    assert book.best_ask() is None
    assert book.order_qty(market.order_id) == 0
    assert len(book) == 1


def test_market_sell_stops_when_filled():
    book = seeded_book()
    trades = book.submit(Order("sell", 7))
    assert [(t.price, t.qty) for t in trades] == [(99, 4), (98, 3)]
    assert book.depth("buy") == [(98, 3)]
    assert book.best_bid() == 98


def test_market_order_on_empty_book():
    book = OrderBook()
    order = Order("sell", 10)
    assert book.submit(order) == []
    assert order.order_id is not None
    assert snapshot(book) == ([], [], None, None, 0)
    assert book.cancel(order.order_id) == 0


def test_market_order_against_empty_side():
    book = OrderBook()
    rest(book, "buy", 3, 100)
    assert book.submit(Order("buy", 5)) == []
    assert snapshot(book) == ([(100, 3)], [], 100, None, 1)


def test_crossing_buy_limit_trades_at_resting_prices_and_rests_remainder():
    book = seeded_book()
    buy = Order("buy", 10, 102, agent_id=20)
    trades = book.submit(buy)

    # Only the 101 level is at or below the limit; it trades at 101, not at 102.
    assert [(t.price, t.qty, t.sell_agent) for t in trades] == [(101, 5, 12)]
    # The remainder rests at its own limit and becomes the best bid.
    assert book.depth("buy") == [(102, 5), (99, 4), (98, 6)]
    assert book.depth("sell") == [(103, 2)]
    assert book.best_bid() == 102
    assert book.best_ask() == 103
    assert book.order_qty(buy.order_id) == 5


def test_crossing_sell_limit_walks_several_levels():
    book = seeded_book()
    trades = book.submit(Order("sell", 12, 97, agent_id=21))
    assert [(t.price, t.qty) for t in trades] == [(99, 4), (98, 6)]
    assert book.depth("sell") == [(97, 2), (101, 5), (103, 2)]
    assert book.best_bid() is None
    assert book.best_ask() == 97


def test_limit_at_exactly_the_opposite_best_trades():
    book = seeded_book()
    trades = book.submit(Order("buy", 1, 101))
    assert [(t.price, t.qty) for t in trades] == [(101, 1)]
    assert book.depth("sell", 1) == [(101, 4)]


def test_non_crossing_limit_just_rests():
    book = seeded_book()
    assert book.submit(Order("buy", 1, 100)) == []
    assert book.submit(Order("sell", 1, 100 + 1)) == []
    assert book.depth("buy", 1) == [(100, 1)]
    assert book.depth("sell", 1) == [(101, 6)]


# ----------------------------------------------------------------------------- cancels


def test_cancel_return_values():
    book = OrderBook()
    live = rest(book, "buy", 5, 99)
    partial = rest(book, "sell", 10, 101)
    filled = rest(book, "sell", 3, 102)
    book.submit(Order("buy", 4, 101))  # partially fills `partial` (6 left)
    book.submit(Order("buy", 9, 102))  # 6 from `partial`, then all 3 of `filled`

    assert book.cancel(live) == 5
    assert book.cancel(live) == 0  # already cancelled
    assert book.cancel(partial) == 0  # fully filled by now
    assert book.cancel(filled) == 0  # fully filled
    assert book.cancel(987654) == 0  # unknown
    assert book.cancel(-1) == 0
    assert snapshot(book) == ([], [], None, None, 0)


def test_cancel_partially_filled_order_returns_remainder():
    book = OrderBook()
    oid = rest(book, "sell", 10, 101)
    book.submit(Order("buy", 4, 101))
    assert book.order_qty(oid) == 6
    assert book.cancel(oid) == 6
    assert book.cancel(oid) == 0
    assert book.depth("sell") == []


def test_cancelled_order_never_trades_and_keeps_others_in_fifo_order():
    book = OrderBook()
    a = rest(book, "buy", 2, 50, agent_id=1)
    b = rest(book, "buy", 2, 50, agent_id=2)
    c = rest(book, "buy", 2, 50, agent_id=3)
    assert book.cancel(b) == 2
    assert book.depth("buy") == [(50, 4)]
    trades = book.submit(Order("sell", 10))
    assert [t.buy_order_id for t in trades] == [a, c]


def test_cancel_last_order_of_level_then_reuse_price():
    book = OrderBook()
    oid = rest(book, "sell", 5, 100)
    rest(book, "sell", 5, 105)
    assert book.cancel(oid) == 5
    assert book.best_ask() == 105
    # The emptied price level can be used again and is found as the best price.
    new = rest(book, "sell", 1, 100)
    assert book.best_ask() == 100
    assert book.depth("sell") == [(100, 1), (105, 5)]
    trades = book.submit(Order("buy", 2, 110))
    assert [(t.price, t.qty) for t in trades] == [(100, 1), (105, 1)]
    assert trades[0].sell_order_id == new
    assert book.depth("sell") == [(105, 4)]


def test_matching_skips_a_level_emptied_by_cancels():
    book = OrderBook()
    top = rest(book, "buy", 5, 100)
    rest(book, "buy", 5, 99)
    book.cancel(top)
    trades = book.submit(Order("sell", 3, 90))
    assert [(t.price, t.qty) for t in trades] == [(99, 3)]
    assert book.depth("buy") == [(99, 2)]


# ----------------------------------------------------------------------------- ids, depth, best


def test_order_ids_unique_and_increasing():
    book = OrderBook()
    orders = [
        Order("buy", 1, 100),
        Order("sell", 1, 100),  # trades
        Order("sell", 3),  # market, nothing to hit
        Order("sell", 2, 105),
        Order("buy", 1, 99),
    ]
    ids = []
    for order in orders:
        assert order.order_id is None
        book.submit(order)
        ids.append(order.order_id)
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(set(ids))
    trades = book.submit(Order("buy", 1, 105))
    assert trades[0].buy_order_id > ids[-1]


def test_rejected_order_does_not_consume_an_id():
    book = OrderBook()
    a = rest(book, "buy", 1, 10)
    bad = Order("buy", 1, 10)
    bad.qty = 0
    with pytest.raises(ValueError):
        book.submit(bad)
    assert bad.order_id is None
    b = rest(book, "buy", 1, 10)
    assert b > a


def test_depth_aggregates_levels_best_first_and_respects_levels():
    book = OrderBook()
    for qty, price in [(1, 97), (2, 99), (3, 99), (4, 98), (5, 95), (6, 96)]:
        rest(book, "buy", qty, price)
    for qty, price in [(1, 104), (2, 102), (3, 102), (4, 103), (5, 101)]:
        rest(book, "sell", qty, price)

    assert book.depth("buy", 10) == [(99, 5), (98, 4), (97, 1), (96, 6), (95, 5)]
    assert book.depth("sell", 10) == [(101, 5), (102, 5), (103, 4), (104, 1)]
    assert book.depth("buy", 2) == [(99, 5), (98, 4)]
    assert book.depth("sell", 1) == [(101, 5)]
    assert book.depth("buy") == book.depth("buy", 5)
    assert book.depth("sell", 0) == []
    assert book.total_qty("buy") == 21
    assert book.total_qty("sell") == 15
    with pytest.raises(ValueError):
        book.depth("bid")


def test_best_prices_update_after_fills_and_cancels():
    book = OrderBook()
    assert (book.best_bid(), book.best_ask()) == (None, None)
    b1 = rest(book, "buy", 5, 99)
    rest(book, "buy", 5, 97)
    s1 = rest(book, "sell", 5, 101)
    rest(book, "sell", 5, 104)
    assert (book.best_bid(), book.best_ask()) == (99, 101)

    book.submit(Order("buy", 5, 101))  # takes the whole 101 level
    assert book.best_ask() == 104
    assert book.cancel(b1) == 5
    assert book.best_bid() == 97
    assert book.cancel(s1) == 0
    book.submit(Order("sell", 2, 97))  # partial: best bid unchanged
    assert book.best_bid() == 97
    assert book.depth("buy") == [(97, 3)]
    book.submit(Order("sell", 3))
    assert book.best_bid() is None
    rest(book, "buy", 1, 103)
    assert (book.best_bid(), book.best_ask()) == (103, 104)


def test_trade_fields_and_equality():
    book = OrderBook()
    sell = Order("sell", 5, 100, agent_id=4)
    book.submit(sell)
    buy = Order("buy", 2, 100, agent_id=6)
    (trade,) = book.submit(buy)
    assert trade.price == 100
    assert trade.qty == 2
    assert (trade.buy_agent, trade.sell_agent) == (6, 4)
    assert (trade.buy_order_id, trade.sell_order_id) == (buy.order_id, sell.order_id)
    assert trade.aggressor == "buy"
    assert trade == Trade(100, 2, 6, 4, buy.order_id, sell.order_id, "buy")
    assert trade != Trade(100, 2, 6, 4, buy.order_id, sell.order_id, "sell")


# ----------------------------------------------------------------------------- bad orders

BAD_FIELDS = [
    pytest.param({"qty": 0}, ValueError, id="zero-qty"),
    pytest.param({"qty": -3}, ValueError, id="negative-qty"),
    pytest.param({"qty": 2.0}, TypeError, id="float-qty"),
    pytest.param({"qty": 2.5}, TypeError, id="fractional-qty"),
    pytest.param({"qty": True}, TypeError, id="bool-qty"),
    pytest.param({"qty": "5"}, TypeError, id="str-qty"),
    pytest.param({"qty": None}, TypeError, id="none-qty"),
    pytest.param({"price": 100.0}, TypeError, id="float-price"),
    pytest.param({"price": 100.5}, TypeError, id="fractional-price"),
    pytest.param({"price": "100"}, TypeError, id="str-price"),
    pytest.param({"price": True}, TypeError, id="bool-price"),
    pytest.param({"price": 0}, ValueError, id="zero-price"),
    pytest.param({"price": -100}, ValueError, id="negative-price"),
    pytest.param({"side": "bid"}, ValueError, id="unknown-side"),
    pytest.param({"side": "BUY"}, ValueError, id="uppercase-side"),
    pytest.param({"side": None}, ValueError, id="none-side"),
    pytest.param({"agent_id": 1.5}, TypeError, id="float-agent"),
]


@pytest.mark.parametrize(("bad", "error"), BAD_FIELDS)
def test_bad_order_is_rejected_at_construction(bad, error):
    fields = {"side": "buy", "qty": 5, "price": 101, "agent_id": 1} | bad
    with pytest.raises(error):
        Order(**fields)


@pytest.mark.parametrize(("bad", "error"), BAD_FIELDS)
def test_mutated_bad_order_is_rejected_by_submit_without_changing_the_book(bad, error):
    book = seeded_book()
    before = snapshot(book)
    # A valid order that would trade (crosses the 101 ask) if it got through.
    order = Order("buy", 5, 101, agent_id=1)
    for name, value in bad.items():
        setattr(order, name, value)
    with pytest.raises(error):
        book.submit(order)
    assert snapshot(book) == before
    assert order.order_id is None
    # The book still works normally afterwards.
    assert [(t.price, t.qty) for t in book.submit(Order("buy", 1, 101))] == [(101, 1)]


@pytest.mark.parametrize(("bad", "error"), BAD_FIELDS)
def test_bad_order_construction_leaves_the_book_unchanged(bad, error):
    book = seeded_book()
    before = snapshot(book)
    fields = {"side": "sell", "qty": 5, "price": 98, "agent_id": 1} | bad
    with pytest.raises(error):
        book.submit(Order(**fields))
    assert snapshot(book) == before


def test_numpy_integers_are_accepted_and_trades_carry_plain_ints():
    book = OrderBook()
    sell = Order("sell", np.int64(5), np.int64(100), agent_id=np.int64(2))
    assert type(sell.qty) is int and type(sell.price) is int
    book.submit(sell)
    trades = book.submit(Order("buy", np.int64(3), np.int32(100), agent_id=np.int16(7)))
    assert [(t.price, t.qty, t.buy_agent, t.sell_agent) for t in trades] == [(100, 3, 7, 2)]
    for t in trades:
        for value in (t.price, t.qty, t.buy_agent, t.sell_agent, t.buy_order_id, t.sell_order_id):
            assert type(value) is int
    assert all(type(p) is int and type(q) is int for p, q in book.depth("sell"))
    assert type(book.best_ask()) is int


def test_numpy_integers_set_after_construction_are_accepted():
    book = OrderBook()
    rest(book, "sell", 5, 100, agent_id=2)
    order = Order("buy", 1, 1)
    order.qty = np.int64(4)
    order.price = np.uint16(100)
    (trade,) = book.submit(order)
    assert (trade.price, trade.qty) == (100, 4)
    assert type(trade.price) is int and type(trade.qty) is int


# ----------------------------------------------------------------------------- reference model


class RefBook:
    """An obviously-correct, slow order book: two plain lists scanned linearly.

    Each resting order is a list ``[order_id, agent_id, price, qty]``; the lists keep arrival
    order, and matching picks the best price, then the smallest order id, by scanning.
    """

    def __init__(self) -> None:
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self.next_id = 1

    def submit(self, side: str, qty: int, price: int | None, agent: int) -> tuple[int, list]:
        oid = self.next_id
        self.next_id += 1
        is_buy = side == "buy"
        opposite = self.asks if is_buy else self.bids
        trades = []
        while qty > 0:
            candidates = [
                o for o in opposite if price is None or (o[2] <= price if is_buy else o[2] >= price)
            ]
            if not candidates:
                break
            if is_buy:
                best = min(candidates, key=lambda o: (o[2], o[0]))
            else:
                best = min(candidates, key=lambda o: (-o[2], o[0]))
            fill = min(qty, best[3])
            if is_buy:
                trades.append((best[2], fill, agent, best[1], oid, best[0], side))
            else:
                trades.append((best[2], fill, best[1], agent, best[0], oid, side))
            qty -= fill
            best[3] -= fill
            if best[3] == 0:
                opposite.remove(best)
        if qty > 0 and price is not None:
            (self.bids if is_buy else self.asks).append([oid, agent, price, qty])
        return oid, trades

    def cancel(self, oid: int) -> int:
        for orders in (self.bids, self.asks):
            for o in orders:
                if o[0] == oid:
                    orders.remove(o)
                    return o[3]
        return 0

    def depth(self, side: str) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for o in self.bids if side == "buy" else self.asks:
            totals[o[2]] = totals.get(o[2], 0) + o[3]
        return sorted(totals.items(), reverse=side == "buy")

    def resting(self, oid: int) -> int:
        return sum(o[3] for o in self.bids + self.asks if o[0] == oid)


def test_reference_model_agrees_on_the_worked_example():
    ref = RefBook()
    ref.submit("sell", 5, 100, 1)
    ref.submit("sell", 5, 100, 2)
    _, trades = ref.submit("buy", 7, 100, 3)
    assert [(t[3], t[1]) for t in trades] == [(1, 5), (2, 2)]
    assert ref.depth("sell") == [(100, 3)]


# ----------------------------------------------------------------------------- properties

sides = st.sampled_from(["buy", "sell"])
quantities = st.integers(min_value=1, max_value=12)
agents = st.integers(min_value=0, max_value=5)
limit_op = st.tuples(
    st.just("limit"), sides, quantities, st.integers(min_value=95, max_value=105), agents
)
market_op = st.tuples(st.just("market"), sides, st.integers(min_value=1, max_value=30), agents)
# Cancel a previously submitted order picked by index (mod the number of ids so far), which
# covers live, partially filled, filled, already-cancelled and market-order ids; the second
# field, when True, picks an id that was never issued instead.
cancel_op = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=10_000), st.booleans())
operations = st.lists(
    st.one_of(limit_op, limit_op, limit_op, market_op, cancel_op), min_size=20, max_size=200
)

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check_invariants(book: OrderBook, ledger: dict[int, dict[str, int]]) -> None:
    bids, asks = book.depth("buy", 10_000), book.depth("sell", 10_000)
    best_bid, best_ask = book.best_bid(), book.best_ask()
    # Never crossed (or locked) at rest.
    if best_bid is not None and best_ask is not None:
        assert best_bid < best_ask
    # best_bid / best_ask agree with depth; depth is strictly best-first with positive qty.
    assert best_bid == (bids[0][0] if bids else None)
    assert best_ask == (asks[0][0] if asks else None)
    assert all(q > 0 for _, q in bids + asks)
    assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
    assert [p for p, _ in asks] == sorted({p for p, _ in asks})
    # Per order: filled + resting + cancelled + dropped == submitted.
    resting_total = 0
    for oid, acc in ledger.items():
        resting = book.order_qty(oid)
        resting_total += resting
        assert acc["filled"] + resting + acc["cancelled"] + acc["dropped"] == acc["submitted"]
    assert resting_total == sum(q for _, q in bids + asks)
    assert len(book) == sum(1 for oid in ledger if book.order_qty(oid) > 0)


def run_stream(
    ops: list[tuple], use_fast: bool, check_every: int = 1, sweep_slack: int | None = None
) -> None:
    book, ref = OrderBook(), RefBook()
    if sweep_slack is not None:  # sweep cancelled entries far more often than the default
        book._SWEEP_SLACK = sweep_slack
    ledger: dict[int, dict[str, int]] = {}
    issued: list[int] = []
    for step, op in enumerate(ops):
        if op[0] == "cancel":
            _, index, unknown = op
            oid = (10**6 + index) if unknown or not issued else issued[index % len(issued)]
            got = book.cancel(oid)
            assert got == ref.cancel(oid)
            if got:
                ledger[oid]["cancelled"] += got
        else:
            if op[0] == "limit":
                _, side, qty, price, agent = op
            else:
                _, side, qty, agent = op
                price = None
            if use_fast:
                oid, trades = book.submit_fast(side == "buy", qty, price, agent)
            else:
                order = Order(side, qty, price, agent)
                trades = book.submit(order)
                oid = order.order_id
            ref_oid, ref_trades = ref.submit(side, qty, price, agent)
            assert oid == ref_oid
            assert fills(trades) == ref_trades
            issued.append(oid)
            ledger[oid] = {"submitted": qty, "filled": 0, "cancelled": 0, "dropped": 0}
            taken = 0
            for t in trades:
                assert t.qty > 0
                ledger[t.buy_order_id]["filled"] += t.qty
                ledger[t.sell_order_id]["filled"] += t.qty
                taken += t.qty
            if price is None:
                ledger[oid]["dropped"] = qty - taken
        if step % check_every == 0 or step == len(ops) - 1:
            check_invariants(book, ledger)
            assert book.depth("buy", 10_000) == ref.depth("buy")
            assert book.depth("sell", 10_000) == ref.depth("sell")
    for oid in ledger:
        assert book.order_qty(oid) == ref.resting(oid)


@seed(20240601)
@PROPERTY_SETTINGS
@given(operations)
def test_random_streams_match_reference_model(ops):
    run_stream(ops, use_fast=False)


@seed(20240602)
@PROPERTY_SETTINGS
@given(operations)
def test_random_streams_match_reference_model_fast_path(ops):
    run_stream(ops, use_fast=True)


# Narrow price band + heavy cancelling: many levels emptied by cancels and re-used, which
# exercises the lazily-deleted heap entries.
churn_ops = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), sides, quantities, st.integers(98, 102), agents),
        st.tuples(st.just("cancel"), st.integers(0, 10_000), st.just(False)),
        st.tuples(st.just("cancel"), st.integers(0, 10_000), st.just(False)),
        market_op,
    ),
    min_size=20,
    max_size=200,
)


@seed(20240603)
@PROPERTY_SETTINGS
@given(churn_ops)
def test_cancel_heavy_streams_match_reference_model(ops):
    run_stream(ops, use_fast=False)


@seed(20240604)
@PROPERTY_SETTINGS
@given(churn_ops)
def test_cancel_heavy_streams_with_frequent_sweeps_match_reference_model(ops):
    # With no slack, the book sweeps zeroed (cancelled) entries out of its levels whenever the
    # cancels since the last sweep outnumber the live orders, i.e. many times per stream.
    run_stream(ops, use_fast=True, sweep_slack=0)


def test_cancel_churn_behind_a_resting_order_does_not_grow_memory():
    """Orders added and cancelled behind a long-lived order at the same price must not leave
    garbage behind for as long as the level lives."""
    book = OrderBook()
    anchor = rest(book, "sell", 1, 105)
    rest(book, "buy", 1, 95)
    for _ in range(20_000):
        book.cancel(rest(book, "sell", 5, 105))
    entries = sum(len(level) for side in book._levels for level in side.values())
    assert entries <= 2 * len(book) + OrderBook._SWEEP_SLACK + 1
    assert book.depth("sell") == [(105, 1)]
    # FIFO is intact: the anchor still trades first, then a newer order.
    newer = rest(book, "sell", 2, 105)
    trades = book.submit(Order("buy", 3, 105))
    assert [(t.sell_order_id, t.qty) for t in trades] == [(anchor, 1), (newer, 2)]


@pytest.mark.parametrize("stream_seed", [1, 2, 3])
def test_long_numpy_stream_matches_reference_model(stream_seed):
    """A few thousand operations with a drifting mid, so that levels are created, emptied by
    trades and cancels, and re-used many times over (longer than hypothesis's examples)."""
    rng = np.random.default_rng(stream_seed)
    ops: list[tuple] = []
    mid = 1000
    issued = 0
    for _ in range(3000):
        mid += int(rng.integers(-1, 2))
        kind = rng.random()
        side = "buy" if rng.random() < 0.5 else "sell"
        agent = int(rng.integers(0, 8))
        if kind < 0.6:
            offset = int(rng.integers(-3, 8))  # mostly passive, sometimes crossing
            price = mid - offset if side == "buy" else mid + offset
            ops.append(("limit", side, int(rng.integers(1, 20)), price, agent))
            issued += 1
        elif kind < 0.85:
            # Mostly recent orders, which are the ones most likely to be still resting.
            back = int(rng.integers(0, 300)) if rng.random() < 0.8 else int(rng.integers(0, 10**6))
            ops.append(("cancel", max(issued - 1 - back, 0), False))
        else:
            ops.append(("market", side, int(rng.integers(1, 40)), agent))
            issued += 1
    run_stream(
        ops,
        use_fast=bool(stream_seed % 2),
        check_every=100,
        sweep_slack=[0, 8, 64][stream_seed - 1],
    )
