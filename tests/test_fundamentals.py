"""Correlated fundamentals: the configured matrix is what the simulated fundamentals show."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marl_market.core.config import FundamentalParams, MarketConfig, Population
from marl_market.core.fundamentals import correlation_factor
from marl_market.core.market import Market, simulate

RHO = 0.6
THREE = ((1.0, RHO, RHO), (RHO, 1.0, RHO), (RHO, RHO, 1.0))
# The fundamental does not depend on the traders: one noise trader keeps the runs quick.
FEW = Population(makers=0, momentum=0, value=0, noise=1)


def _log_returns(result, n_assets: int) -> np.ndarray:
    fair = np.stack([result.asset_series("fair_value", a) for a in range(n_assets)])
    return np.diff(np.log(fair), axis=1)


def test_three_assets_show_the_configured_correlation():
    steps = 20_000
    config = MarketConfig(
        steps=steps,
        n_assets=3,
        population=FEW,
        # Jumps stay idiosyncratic (see core.fundamentals): without them the returns' correlation
        # is the configured one exactly, in expectation.
        fundamental=FundamentalParams(jump_probability=0.0),
        fundamental_correlation=THREE,
    )
    measured = np.corrcoef(_log_returns(simulate(config, 7), 3))
    # A sample correlation's sd is about (1 - rho^2) / sqrt(n) < 1 / sqrt(n).
    tolerance = 4.0 / math.sqrt(steps - 1)
    np.testing.assert_allclose(measured, np.array(THREE), atol=tolerance)
    # And the assets do move together: far from independent.
    assert measured[0, 1] > RHO - tolerance > 4.0 * tolerance


def test_without_a_matrix_the_assets_are_independent():
    steps = 20_000
    config = MarketConfig(steps=steps, n_assets=3, population=FEW)
    measured = np.corrcoef(_log_returns(simulate(config, 7), 3))
    np.testing.assert_allclose(measured, np.eye(3), atol=4.0 / math.sqrt(steps - 1))


def test_an_identity_matrix_changes_nothing():
    config = MarketConfig(steps=300, n_assets=2, population=FEW)
    plain = simulate(config, 3)
    mixed = simulate(config.replace(fundamental_correlation=((1.0, 0.0), (0.0, 1.0))), 3)
    for name, column in plain.steps.items():
        np.testing.assert_array_equal(column, mixed.steps[name], err_msg=name)


def test_one_asset_with_its_one_by_one_matrix_is_the_default_run():
    config = MarketConfig(steps=500)
    plain = simulate(config, 42)
    same = simulate(config.replace(fundamental_correlation=((1.0,),)), 42)
    for name, column in plain.steps.items():
        np.testing.assert_array_equal(column, same.steps[name], err_msg=name)


@pytest.mark.parametrize(
    ("matrix", "n_assets", "says"),
    [
        (((1.0, 0.5),), 2, "square"),
        (((1.0, 0.5), (0.5, 1.0)), 3, "2 x 2, but the market has 3"),
        (((1.0, 1.5), (1.5, 1.0)), 2, "in [-1, 1]"),
        (((1.0, float("nan")), (float("nan"), 1.0)), 2, "in [-1, 1]"),
        (((1.0, 0.5), (0.4, 1.0)), 2, "symmetric"),
        (((0.9, 0.5), (0.5, 1.0)), 2, "diagonal"),
        (((1.0, 0.9, -0.9), (0.9, 1.0, 0.9), (-0.9, 0.9, 1.0)), 3, "semi-definite"),
        ((("a", "b"), ("c", "d")), 2, "square"),
    ],
)
def test_an_invalid_matrix_raises_one_clear_error(matrix, n_assets, says):
    with pytest.raises(ValueError, match="invalid fundamental_correlation") as error:
        correlation_factor(matrix, n_assets)
    assert says in str(error.value)
    config = MarketConfig(steps=10, n_assets=n_assets, fundamental_correlation=matrix)
    with pytest.raises(ValueError, match="invalid fundamental_correlation"):
        Market(config, 0)


def test_a_perfectly_correlated_pair_is_accepted():
    factor = np.array(correlation_factor(((1.0, 1.0), (1.0, 1.0)), 2))
    np.testing.assert_allclose(factor @ factor.T, np.ones((2, 2)), atol=1e-6)


@st.composite
def correlation_matrices(draw):
    n = draw(st.integers(2, 5))
    k = draw(st.integers(1, 6))  # k < n: a singular (semi-definite) matrix
    entries = st.floats(-3.0, 3.0, allow_nan=False)
    a = np.array(draw(st.lists(st.lists(entries, min_size=k, max_size=k), min_size=n, max_size=n)))
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    assume(norms.min() > 1e-3)  # a zero row has no direction to normalise
    rows = a / norms
    c = np.clip(rows @ rows.T, -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    c = (c + c.T) / 2
    return tuple(map(tuple, c.tolist()))


@settings(max_examples=100, deadline=None)
@given(correlation_matrices())
def test_valid_correlation_matrices_are_accepted_and_factored(matrix):
    n = len(matrix)
    factor = np.array(correlation_factor(matrix, n))
    np.testing.assert_allclose(factor @ factor.T, np.array(matrix), atol=1e-5)
    np.testing.assert_allclose(np.diag(factor @ factor.T), 1.0, atol=1e-12)
