"""The market engine: accounting, rules, determinism and the pull of the makers."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population, Rules
from marl_market.core.market import Market, simulate
from marl_market.core.recorder import CHUNK_ROWS

SHORT = MarketConfig(steps=2_000)


def digest(result) -> str:
    """A hash of every array a run produces."""
    h = hashlib.sha256()
    for table in (result.steps, result.trades, result.agents, result.agent_steps):
        for name in sorted(table):
            array = table[name]
            h.update(name.encode())
            h.update(array.astype(str).tobytes() if array.dtype == object else array.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def run42():
    market = Market(SHORT, 42)
    result = market.run()
    return market, result


def test_every_trade_has_a_buyer_and_a_seller(run42):
    market, result = run42
    assert sum(market.inventory[0]) == 0  # positions net to zero
    assert abs(sum(market.cash)) < 1e-6  # no fees by default: cash nets to zero
    assert result.trades["qty"].sum() == result.steps["volume"].sum()
    assert (result.trades["price"] > 0).all()


def test_open_order_accounting_matches_the_book(run42):
    market, _ = run42
    book = market.books[0]
    open_buy = [0] * len(market.agent_kinds)
    open_sell = [0] * len(market.agent_kinds)
    for order_id, (is_buy, owner) in market._resting[0].items():
        qty = book.order_qty(order_id)
        assert qty > 0, "the market tracks an order the book no longer holds"
        (open_buy if is_buy else open_sell)[owner] += qty
    assert open_buy == market.open_buy[0]
    assert open_sell == market.open_sell[0]
    assert len(book) == len(market._resting[0])


def test_position_limits_hold(run42):
    market, result = run42
    limits = np.array(market.position_limit)
    for step in np.unique(result.agent_steps["step"]):
        rows = result.agent_steps["step"] == step
        assert (np.abs(result.agent_steps["inventory"][rows]) <= limits).all()


def test_record_is_consistent(run42):
    _, result = run42
    s = result.steps
    both = ~np.isnan(s["spread"])
    assert (s["spread"][both] > 0).all(), "a crossed or locked book was recorded at rest"
    assert np.allclose(s["mid"][both], (s["best_bid"][both] + s["best_ask"][both]) / 2)
    assert (s["makers_active"] == 2).all()
    assert len(s["step"]) == SHORT.steps


def test_same_seed_same_run_in_a_new_process():
    code = (
        "from marl_market.core.config import MarketConfig;"
        "from marl_market.core.market import simulate;"
        "from tests.test_market import digest;"
        "print(digest(simulate(MarketConfig(steps=1500), 7)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == digest(simulate(MarketConfig(steps=1500), 7))
    assert other != digest(simulate(MarketConfig(steps=1500), 8))


def test_fees_and_tax_are_charged_on_notional():
    rules = Rules(maker_rebate=0.0001, taker_fee=0.0003, tobin_tax=0.001)
    market = Market(SHORT.replace(rules=rules), 42)
    result = market.run()
    notional = float((result.trades["price"] * result.trades["qty"]).sum())
    expected = notional * (0.0001 - 0.0003 - 2 * 0.001)
    assert sum(market.cash) == pytest.approx(expected, rel=1e-9)


def test_short_ban_never_lets_holdings_go_negative():
    market = Market(SHORT.replace(rules=Rules(short_ban=True)), 42)
    result = market.run()
    endowment = np.array(market.endowment)
    holdings = np.array(market.inventory[0]) + endowment
    assert (holdings >= 0).all()
    assert result.counters["rejected_short_ban"] > 0
    steps = result.agent_steps
    assert (steps["inventory"] + endowment[steps["agent_id"]] >= 0).all()


def test_pulling_makers_empties_their_quotes_and_widens_the_spread():
    config = MarketConfig(steps=3_000)
    market = Market(config, 42)
    market.at(1_500, Market.pull_market_makers)
    result = market.run()
    makers = set(market.agent_ids["maker"])
    assert not any(owner in makers for _, owner in market._resting[0].values())
    spread = result.asset_series("spread")
    assert (result.asset_series("makers_active")[1_500:] == 0).all()
    assert np.nanmean(spread[1_500:]) > 3 * np.nanmean(spread[:1_500])


@pytest.mark.parametrize(
    "population",
    [
        Population(0, 4, 3, 4),
        Population(0, 0, 0, 4),
        Population(1, 0, 0, 0),
        Population(3, 0, 3, 0),
    ],
)
def test_any_population_runs(population):
    result = simulate(MarketConfig(steps=500, population=population), 42)
    assert len(result.steps["mid"]) == 500
    assert np.isfinite(result.steps["mid"]).all()


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="population is empty"):
        Market(MarketConfig(population=Population(0, 0, 0, 0)), 42)
    with pytest.raises(ValueError, match="steps"):
        Market(MarketConfig(steps=0), 42)


def test_multi_asset_market_uses_the_same_code_path():
    result = simulate(dataclasses.replace(SHORT, n_assets=3, steps=600), 42)
    assert sorted(set(result.steps["asset"].tolist())) == [0, 1, 2]
    assert set(result.trades["asset"].tolist()) == {0, 1, 2}
    mids = [result.asset_series("mid", a) for a in range(3)]
    assert not np.array_equal(mids[0], mids[1])


def test_rewards_are_mtm_change_plus_own_terms():
    market = Market(MarketConfig(steps=50), 42)
    market.run()
    mtm = market.mark_to_market()
    # Over a run, the dMTM parts sum to the final MTM; own terms make up the rest.
    noise = market.agent_ids["noise"]
    assert market.cumulative_reward[noise] == pytest.approx(mtm[noise])
    maker = market.agent_ids["maker"][0]
    assert market.cumulative_reward[maker] != pytest.approx(mtm[maker])


def test_pulling_makers_cancels_only_their_quotes_on_every_asset():
    # Order ids are per book: a maker's quote id on asset 0 is some other agent's order id on
    # asset 1. The pull must cancel the makers' quotes on both books and nobody else's order.
    market = Market(MarketConfig(steps=400, n_assets=2), 42)
    market.advance(200)
    makers = set(market.agent_ids["maker"])
    others_before = [
        {oid for oid, (_, owner) in resting.items() if owner not in makers}
        for resting in market._resting
    ]
    quotes = [
        {oid for oid, (_, owner) in resting.items() if owner in makers}
        for resting in market._resting
    ]
    assert all(quotes) and all(others_before)
    # The makers' ids on one asset collide with other agents' live orders on the other.
    assert quotes[0] & others_before[1] or quotes[1] & others_before[0]
    market.pull_market_makers()
    for asset, resting in enumerate(market._resting):
        assert not any(owner in makers for _, owner in resting.values())
        assert others_before[asset] <= set(resting)  # every other order still rests
        for oid in others_before[asset]:
            assert market.books[asset].order_qty(oid) > 0


def test_a_run_records_its_initial_config_and_its_interventions():
    market = Market(SHORT, 42)
    market.at(500, lambda m: m.set_rules(Rules(short_ban=True, tobin_tax=0.001)))
    market.at(700, Market.pull_market_makers)
    market.at(900, Market.return_market_makers)
    market.at(1_000, lambda m: m.scale_noise(0.5))
    market.at(1_100, lambda m: m.shock_fundamental(-0.01))
    result = market.run()
    assert result.config == SHORT  # what it started with, not the rules at the end
    assert market.config.rules.short_ban  # the market itself runs under the current rules
    assert result.interventions == [
        {"step": 500, "action": "set_rules", "changes": {"tobin_tax": 0.001, "short_ban": True}},
        {"step": 700, "action": "pull_market_makers", "changes": {}},
        {"step": 900, "action": "return_market_makers", "changes": {}},
        {"step": 1_000, "action": "scale_noise", "changes": {"factor": 0.5}},
        {"step": 1_100, "action": "shock_fundamental", "changes": {"log_jump": -0.01, "asset": 0}},
    ]
    # Replaying the initial config with the recorded interventions gives the same run.
    replay = Market(result.config, 42)
    replay.at(500, lambda m: m.set_rules(Rules(short_ban=True, tobin_tax=0.001)))
    replay.at(700, Market.pull_market_makers)
    replay.at(900, Market.return_market_makers)
    replay.at(1_000, lambda m: m.scale_noise(0.5))
    replay.at(1_100, lambda m: m.shock_fundamental(-0.01))
    assert digest(replay.run()) == digest(result)


def test_a_fork_shares_the_recorded_history_and_plays_on_like_the_original():
    config = MarketConfig(steps=12_000)
    market = Market(config, 3)
    market.advance(9_000)
    fork = market.fork()
    # Finished chunks are shared, not copied: a fork costs O(books + agents), not O(steps).
    assert market._steps.chunks and fork._steps.chunks[0] is market._steps.chunks[0]
    assert fork._trades.chunks[0] is market._trades.chunks[0]
    assert digest(fork.run()) == digest(market.run()) == digest(simulate(config, 3))


def test_recorded_steps_from_a_step_on_match_the_full_record():
    market = Market(MarketConfig(steps=9_000), 5)
    market.advance(8_500)
    full = market.recorded_steps()
    part = market.recorded_steps(4_000)
    for name, column in part.items():
        assert np.array_equal(column, full[name][4_000:], equal_nan=True), name


def test_the_record_is_kept_in_compact_numpy_chunks():
    # Memory per recorded value is 8 bytes (4 for trades), not a Python object: finished
    # chunks are numpy arrays and at most one chunk's rows wait as Python tuples.
    from marl_market.core.recorder import CHUNK_ROWS

    market = Market(MarketConfig(steps=2 * CHUNK_ROWS + 100), 11)
    market.run()
    for columns in (market._steps, market._trades, market._agent_samples):
        assert len(columns.rows) < CHUNK_ROWS
        assert all(isinstance(chunk, np.ndarray) for chunk in columns.chunks)
    assert len(market._steps.chunks) == 2 and market._trades.chunks[0].dtype == np.int32


def test_an_unrecorded_market_plays_the_same_market_in_flat_memory():
    config = MarketConfig(steps=30_000)
    recorded, bare = Market(config, 42), Market(config, 42, record=False)
    recorded.advance(30_000)
    bare.advance(30_000)
    # The same market: books, accounts and quotes agree after 30,000 steps.
    assert bare.cash == recorded.cash and bare.inventory == recorded.inventory
    assert [b.best_bid() for b in bare.books] == [b.best_bid() for b in recorded.books]
    assert len(recorded._steps) == 30_000
    # ...but the unrecorded one holds at most one unflushed chunk of rows, whatever the length.
    for columns in (bare._steps, bare._trades, bare._agent_samples):
        assert columns.chunks == [] and len(columns.rows) <= CHUNK_ROWS
    with pytest.raises(RuntimeError, match="no record"):
        bare.result()
    with pytest.raises(RuntimeError, match="no record"):
        Market(config, 42, record=False).run()
