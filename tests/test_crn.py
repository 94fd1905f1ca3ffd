"""Common random numbers: a scenario run shares every random draw its intervention does not change.

Each agent type (each maker) and each purpose draws from its own stream, and every stream draws
the same count of numbers whatever the market does, so after an intervention the fundamental,
the noise traders' candidate orders, the value traders' views and the makers' numbers stay
exactly those of the baseline.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population
from marl_market.core.market import Market
from marl_market.core.scenarios import Scenario

STEPS = 3_000
START = 1_500
CONFIG = MarketConfig(steps=STEPS)


def recording(market: Market) -> dict[str, list]:
    """Log every candidate the noise, momentum and value streams hand out, and makers' draws."""
    log: dict[str, list] = {"noise": [], "momentum": [], "value": [], "maker": []}
    for kind in ("noise", "momentum", "value"):
        arrivals = getattr(market, kind).arrivals
        original = arrivals.at

        def at(step, asset, original=original, out=log[kind]):
            rows = original(step, asset)
            out.append((step, asset, tuple(rows)))
            return rows

        arrivals.at = at
    return log


def run(config: MarketConfig, scenario: Scenario | None = None, seed: int = 42):
    market = Market(config, seed)
    log = recording(market)
    if scenario is not None:
        scenario.resolved(config.steps).schedule(market)
    result = market.run()
    return market, result, log


@pytest.fixture(scope="module")
def baseline():
    return run(CONFIG)


def same_stream(a, b) -> bool:
    """Two per-step streams of one seed that drew the same blocks and hold the same one."""
    state = a.rng.bit_generator.state == b.rng.bit_generator.state
    return state and a._start == b._start and a._rows == b._rows


def before(table: dict, start: int) -> dict:
    rows = table["step"] < start
    return {name: column[rows] for name, column in table.items()}


def assert_tables_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name


@pytest.mark.parametrize("kind", ["flash_crash", "short_ban", "tobin_tax", "drought", "shock"])
def test_identical_to_the_baseline_before_the_intervention(baseline, kind):
    _, base, _ = baseline
    _, result, _ = run(CONFIG, Scenario(kind, start_at=START))
    for table in ("steps", "trades", "agent_steps"):
        assert_tables_equal(
            before(getattr(result, table), START), before(getattr(base, table), START)
        )
    # ... and the intervention does change the market afterwards.
    assert not np.array_equal(result.steps["mid"], base.steps["mid"])


@pytest.mark.parametrize("kind", ["flash_crash", "short_ban", "tobin_tax", "drought"])
def test_draws_stay_aligned_after_the_intervention(baseline, kind):
    base_market, base, base_log = baseline
    market, result, log = run(CONFIG, Scenario(kind, start_at=START))
    # The fundamental path is the same to the last step (a shock would move it on purpose).
    assert np.array_equal(result.steps["fair_value"], base.steps["fair_value"])
    # Every candidate action of every thinned type - who, when, and all its numbers - is the
    # baseline's, whatever the intervention did to prices and activity.
    for stream in ("noise", "momentum", "value"):
        assert log[stream] == base_log[stream], stream
    assert sum(len(rows) for _, _, rows in log["noise"][START:]) > 1_000
    # Value traders' views of fair value do not depend on the market either.
    assert market.value.view_error == base_market.value.view_error


def test_stress_changes_only_the_noise_stream_it_reparametrises(baseline):
    _, base, base_log = baseline
    _, result, log = run(CONFIG, Scenario("stress", start_at=START))
    assert log["momentum"] == base_log["momentum"]
    assert log["value"] == base_log["value"]
    assert log["noise"][:START] == base_log["noise"][:START]
    assert log["noise"][START:] != base_log["noise"][START:]  # 1.5x the rate from the start
    fair, base_fair = result.asset_series("fair_value"), base.asset_series("fair_value")
    assert np.array_equal(fair[:START], base_fair[:START])


def test_adding_a_maker_leaves_everyone_elses_draws_alone(baseline):
    base_market, base, base_log = baseline
    more = dataclasses.replace(CONFIG, population=Population(makers=3))
    market, result, log = run(more)
    for stream in ("noise", "momentum", "value"):
        assert log[stream] == base_log[stream], stream
    assert np.array_equal(result.steps["fair_value"], base.steps["fair_value"])
    assert market.value.view_error == base_market.value.view_error
    # Maker i draws the same numbers whether there are two makers or three (the same seed and
    # the same generator state at the end: the same numbers drawn all along).
    for member in range(2):
        assert same_stream(market.makers.draws[member], base_market.makers.draws[member])
    assert not np.array_equal(result.steps["spread"], base.steps["spread"], equal_nan=True)


def test_pulled_makers_come_back_with_the_baselines_numbers():
    # A maker away for 500 steps draws nothing in that time but its numbers are tied to the
    # step, so on its return it draws what it would have drawn had it never left.
    market = Market(CONFIG, 42)
    market.at(START, Market.pull_market_makers)
    market.at(START + 500, Market.return_market_makers)
    market.run()
    base = Market(CONFIG, 42)
    base.run()
    for member in range(2):
        assert same_stream(market.makers.draws[member], base.makers.draws[member])


def test_turn_order_keys_come_from_each_types_own_stream(baseline):
    # A noise candidate's turn key is part of its row: the same in both runs, so the order of
    # two noise orders never depends on how many momentum or maker turns a step has.
    _, _, base_log = baseline
    more = dataclasses.replace(CONFIG, population=Population(makers=0, momentum=8))
    _, _, log = run(more)
    assert log["noise"] == base_log["noise"]
