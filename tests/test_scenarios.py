"""Scenarios: the interventions' effects at seed 42, their measurement, and the statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from marl_market.core.config import MarketConfig
from marl_market.core.market import simulate
from marl_market.core.scenarios import (
    METRICS,
    Scenario,
    first_sustained,
    max_drawdown_pct,
    measure,
    run_scenario,
    summarise,
)
from marl_market.lab.experiments import resolve_scenario
from marl_market.store import RunStore

STEPS = 5_000
CONFIG = MarketConfig(steps=STEPS)


@pytest.fixture(scope="module")
def baseline():
    return simulate(CONFIG, 42)


def scenario_run(kind: str, **options):
    scenario = resolve_scenario(kind, STEPS, **options)
    return scenario, run_scenario(CONFIG, scenario, 42)


def test_pulling_the_makers_blows_the_spread_up(baseline):
    scenario, crash = scenario_run("flash_crash")
    window = slice(scenario.start_at, scenario.end_at)
    crash_spread = np.nanmean(crash.asset_series("spread")[window])
    base_spread = np.nanmean(baseline.asset_series("spread")[window])
    assert crash_spread > 5 * base_spread  # liquidity collapses
    metrics = measure(crash, scenario, baseline)
    assert metrics["spread_blowup"] > 5
    assert metrics["depth_ratio"] < 0.2
    assert metrics["recovery_steps"] is not None  # makers came back and the spread recovered


def test_runs_are_identical_until_the_intervention(baseline):
    scenario, crash = scenario_run("flash_crash")
    before = slice(0, scenario.start_at)
    for column in ("mid", "spread", "volume", "bid_depth"):
        assert np.array_equal(
            crash.asset_series(column)[before],
            baseline.asset_series(column)[before],
            equal_nan=True,  # a one-sided book records a NaN spread in both
        )
    assert not np.array_equal(crash.asset_series("spread"), baseline.asset_series("spread"))


def test_short_ban_lowers_volume_and_worsens_price_discovery(baseline):
    scenario, banned = scenario_run("short_ban")
    metrics = measure(banned, scenario, baseline)
    assert metrics["volume_change_pct"] < 0
    base_te = measure(baseline, scenario, baseline)["tracking_error"]
    assert metrics["tracking_error"] > base_te


def test_tobin_tax_lowers_volume(baseline):
    scenario, taxed = scenario_run("tobin_tax", tax_bp=10.0)
    assert measure(taxed, scenario, baseline)["volume_change_pct"] < 0


@pytest.mark.parametrize("kind", ["stress", "drought", "shock"])
def test_other_scenarios_run_and_measure_every_metric(baseline, kind):
    scenario, run = scenario_run(kind)
    metrics = measure(run, scenario, baseline)
    assert set(metrics) == set(METRICS)
    assert np.isfinite(metrics["tracking_error"])


def test_shock_moves_the_price_down():
    scenario, shocked = scenario_run("shock")
    start = scenario.start_at
    fair = shocked.asset_series("fair_value")
    assert fair[start] < 0.985 * fair[start - 1]  # the 3% jump in fair value
    assert measure(shocked, scenario)["max_drawdown_pct"] > 1.5


def test_first_sustained_and_drawdown():
    ok = np.array([0, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    assert first_sustained(ok, 0, 3) == 4
    assert first_sustained(ok, 2, 2) == 2
    assert first_sustained(ok, 0, 5) is None
    assert max_drawdown_pct(np.array([100.0, 110.0, 99.0, 105.0])) == pytest.approx(10.0)
    assert max_drawdown_pct(np.array([1.0, 2.0, 3.0])) == 0.0


def test_summary_matches_a_paired_t_interval():
    scenario_values = [3.0, 5.0, 4.0, 8.0, 5.0]
    baseline_values = [1.0, 1.0, 2.0, 2.0, 1.0]
    pairs = [
        (
            {**dict.fromkeys(METRICS), "spread_blowup": s},
            {**dict.fromkeys(METRICS), "spread_blowup": b},
        )
        for s, b in zip(scenario_values, baseline_values, strict=True)
    ]
    entry = summarise("flash_crash", pairs)["spread_blowup"]
    diff = np.subtract(scenario_values, baseline_values)
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    assert entry["mean"] == pytest.approx(5.0)
    assert entry["diff_mean"] == pytest.approx(diff.mean())
    assert entry["ci_low"] == pytest.approx(diff.mean() - half)
    assert entry["ci_high"] == pytest.approx(diff.mean() + half)
    assert entry["sign_fraction"] == 1.0 and entry["documented"]
    assert summarise("flash_crash", pairs)["recovery_steps"]["n"] == 0


@pytest.mark.parametrize(
    "scenario, message",
    [
        (Scenario("flash_crash", start_at=6_000), "inside the run"),
        (Scenario("flash_crash", start_at=2_000, end_at=1_000), "after the start"),
        (Scenario("tobin_tax", tax_bp=-1), "must not be negative"),
        (Scenario("meteor"), "unknown scenario"),
    ],
)
def test_bad_scenarios_are_refused(scenario, message):
    with pytest.raises(ValueError, match=message):
        scenario.resolved(STEPS)


def marlsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marl_market.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kind", "flash_crash", "--steps", "1000", "--pull-at", "1500"], "pull step"),
        (["--kind", "flash_crash", "--pull-at", "2000", "--return-at", "1500"], "return step"),
        (["--kind", "tobin_tax", "--tax-bp", "-5"], "Tobin tax"),
        (["--kind", "compare", "--seeds", "0"], "seeds"),
        (["--kind", "earthquake"], "unknown kind"),
    ],
)
def test_bad_scenario_options_exit_2_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "runs.duckdb"
    out = marlsim("scenario", *args, "--db", str(db))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert not db.exists()


@pytest.mark.slow
def test_compare_json_and_stored_runs(tmp_path):
    db = tmp_path / "runs.duckdb"
    args = ["scenario", "--kind", "compare", "--seeds", "2", "--steps", "1200", "--db", str(db)]
    out = marlsim(*args, "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    kinds = ["flash_crash", "short_ban", "tobin_tax", "stress", "drought", "shock"]
    for kind in kinds:
        for metric in ("spread_blowup", "depth_ratio", "max_drawdown_pct", "recovery_steps"):
            assert {"mean", "ci_low", "ci_high", "sign_fraction"} <= set(payload[kind][metric])
        assert {"volume_change_pct", "tracking_error"} <= set(payload[kind])
    store = RunStore(db)
    compare = store.get_run(payload["run_id"])
    assert compare["kind"] == "compare"
    listed = compare["summary"]["run_ids"]
    assert len(listed["baseline"]) == 2 and all(len(listed[k]) == 2 for k in kinds)
    for run_id in listed["flash_crash"]:  # a colleague can re-open any of them
        assert len(store.load_steps(run_id)["step"]) == 1200
    again = json.loads(marlsim(*args, "--json").stdout)
    assert again["cached"] is True and again["run_id"] == payload["run_id"]


def test_single_scenario_prints_the_same_metric_names(tmp_path):
    out = marlsim(
        "scenario", "--kind", "short_ban", "--steps", "1500", "--db", str(tmp_path / "r.db"),
        "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["kinds"] == ["short_ban"]
    assert set(payload["short_ban"]) == set(METRICS)
    assert payload["short_ban"]["volume_change_pct"]["ci_low"] is None  # one seed: no interval


def test_forking_at_the_intervention_gives_the_same_runs_as_from_scratch(baseline):
    from marl_market.core.scenarios import run_with_baseline
    from tests.test_market import digest

    scenarios = [resolve_scenario(k, STEPS) for k in ("flash_crash", "tobin_tax", "shock")]
    forked_baseline, forked = run_with_baseline(CONFIG, scenarios, 42)
    assert digest(forked_baseline) == digest(baseline)
    for scenario, run in zip(scenarios, forked, strict=True):
        assert digest(run) == digest(run_scenario(CONFIG, scenario, 42))
