"""Calibration by the simulated method of moments: parameters set where they live, a fit within
its budget that is the same wherever its markets run, stored and returned again, and
``marlsim calibrate`` end to end with good and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marl_market.core.config import MarketConfig
from marl_market.lab.analysis import sp500_returns
from marl_market.scale.calibrate import (
    MOMENTS,
    PARAMETERS,
    calibrate,
    distance,
    moment_names,
    moments,
    with_params,
)
from marl_market.store import RunStore
from tests.test_cli import marlsim

SMALL = {"seeds": 2, "budget": 6, "steps": 2_000}


def test_parameters_land_in_the_config_and_integers_are_rounded():
    config = with_params(MarketConfig(), {"makers": 3.4, "noise_intensity": 2.5})
    assert config.population.makers == 3 and config.noise.orders_per_step == 2.5
    assert set(PARAMETERS) >= {"noise_intensity", "momentum_share", "fundamental_volatility"}


def test_the_distance_is_zero_at_the_target_and_scales_each_moment():
    facts = {"excess_kurtosis": 8.0, "hill_tail_index": 3.0, "acf_abs": [0.2] * 50,
             "acf_raw": [0.0] * 50}  # fmt: skip
    target = moments(facts)
    assert len(target) == len(MOMENTS) == len(moment_names())
    assert distance(target, target) == 0.0
    off = target.copy()
    off[0] += 3.0  # kurtosis 3 off counts as much as an ACF 0.1 off
    other = target.copy()
    other[2] += 0.1
    assert distance(off, target) == pytest.approx(distance(other, target)) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("cal") / "cal.duckdb")
    fit = calibrate(sp500_returns(), "sp500", ("noise_intensity",), store=store, workers=2, **SMALL)
    return store, fit


def test_a_fit_stays_in_its_bounds_and_budget_and_reports_facts_with_cis(fitted):
    _, fit = fitted
    low, high = PARAMETERS["noise_intensity"].low, PARAMETERS["noise_intensity"].high
    assert low <= fit.params["noise_intensity"] <= high
    assert 0 < fit.evaluations <= SMALL["budget"] and np.isfinite(fit.distance)
    assert fit.facts["target"]["excess_kurtosis"] == pytest.approx(8.17, abs=0.01)
    simulated = fit.facts["simulated"]["acf_abs_lag1"]
    assert simulated["ci_low"] <= simulated["mean"] <= simulated["ci_high"]


def test_the_same_fit_wherever_its_markets_run_and_stored_once(fitted, tmp_path):
    store, fit = fitted
    alone = calibrate(sp500_returns(), "sp500", ("noise_intensity",), workers=1, **SMALL)
    assert (alone.params, alone.distance, alone.run_id) == (fit.params, fit.distance, fit.run_id)
    again = calibrate(sp500_returns(), "sp500", ("noise_intensity",), store=store, **SMALL)
    assert again.cached and again.params == fit.params
    assert store.get_run(fit.run_id)["kind"] == "calibrate"


def test_the_command_fits_a_csv_of_prices_and_prints_the_json_contract(tmp_path):
    rng = np.random.default_rng(42)
    prices = 100 * np.exp(np.cumsum(rng.standard_t(4, 600) * 0.01))
    path = tmp_path / "prices.csv"
    path.write_text("date,close\n" + "".join(f"d{i},{p:.4f}\n" for i, p in enumerate(prices)))
    db = str(tmp_path / "cal.duckdb")
    out = marlsim(
        "calibrate", "--target-csv", str(path), "--param", "makers", "--seeds", "2",
        "--budget", "5", "--steps", "2000", "--db", db, "--json", timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert set(payload) >= {"run_id", "params", "distance", "facts"}
    assert set(payload["facts"]) == {"target", "simulated"}
    assert isinstance(payload["params"]["makers"], int)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "spread"], "unknown parameter 'spread'"),
        (["--target", "nasdaq"], "unknown target 'nasdaq'"),
        (["--seeds", "1"], "--seeds must be at least 2"),
        (["--budget", "3"], "--budget must be at least 6 for 2 parameter(s)"),
        (["--target-csv", "/nonexistent.csv"], "no such file"),
        (["--backend", "dask"], "unknown backend 'dask'"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "never.duckdb"
    out = marlsim("calibrate", *args, "--db", str(db))
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not db.exists()


def test_a_csv_without_enough_prices_is_refused(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("close\n" + "\n".join(str(100 + i) for i in range(50)) + "\n")
    out = marlsim("calibrate", "--target-csv", str(path), "--db", str(tmp_path / "x.duckdb"))
    assert out.returncode == 2 and "50 prices; at least 200 are needed" in out.stderr
