"""Spec 000's liquidity game in the core: fees, execution takers, arbitrageurs, learner slots
and the reward terms, each checked on a seed-42 market."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marl_market.core.actions import ArbitrageAction, MakerAction, TakerAction, TraderAction
from marl_market.core.config import (
    MarketConfig,
    Population,
    RegimeParams,
    Rules,
    TakerParams,
)
from marl_market.core.market import Market
from marl_market.core.results import REWARD_COMPONENTS
from marl_market.core.takers import ExecutionTask

SEED = 42


def two_assets(steps: int = 2_000, **population) -> MarketConfig:
    return MarketConfig(
        steps=steps,
        n_assets=2,
        fundamental_correlation=((1.0, 0.9), (0.9, 1.0)),
        population=Population(**population),
    )


def test_fees_rebates_and_taxes_conserve_cash():
    rules = Rules(taker_fee=5e-4, maker_rebate=2e-4, tobin_tax=1e-4)
    config = MarketConfig(steps=2_000, rules=rules, population=Population(takers=2))
    agents = Market(config, SEED).run().agents
    # Trades move cash between agents; the venue keeps fees and taxes and pays rebates.
    venue_take = agents["fees_paid"].sum() + agents["taxes_paid"].sum()
    venue_take -= agents["rebates_received"].sum()
    assert agents["cash"].sum() + venue_take == pytest.approx(0.0, abs=1e-6)
    assert agents["fees_paid"].sum() > 0 and agents["rebates_received"].sum() > 0
    # Only the resting side earns rebates and only the aggressor pays fees: noise traders
    # trade both ways, execution takers only take.
    takers = agents["kind"] == "taker"
    assert np.all(agents["rebates_received"][takers] == 0)
    assert np.all(agents["fees_paid"][takers] > 0)


@settings(max_examples=12, deadline=None)
@given(
    fee=st.floats(0.0, 2e-3),
    rebate=st.floats(0.0, 2e-3),
    tax=st.floats(0.0, 1e-3),
    seed=st.integers(0, 10_000),
)
def test_cash_is_conserved_for_any_fees(fee, rebate, tax, seed):
    rules = Rules(taker_fee=fee, maker_rebate=rebate, tobin_tax=tax)
    config = two_assets(steps=300, takers=1, arbs=1).replace(rules=rules)
    agents = Market(config, seed).run().agents
    net = agents["fees_paid"] + agents["taxes_paid"] - agents["rebates_received"]
    scale = max(1.0, float(np.abs(agents["cash"]).sum()))
    assert abs(agents["cash"].sum() + net.sum()) <= 1e-9 * scale


def test_a_taker_fee_makes_momentum_traders_trade_less():
    def momentum_trades(rules: Rules) -> int:
        agents = Market(MarketConfig(steps=3_000, rules=rules), SEED).run().agents
        return int(agents["n_trades"][agents["kind"] == "momentum"].sum())

    assert momentum_trades(Rules(taker_fee=2e-4)) < momentum_trades(Rules())


@pytest.mark.parametrize("style", ["twap", "pov"])
def test_execution_takers_complete_their_target_on_time(style):
    taker = TakerParams(target=300, horizon=500, style=style)
    config = MarketConfig(steps=800, taker=taker, population=Population(takers=2))
    market = Market(config, SEED)
    market.advance(250)
    halfway = market.execution_report()
    market.advance(500)
    done = market.execution_report()
    market.advance(800)
    assert [row["filled"] for row in done] == [300, 300]
    assert market.execution_report() == done  # nothing traded after the horizon
    assert [row["side"] for row in done] == ["buy", "sell"]
    if style == "twap":  # on the straight line, a child order at most behind
        assert all(abs(row["filled"] - 150) <= taker.max_child for row in halfway)
    for row in done:
        assert math.isfinite(row["shortfall_bp"]) and row["style"] == style


def test_shortfall_is_the_average_price_against_the_arrival_mid_in_bp():
    buy = ExecutionTask(agent_id=0, asset=0, side=1, target=10, horizon=5, arrival_mid=10_000.0)
    # Bought 10 at 10,010 on average: 10 bp worse than the arrival mid.
    assert buy.shortfall_bp(position=10, cash=-100_100.0) == pytest.approx(10.0)
    sell = ExecutionTask(agent_id=1, asset=0, side=-1, target=10, horizon=5, arrival_mid=10_000.0)
    # Sold 10 at 10,010 on average: 10 bp better than the arrival mid.
    assert sell.shortfall_bp(position=-10, cash=100_100.0) == pytest.approx(-10.0)
    assert math.isnan(buy.shortfall_bp(position=0, cash=0.0))


def test_an_arbitrageurs_two_legs_are_placed_in_one_turn():
    market = Market(two_assets(steps=3_000, arbs=1), SEED)
    (arb,) = market.agent_ids["arb"]
    placed: list[tuple[int, int, int]] = []  # (step, agent, asset) of every order, in order
    original = market._place

    def logged(agent_id, asset, *args):
        placed.append((market.t, agent_id, asset))
        return original(agent_id, asset, *args)

    market._place = logged
    result = market.run()
    arb_orders = [i for i, (_, agent, _) in enumerate(placed) if agent == arb]
    assert len(arb_orders) >= 10, "the arbitrageur should trade on a 0.9-correlated pair"
    # Opening and closing orders come in pairs, one per asset, with nobody in between.
    pairs = 0
    for i in arb_orders:
        if i + 1 in arb_orders and placed[i][0] == placed[i + 1][0]:
            assert {placed[i][2], placed[i + 1][2]} == {0, 1}
            pairs += 1
    assert pairs >= 5
    assert result.agents["unhedged_penalty"][arb] <= 0


def test_arbitrageurs_need_two_assets():
    with pytest.raises(ValueError, match="at least two assets"):
        Market(MarketConfig(steps=10, population=Population(arbs=1)), SEED)


LEARNERS = ("maker", "taker", "arb", "momentum", "value", "noise")


def test_an_idle_learner_slot_leaves_everyone_elses_draws_unchanged():
    base = two_assets(takers=1, arbs=1)
    with_slots = base.replace(population=Population(takers=1, arbs=1, learners=LEARNERS))
    plain = Market(base, SEED).run()
    idle = Market(with_slots, SEED).run()
    for column in ("mid", "volume", "spread", "fair_value"):
        np.testing.assert_array_equal(plain.steps[column], idle.steps[column])
    for column in plain.trades:
        np.testing.assert_array_equal(plain.trades[column], idle.trades[column])
    assert list(idle.agents["policy"][-len(LEARNERS) :]) == ["learner"] * len(LEARNERS)
    assert np.all(idle.agents["n_trades"][-len(LEARNERS) :] == 0)


def test_learners_act_through_typed_actions_in_their_own_turn():
    config = two_assets(steps=300).replace(population=Population(learners=LEARNERS))
    market = Market(config, SEED)
    assert market.learner_names == [
        "maker_0",
        "taker_0",
        "arb_0",
        "momentum_0",
        "value_0",
        "noise_0",
    ]
    for _ in range(300):
        market.act("maker_0", MakerAction((2.0, 2.0), (2.0, 2.0), (5, 5)))
        market.act("taker_0", TakerAction(direction=1.0, size=2))
        market.act("arb_0", ArbitrageAction(direction=1.0, close=False, size=1))
        market.act("momentum_0", TraderAction((1.0, 1.0), (-1.0, 1.0), (1, 1)))
        market.step()
    agents = market.result().agents
    ids = {name: market.learner_id(name) for name in market.learner_names}
    assert agents["n_trades"][ids["taker_0"]] > 0
    positions = market.result().positions
    inventory = positions["inventory"].reshape(len(agents["agent_id"]), 2)
    assert inventory[ids["taker_0"]][0] > 0  # buys on its asset
    arb = inventory[ids["arb_0"]]
    assert arb[0] > 0 > arb[1]  # long a, short b
    assert inventory[ids["momentum_0"]][0] <= 0 <= inventory[ids["momentum_0"]][1]
    # A maker requoting 2 ticks from the mid on both books is present on most steps (not
    # all: the taker and the trader fill its quotes, and the mid moves away from them).
    presence = agents["liquidity_bonus"][ids["maker_0"]] / config.maker.liquidity_bonus
    assert 0.7 * 300 < presence <= 300
    assert agents["delay_penalty"][ids["taker_0"]] < 0
    with pytest.raises(TypeError, match="MakerAction"):
        market.act("maker_0", TakerAction(direction=1.0, size=1))
    with pytest.raises(ValueError, match="no learner called"):
        market.act("maker_9", MakerAction((1.0, 1.0), (1.0, 1.0), (1, 1)))


def test_the_liquidity_bonus_pays_for_presence_not_for_being_there():
    config = MarketConfig(steps=300, population=Population(learners=("maker", "maker")))
    market = Market(config, SEED)
    for _ in range(300):
        market.act("maker_0", MakerAction((3.0,), (3.0,), (5,)))  # near the mid
        market.act("maker_1", MakerAction((60.0,), (60.0,), (5,)))  # far away: not present
        market.step()
    bonus = market.result().agents["liquidity_bonus"]
    assert bonus[market.learner_id("maker_0")] > 0
    assert bonus[market.learner_id("maker_1")] == 0


def test_pulled_makers_earn_no_liquidity_bonus():
    market = Market(MarketConfig(steps=2_000), SEED)
    market.advance(1_000)
    before = market.reward_components()["liquidity_bonus"].copy()
    market.pull_market_makers()
    market.advance(2_000)
    assert np.array_equal(market.reward_components()["liquidity_bonus"], before)
    assert before[market.agent_ids["maker"]].min() > 0


def test_reward_is_the_sum_of_its_components():
    config = two_assets(takers=2, arbs=1).replace(rules=Rules(taker_fee=1e-4))
    components = Market(config, SEED).run().agents
    total = sum(components[name] for name in REWARD_COMPONENTS if name != "mtm")
    np.testing.assert_allclose(components["reward"], components["pnl"] + total)
    kinds = components["kind"]
    assert np.all(components["liquidity_bonus"][kinds != "maker"] == 0)
    assert np.all(components["delay_penalty"][kinds != "taker"] == 0)
    assert np.all(components["unhedged_penalty"][kinds != "arb"] == 0)


def test_makers_quote_wider_in_stress():
    regimes = RegimeParams(leave_normal=0.002, leave_stress=0.002, stress_factor=3.0)
    result = Market(MarketConfig(steps=6_000, regimes=regimes), SEED).run()
    spread, regime = result.steps["spread"], result.steps["regime"]
    assert 0.1 < regime.mean() < 0.9
    assert np.nanmean(spread[regime == 1]) > 1.5 * np.nanmean(spread[regime == 0])


def test_default_market_is_unchanged_by_the_new_types():
    # The N = 1 ecology with no takers, arbitrageurs or learners: positions are per asset.
    result = Market(MarketConfig(steps=500), SEED).run()
    np.testing.assert_array_equal(result.positions["inventory"], result.agents["inventory"])
    assert set(result.agents["policy"]) == {"fixed"}


def test_venue_books_of_one_asset_share_its_fundamental_and_invite_arbitrage():
    from marl_market.core.fundamentals import venue_listings

    config = MarketConfig(
        steps=3_000,
        n_assets=4,  # books: asset 0 on venues 0 and 1, asset 1 on venues 0 and 1
        listings=venue_listings(2, 2),
        fundamental_correlation=((1.0, 0.5), (0.5, 1.0)),
        population=Population(arbs=1),  # trades books 0 and 1: one asset, two venues
    )
    assert config.listings == (0, 0, 1, 1)
    result = Market(config, SEED).run()
    fair = [result.asset_series("fair_value", book) for book in range(4)]
    np.testing.assert_array_equal(fair[0], fair[1])
    np.testing.assert_array_equal(fair[2], fair[3])
    assert not np.array_equal(fair[0], fair[2])
    mids = [result.asset_series("mid", book) for book in range(4)]
    # The venues of one asset stay far closer to each other than to the other asset.
    same = np.mean(np.abs(mids[0] - mids[1]))
    other = np.mean(np.abs(mids[0] - mids[2]))
    assert same < other
    (arb,) = Market(config, SEED).agent_ids["arb"]
    assert result.agents["n_trades"][arb] > 0


@pytest.mark.parametrize(
    ("listings", "message"),
    [((0, 0), "one fundamental per book"), ((0, 2, 2), "0..k-1"), ((0, -1, 1), "non-negative")],
)
def test_bad_listings_are_refused_with_one_message(listings, message):
    with pytest.raises(ValueError, match=message):
        Market(MarketConfig(steps=10, n_assets=3, listings=listings), SEED)


def test_agent_samples_are_per_asset_with_the_whole_accounts_pnl():
    market = Market(two_assets(steps=1_000), SEED)
    result = market.run()
    samples = result.agent_steps
    n_agents = len(result.agents["agent_id"])
    steps = np.unique(samples["step"])
    assert samples["step"].size == steps.size * n_agents * 2
    last = samples["step"] == steps[-1]
    by_agent_asset = {
        (int(a), int(k)): (int(q), float(p))
        for a, k, q, p in zip(
            samples["agent_id"][last],
            samples["asset"][last],
            samples["inventory"][last],
            samples["pnl"][last],
            strict=True,
        )
    }
    assert set(by_agent_asset) == {(a, k) for a in range(n_agents) for k in (0, 1)}
    # Inventories differ between the assets (they are not a sum written twice) ...
    assert any(by_agent_asset[a, 0][0] != by_agent_asset[a, 1][0] for a in range(n_agents))
    # ... while the PnL is the account's, the same on both of an agent's rows.
    assert all(by_agent_asset[a, 0][1] == by_agent_asset[a, 1][1] for a in range(n_agents))
