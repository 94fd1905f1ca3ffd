"""Tests for the stylised facts (marl_market.core.facts) and their analysis layer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from marl_market.core.facts import (
    StylisedFacts,
    acf,
    acf_confidence_band,
    compute_facts,
    excess_kurtosis,
    hill_tail_index,
    log_returns,
    mean_ci,
    sign_fraction,
    student_t_ppf,
    student_t_sf,
)
from marl_market.lab.analysis import (
    facts_table,
    facts_with_garch,
    garch_persistence,
    sp500_reference,
)

GARCH_OMEGA, GARCH_ALPHA, GARCH_BETA = 1e-6, 0.10, 0.85


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def simulate_garch(rng: np.random.Generator, n: int, burn: int = 500) -> np.ndarray:
    """GARCH(1,1) returns with normal innovations, started at the unconditional variance."""
    z = rng.standard_normal(n + burn)
    out = np.empty(n + burn)
    h = GARCH_OMEGA / (1.0 - GARCH_ALPHA - GARCH_BETA)
    prev = 0.0
    for t in range(n + burn):
        h = GARCH_OMEGA + GARCH_ALPHA * prev * prev + GARCH_BETA * h
        prev = math.sqrt(h) * z[t]
        out[t] = prev
    return out[burn:]


def prices_from_returns(r: np.ndarray, start: float = 10_000.0) -> np.ndarray:
    return start * np.exp(np.concatenate([[0.0], np.cumsum(r)]))


@pytest.fixture(scope="module")
def garch_returns() -> np.ndarray:
    return simulate_garch(np.random.default_rng(42), 10_000)


# ------------------------------------------------------------------------------ log returns
def test_log_returns_sampling():
    mid = np.exp(np.arange(11, dtype=float))  # log mid = 0, 1, ..., 10
    np.testing.assert_allclose(log_returns(mid, 1), np.ones(10))
    np.testing.assert_allclose(log_returns(mid, 3), np.full(3, 3.0))  # mids 0, 3, 6, 9
    np.testing.assert_allclose(log_returns(mid, 5), np.full(2, 5.0))
    assert log_returns(mid, 20).size == 0


def test_log_returns_matches_manual_sampling(rng):
    mid = 100.0 + rng.integers(1, 50, size=1001).astype(float)
    r = log_returns(mid, 7)
    expected = np.log(mid[7::7]) - np.log(mid[:-7:7][: len(mid[7::7])])
    np.testing.assert_allclose(r, expected)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_log_returns_rejects_bad_prices(bad):
    mid = np.array([100.0, 101.0, bad, 102.0])
    with pytest.raises(ValueError, match="strictly positive"):
        log_returns(mid, 1)


def test_log_returns_rejects_bad_interval_and_shape():
    mid = np.arange(1.0, 10.0)
    with pytest.raises(ValueError):
        log_returns(mid, 0)
    with pytest.raises(TypeError):
        log_returns(mid, 1.5)
    with pytest.raises(ValueError, match="one-dimensional"):
        log_returns(mid.reshape(3, 3), 1)


# ------------------------------------------------------------------------------ moments, acf
def test_excess_kurtosis_matches_scipy(rng):
    x = rng.standard_t(5, size=2000)
    assert excess_kurtosis(x) == pytest.approx(stats.kurtosis(x, fisher=True, bias=True))


def test_excess_kurtosis_constant_is_nan():
    assert math.isnan(excess_kurtosis(np.full(10, 3.0)))
    with pytest.raises(ValueError):
        excess_kurtosis(np.array([]))


def test_acf_matches_direct_formula(rng):
    x = rng.standard_normal(300).cumsum()
    m, n = x.mean(), len(x)
    denom = sum((v - m) ** 2 for v in x)
    expected = [
        sum((x[t] - m) * (x[t + k] - m) for t in range(n - k)) / denom for k in range(1, 21)
    ]
    np.testing.assert_allclose(acf(x, 20), expected, rtol=1e-12)


def test_acf_known_values():
    # Alternating series: mean 0, lag-1 autocorrelation -(n-1)/n, lag-2 (n-2)/n.
    x = np.array([1.0, -1.0] * 5)
    np.testing.assert_allclose(acf(x, 2), [-0.9, 0.8])


def test_acf_edge_cases():
    assert np.isnan(acf(np.ones(5), 3)).all()
    with pytest.raises(ValueError):
        acf(np.arange(5.0), 5)
    with pytest.raises(ValueError):
        acf(np.arange(5.0), 0)


def test_acf_confidence_band():
    assert acf_confidence_band(10_000) == pytest.approx(0.0196)
    with pytest.raises(ValueError):
        acf_confidence_band(0)


# ------------------------------------------------------------------------------ Hill
def test_hill_on_student_t3_is_near_3(rng):
    x = rng.standard_t(3, size=100_000)
    assert hill_tail_index(x, tail_fraction=0.01) == pytest.approx(3.0, abs=0.25)
    # The default 5% tail reaches into the body of the t: biased low, but still near 3.
    assert 2.3 < hill_tail_index(x) < 3.3


def test_hill_on_pareto_recovers_alpha(rng):
    # For an exact Pareto tail the Hill estimator is the maximum-likelihood estimator.
    x = (1.0 - rng.random(50_000)) ** (-1.0 / 2.0)  # P(X > x) = x**-2
    assert hill_tail_index(x, 0.2) == pytest.approx(2.0, rel=0.05)


def test_hill_orders_tails_and_ignores_zeros(rng):
    t3 = rng.standard_t(3, size=50_000)
    t8 = rng.standard_t(8, size=50_000)
    assert hill_tail_index(t8, 0.01) > hill_tail_index(t3, 0.01) + 1.0
    with_zeros = np.concatenate([t3, np.zeros(50_000)])
    assert hill_tail_index(with_zeros) == hill_tail_index(t3)


def test_hill_errors_and_degenerate():
    with pytest.raises(ValueError):
        hill_tail_index(np.array([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError):
        hill_tail_index(np.ones(10), tail_fraction=0.0)
    assert math.isnan(hill_tail_index(np.ones(100)))


# ------------------------------------------------------------------------------ compute_facts
def test_gaussian_returns_have_no_facts(rng):
    r = 1e-3 * rng.standard_normal(20_000)
    facts = compute_facts(prices_from_returns(r), None, None, return_interval=1)
    band = acf_confidence_band(facts.n_returns)
    assert facts.n_returns == 20_000
    assert abs(facts.excess_kurtosis) < 0.15
    for series in (np.array(facts.acf_raw), np.array(facts.acf_abs)):
        assert len(series) == 50
        assert np.abs(series).max() < 2 * band
        assert np.mean(np.abs(series) > band) <= 0.15  # ~5% expected
    assert facts.return_std == pytest.approx(1e-3, rel=0.02)
    assert facts.hill_tail_index > 4  # thin tails: a large index


def test_student_t_returns_have_fat_tails(rng):
    r = 1e-3 * rng.standard_t(3, size=50_000)
    facts = compute_facts(prices_from_returns(r), None, None, return_interval=1)
    assert facts.excess_kurtosis > 5
    assert 2.3 < facts.hill_tail_index < 3.3


def test_garch_returns_cluster(garch_returns):
    facts = facts_with_garch(prices_from_returns(garch_returns), None, None, return_interval=1)
    band = acf_confidence_band(facts.n_returns)
    assert all(v > 3 * band for v in facts.acf_abs[:10])
    assert facts.acf_abs[0] > 0.05
    assert abs(facts.acf_raw[0]) < 2 * band
    assert facts.excess_kurtosis > 0.5
    assert facts.garch_persistence == pytest.approx(GARCH_ALPHA + GARCH_BETA, abs=0.04)


def test_garch_persistence_degenerate_inputs(garch_returns):
    assert garch_persistence(np.zeros(1000)) is None
    assert garch_persistence(garch_returns[:50]) is None
    with_nan = garch_returns.copy()
    with_nan[10] = np.nan
    assert garch_persistence(with_nan) is None
    # Scale-free: the fit sees the series rescaled to a fixed standard deviation.
    assert garch_persistence(garch_returns * 1e4) == pytest.approx(
        garch_persistence(garch_returns), abs=1e-4
    )


def test_compute_facts_spread_volume_and_sampling(rng):
    n = 2001
    mid = prices_from_returns(1e-3 * rng.standard_normal(n - 1))
    spread = rng.integers(1, 4, size=n).astype(float)
    spread[::3] = np.nan
    volume = rng.integers(0, 100, size=n)
    facts = compute_facts(mid, spread, volume, return_interval=10)
    assert facts.return_interval == 10
    assert facts.n_returns == 200
    assert facts.mean_spread_ticks == pytest.approx(np.nanmean(spread))
    assert facts.mean_volume == pytest.approx(volume.mean())
    assert facts.garch_persistence is None
    all_nan = compute_facts(mid, np.full(n, np.nan), volume, return_interval=10)
    assert math.isnan(all_nan.mean_spread_ticks)


def test_compute_facts_reduces_lags_then_fails(rng):
    mid = prices_from_returns(1e-3 * rng.standard_normal(45))
    facts = compute_facts(mid, None, None, return_interval=1, max_lag=50)
    assert facts.n_returns == 45
    assert len(facts.acf_abs) == len(facts.acf_raw) == facts.max_lag == 35
    short = prices_from_returns(1e-3 * rng.standard_normal(19))
    with pytest.raises(ValueError, match="too few returns"):
        compute_facts(short, None, None, return_interval=1)
    with pytest.raises(ValueError, match="too few returns"):
        compute_facts(mid, None, None, return_interval=3)  # 15 returns


def test_compute_facts_flat_price_gives_nan_not_error():
    facts = compute_facts(np.full(100, 10_000.0), np.ones(100), np.zeros(100), 1)
    assert math.isnan(facts.excess_kurtosis)
    assert math.isnan(facts.hill_tail_index)
    assert all(math.isnan(v) for v in facts.acf_abs)


def test_as_dict_is_strict_json_and_round_trips(rng):
    mid = prices_from_returns(1e-3 * rng.standard_normal(500))
    facts = compute_facts(mid, None, np.ones(501), return_interval=1, max_lag=20)
    d = facts.as_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["mean_spread_ticks"] is None
    assert d["garch_persistence"] is None
    back = StylisedFacts.from_dict(json.loads(text))
    assert back.acf_abs == facts.acf_abs
    assert math.isnan(back.mean_spread_ticks)
    assert back.garch_persistence is None
    assert back.mean_volume == 1.0


# ------------------------------------------------------------------------------ Student t, CIs
PROBS = [0.51, 0.6, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999, 0.9995, 0.05, 0.025]


def test_student_t_ppf_matches_scipy():
    worst = 0.0
    for df in range(1, 201):
        for p in PROBS:
            ours, ref = student_t_ppf(p, df), stats.t.ppf(p, df)
            worst = max(worst, abs(ours - ref) / abs(ref))
    assert worst < 1e-6


@pytest.mark.parametrize("df", [0.5, 2.5, 350, 1000, 10_000])
def test_student_t_ppf_other_df(df):
    for p in PROBS:
        assert student_t_ppf(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)


def test_student_t_sf_matches_scipy():
    for df in (1, 2, 3, 7, 30, 200):
        for t in (-40.0, -2.0, -0.1, 0.0, 1e-3, 0.7, 2.5, 12.0, 1000.0):
            assert student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-10)


def test_student_t_ppf_rejects_bad_input():
    assert student_t_ppf(0.5, 3) == 0.0
    for p in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            student_t_ppf(p, 3)
    with pytest.raises(ValueError):
        student_t_ppf(0.9, 0)


def test_mean_ci_known_case():
    mean, low, high = mean_ci([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0
    assert low == pytest.approx(3 - half, rel=1e-12)
    assert high == pytest.approx(3 + half, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 8, 30])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy(rng, n, confidence):
    x = rng.normal(1.0, 2.0, size=n)
    mean, low, high = mean_ci(x, confidence)
    ref_low, ref_high = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean())
    assert low == pytest.approx(ref_low, rel=1e-9)
    assert high == pytest.approx(ref_high, rel=1e-9)


def test_mean_ci_edge_cases():
    mean, low, high = mean_ci([4.2])
    assert mean == 4.2 and math.isnan(low) and math.isnan(high)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError):
        mean_ci([])
    with pytest.raises(ValueError):
        mean_ci([1.0, np.nan])
    with pytest.raises(ValueError):
        mean_ci([1.0, 2.0], confidence=1.0)


def test_sign_fraction():
    x = [-2.0, -1.0, 0.0, 1.0, 3.0, 4.0]
    assert sign_fraction(x, 1) == pytest.approx(0.5)
    assert sign_fraction(x, -1) == pytest.approx(1 / 3)
    assert sign_fraction(np.array([0.0, 0.0]), +1) == 0.0
    with pytest.raises(ValueError):
        sign_fraction(x, 0)
    with pytest.raises(ValueError):
        sign_fraction([], 1)


# ------------------------------------------------------------------------------ S&P 500
def test_sp500_reference_values():
    ref = sp500_reference()
    assert ref.return_interval == 1
    assert ref.n_returns == 5030  # 5031 trading days, 1999-2018
    assert 7.5 < ref.excess_kurtosis < 9.0
    assert -0.10 < ref.acf_raw[0] < -0.04
    assert 0.20 < ref.acf_abs[0] < 0.28
    assert 0.13 < ref.acf_abs[49] < 0.21
    assert len(ref.acf_abs) == 50
    assert 2.0 < ref.hill_tail_index < 4.5
    assert 0.95 < ref.garch_persistence < 1.0
    assert 0.008 < ref.return_std < 0.016
    assert math.isnan(ref.mean_spread_ticks) and math.isnan(ref.mean_volume)


def test_sp500_reference_is_cached_but_copied():
    a = sp500_reference()
    a.acf_abs[0] = 99.0
    a.excess_kurtosis = -1.0
    b = sp500_reference()
    assert b.acf_abs[0] < 1 and b.excess_kurtosis > 0
    assert len(sp500_reference(max_lag=10).acf_abs) == 10


def test_facts_table(garch_returns):
    sim = facts_with_garch(
        prices_from_returns(garch_returns), np.full(10_001, 2.0), np.full(10_001, 7), 1
    )
    rows = facts_table(sim, sp500_reference())
    names = [r[0] for r in rows]
    assert names == [
        "Excess kurtosis",
        "ACF |r| lag 1",
        "ACF |r| lag 5",
        "ACF |r| lag 10",
        "ACF |r| lag 50",
        "Raw ACF lag 1",
        "Hill tail index",
        "GARCH alpha+beta",
        "Mean spread (ticks)",
        "Mean volume (per step)",
    ]
    table = {name: (s, r) for name, s, r in rows}
    assert table["Mean spread (ticks)"] == ("2.00", "n/a")
    assert table["Mean volume (per step)"] == ("7.0", "n/a")
    assert table["Excess kurtosis"][1] == f"{sp500_reference().excess_kurtosis:.2f}"
    assert all(isinstance(s, str) and isinstance(r, str) for _, s, r in rows)
    # Missing lags and a failed GARCH fit show as n/a.
    short = compute_facts(prices_from_returns(garch_returns[:40]), None, None, 1)
    table = {name: s for name, s, _ in facts_table(short, sp500_reference())}
    assert table["ACF |r| lag 50"] == "n/a"
    assert table["GARCH alpha+beta"] == "n/a"
    assert table["ACF |r| lag 1"] != "n/a"


# ------------------------------------------------------------------------------ properties
finite_series = arrays(
    np.float64,
    st.integers(3, 200),
    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=finite_series, data=st.data())
def test_acf_bounded(x, data):
    lag = data.draw(st.integers(1, len(x) - 1))
    rho = acf(x, lag)
    assert rho.shape == (lag,)
    finite = rho[~np.isnan(rho)]
    assert np.all(np.abs(finite) <= 1.0 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(4, 200), elements=st.floats(-100, 100)),
    scale=st.floats(1e-3, 1e3) | st.floats(-1e3, -1e-3),
    shift=st.floats(-1e3, 1e3),
)
def test_kurtosis_invariant_to_scale_and_shift(x, scale, shift):
    if np.std(x) < 0.1:
        return  # near-constant: cancellation dominates
    k = excess_kurtosis(x)
    assert k >= -2.0 - 1e-9  # kurtosis >= 1 for any distribution
    assert excess_kurtosis(scale * x + shift) == pytest.approx(k, rel=1e-6, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(p=st.floats(0.001, 0.999), df=st.floats(0.5, 500))
def test_student_t_ppf_inverts_sf(p, df):
    t = student_t_ppf(p, df)
    assert student_t_sf(t, df) == pytest.approx(1.0 - p, rel=1e-9, abs=1e-12)
