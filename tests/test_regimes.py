"""Regimes normal / stress as a Markov chain: its frequencies, its record, its stress."""

import math

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population, RegimeParams
from marl_market.core.market import Market, simulate
from marl_market.core.regimes import STRESS, RegimeChain, stress_regime
from marl_market.core.scenarios import Scenario, run_scenario

LEAVE_NORMAL, LEAVE_STRESS = 0.01, 0.04
SWITCHING = RegimeParams(leave_normal=LEAVE_NORMAL, leave_stress=LEAVE_STRESS)
FEW = Population(makers=1, momentum=1, value=1, noise=2)


def _chain_path(params: RegimeParams, steps: int, seed: int) -> np.ndarray:
    chain = RegimeChain(params, np.random.default_rng(seed))
    path = [chain.state]
    for t in range(1, steps):
        chain.advance(t)
        path.append(chain.state)
    return np.array(path)


def _check_frequencies(path: np.ndarray, leave_normal: float, leave_stress: float) -> None:
    """The path's stress share and switching rates against the chain's probabilities."""
    before, after = path[:-1], path[1:]
    for state, p in ((0, leave_normal), (1, leave_stress)):
        # Each step spent in a state is one Bernoulli(p) trial of leaving it.
        trials = int(np.sum(before == state))
        left = int(np.sum((before == state) & (after != state)))
        assert abs(left - trials * p) < 4.0 * math.sqrt(trials * p * (1 - p)) + 1, (state, left)
    # The stationary share in stress, with the sd of a two-state chain's occupation mean:
    # pi (1 - pi) (1 + lambda) / (1 - lambda) / n, lambda = 1 - p_leave_normal - p_leave_stress.
    share = leave_normal / (leave_normal + leave_stress)
    lam = 1.0 - leave_normal - leave_stress
    sd = math.sqrt(share * (1 - share) * (1 + lam) / (1 - lam) / len(path))
    assert abs(path.mean() - share) < 4.0 * sd, (path.mean(), share, sd)


def test_the_chain_switches_with_its_probabilities():
    _check_frequencies(_chain_path(SWITCHING, 200_000, 1), LEAVE_NORMAL, LEAVE_STRESS)


def test_the_start_is_in_stress_with_its_probability():
    params = RegimeParams(start_stress=0.3)
    starts = [RegimeChain(params, np.random.default_rng(seed)).state for seed in range(4_000)]
    assert abs(np.mean(starts) - 0.3) < 4.0 * math.sqrt(0.3 * 0.7 / 4_000)


def test_the_market_records_the_regime_of_every_step():
    steps = 30_000
    result = simulate(MarketConfig(steps=steps, population=FEW, regimes=SWITCHING), 5)
    regime = result.asset_series("regime")
    assert len(regime) == steps and set(np.unique(regime)) == {0, 1}
    _check_frequencies(regime, LEAVE_NORMAL, LEAVE_STRESS)


def test_in_stress_the_stress_regime_applies():
    """The fundamental is ``stress_factor`` x as volatile in stress, and the noise regime's
    parameters are the stress scenario's; back in normal they are restored."""
    config = MarketConfig(steps=30_000, population=FEW, regimes=SWITCHING)
    market = Market(config, 11)
    stressed_fundamental, stressed_noise = stress_regime(config, SWITCHING.stress_factor)
    seen = set()
    while market.t < config.steps:
        market.step()
        expected = (
            (stressed_fundamental, stressed_noise)
            if market.regime == STRESS
            else (config.fundamental, config.noise)
        )
        assert (market.config.fundamental, market.config.noise) == expected
        assert market.noise.params == expected[1]
        seen.add(market.regime)
    assert seen == {0, 1}
    result = market.result()
    regime = result.asset_series("regime")
    returns = np.diff(np.log(result.asset_series("fair_value")))
    # The return of step t is the fundamental's move at the end of step t.
    in_stress = regime[1:] == STRESS
    ratio = np.std(returns[in_stress]) / np.std(returns[~in_stress])
    assert 2.5 < ratio < 3.5  # stress_factor 3 (jumps add a little to both)


def test_without_switching_nothing_changes():
    """Default regimes draw nothing: a run equals one with explicit zero probabilities, and
    the regime column is all normal."""
    config = MarketConfig(steps=2_000)
    plain = simulate(config, 42)
    explicit = simulate(config.replace(regimes=RegimeParams(stress_factor=5.0)), 42)
    for name, column in plain.steps.items():
        np.testing.assert_array_equal(column, explicit.steps[name], err_msg=name)
    assert not plain.asset_series("regime").any()


def test_switching_shifts_no_other_stream_before_the_first_switch():
    """The chain draws from its own stream: until its first switch a switching run is the
    default run step for step."""
    config = MarketConfig(steps=3_000, population=FEW)
    plain = simulate(config, 9)
    switching = simulate(config.replace(regimes=SWITCHING), 9)
    regime = switching.asset_series("regime")
    first = int(np.argmax(regime == STRESS))
    assert first > 10
    for name in ("mid", "fair_value", "volume", "bid_depth"):
        np.testing.assert_array_equal(
            plain.asset_series(name)[:first], switching.asset_series(name)[:first], err_msg=name
        )


def test_a_switching_market_forks_and_replays_exactly():
    config = MarketConfig(steps=4_000, population=FEW, regimes=SWITCHING)
    market = Market(config, 3)
    market.advance(1_500)
    branch = market.fork()
    whole = market.run()
    forked = branch.run()
    for name, column in whole.steps.items():
        np.testing.assert_array_equal(column, forked.steps[name], err_msg=name)
    np.testing.assert_array_equal(whole.steps["regime"], simulate(config, 3).steps["regime"])


def test_a_run_can_start_in_stress():
    config = MarketConfig(steps=200, population=FEW, regimes=RegimeParams(start_stress=1.0))
    market = Market(config, 0)
    assert market.regime == STRESS
    assert market.config.fundamental == stress_regime(MarketConfig(), 3.0)[0]
    assert market.run().asset_series("regime").all()  # never leaves: leave_stress is 0


def test_the_stress_scenario_works_on_a_switching_market():
    config = MarketConfig(steps=2_000, population=FEW, regimes=SWITCHING)
    scenario = Scenario("stress").resolved(config.steps)
    result = run_scenario(config, scenario, 4)
    assert [i["action"] for i in result.interventions] == ["set_regime"]
    assert len(result.asset_series("regime")) == config.steps


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (RegimeParams(leave_normal=1.5), "leave_normal"),
        (RegimeParams(leave_stress=-0.1), "leave_stress"),
        (RegimeParams(start_stress=2.0), "start_stress"),
        (RegimeParams(stress_factor=0.5), "stress_factor"),
    ],
)
def test_invalid_regimes_are_refused(params, says):
    with pytest.raises(ValueError, match=says):
        Market(MarketConfig(steps=10, regimes=params), 0)
