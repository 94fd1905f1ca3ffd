"""The zero-intelligence crowd: PyMarketSim's background traders in our market."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population, ZIParams, zi_crowd_config
from marl_market.core.market import Market, simulate


@pytest.fixture(scope="module")
def crowd():
    market = Market(zi_crowd_config(n_agents=500, steps=4_000), 42)
    calls = []
    original = market.zi.decisions.next

    def counting():
        calls.append(1)
        return original()

    market.zi.decisions.next = counting
    result = market.run()
    return market, result, len(calls)


def test_every_arrival_is_a_one_unit_limit_order_replacing_the_last(crowd):
    market, result, arrivals = crowd
    # 500 members x 0.005 x 4,000 steps = 10,000 arrivals expected (Poisson sd 100).
    assert 9_500 < arrivals < 10_500
    # An arrival places one order and withdraws the previous one if it still rests: no cancel
    # on a member's first arrival, nor after a trade filled its order (two orders a trade).
    events = result.counters["book_events"]
    assert 2 * arrivals - 500 - 2 * len(result.trades["step"]) <= events <= 2 * arrivals
    assert (result.trades["qty"] == 1).all()
    # Each member rests at most one order at a time.
    owners = [owner for _, owner in market._resting[0].values()]
    assert len(owners) == len(set(owners)) and len(owners) > 400


def test_orders_sit_around_the_private_valuation(crowd):
    market, result, arrivals = crowd
    p = market.config.zi
    book = market.books[0]
    fair = result.asset_series("fair_value")[-1]
    prices = [entry[3] for entry in book._live.values()]
    # Private values have sd 224 ticks and orders are shaded 50-100 ticks: orders rest within
    # a few sd of fair value, and buys below sells on average (the shade).
    assert np.abs(np.array(prices) - fair).max() < 6 * p.private_value_sd + p.shade_max + 100
    bids = [entry[3] for entry in book._live.values() if entry[4]]
    asks = [entry[3] for entry in book._live.values() if not entry[4]]
    assert np.mean(asks) - np.mean(bids) > p.shade_min
    # Few trades: shaded one-unit orders rarely cross, most of them while the book fills up
    # (PyMarketSim: 330 trades for 125,000 orders in 50,000 steps).
    assert 0 < len(result.trades["step"]) < 0.05 * arrivals


def test_private_values_diminish_with_position():
    market = Market(zi_crowd_config(n_agents=3, steps=10), 1)
    zi = market.zi
    for member in range(3):
        buys = [zi.private_value(member, q, True) for q in range(-12, 12)]
        assert buys == sorted(buys, reverse=True)  # each further unit bought is worth less
        # Selling the unit just bought is worth what buying it was.
        assert zi.private_value(member, 1, False) == zi.private_value(member, 0, True)


def test_the_flow_follows_the_arrival_rate_not_the_crowd_size():
    # 2.5 arrivals a step from 50 members at 0.05 or from 5,000 at 0.0005: the same flow of
    # orders. Each member is scheduled once, at its next arrival, so a step only touches the
    # members that arrive, and a decision is drawn per arrival.
    orders = {}
    for n, p in ((50, 0.05), (5_000, 0.0005)):
        config = dataclasses.replace(
            zi_crowd_config(n_agents=n, steps=3_000), zi=ZIParams(arrival_probability=p)
        )
        market = Market(config, 7)
        market.run()
        decisions = market.zi.decisions
        orders[n] = decisions._drawn + decisions._next
        assert sum(len(due) for due in market.zi.arrivals._due[0].values()) == n
    assert abs(orders[50] - 7_500) < 400 and abs(orders[5_000] - 7_500) < 400


def test_zi_traders_join_a_default_market_without_changing_the_others_draws():
    base = simulate(MarketConfig(steps=500), 42)
    mixed = Market(MarketConfig(steps=500, population=Population(zi=50)), 42)
    result = mixed.run()
    assert np.array_equal(result.steps["fair_value"], base.steps["fair_value"])
    assert result.agents["kind"].tolist().count("zi") == 50
    assert (result.trades["buy_agent"] >= 13).any() or (result.trades["sell_agent"] >= 13).any()
