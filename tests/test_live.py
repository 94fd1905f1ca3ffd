"""The live market both the app's Scenarios page and dashboard.html play (core/live.py).

Its recovery is the scenarios' measure: a live pull and return at steps p and r must report
what a ``flash_crash`` scenario with ``start_at=p, end_at=r`` reports for the same seed.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marl_market.core.config import MarketConfig
from marl_market.core.live import LiveMarket
from marl_market.core.market import simulate
from marl_market.core.numbers import finite_or_none, fmt, nanmean
from marl_market.core.scenarios import (
    RECOVERY_HOLD,
    RECOVERY_RATIO,
    Scenario,
    measure,
    pre_event_start,
    run_scenario,
    spread_recovery_steps,
)

SEED = 42
MARLSIM = str(Path(sys.executable).with_name("marlsim"))  # the installed entry point


def start(length: int = 6_000, warmup: int = 1_000, **options) -> LiveMarket:
    return LiveMarket.start(("k",), MarketConfig(), SEED, warmup=warmup, length=length, **options)


def gauge(live: LiveMarket, label: str):
    return next(g for g in live.gauges() if g.label == label)


# ------------------------------------------------------------------------------ playing
def test_the_live_run_is_the_plain_run_step_for_step():
    live = start(length=2_500)
    while not live.full:
        live.advance()
    plain = simulate(MarketConfig(steps=2_500), SEED)
    for name in ("spread", "mid", "volume"):
        np.testing.assert_array_equal(live.series(name), plain.asset_series(name))
    recent = live.recent_steps()
    assert recent["step"].tolist() == list(range(500, 2_500))  # the charts' window only
    np.testing.assert_array_equal(recent["bid_depth"], plain.steps["bid_depth"][500:])


def test_with_two_assets_the_live_market_follows_the_first():
    config = MarketConfig(n_assets=2)
    live = LiveMarket.start(("k",), config, SEED, warmup=600, length=1_000)
    live.advance()
    plain = simulate(config.replace(steps=1_000), SEED)
    np.testing.assert_array_equal(live.series("spread"), plain.asset_series("spread")[:800])
    first = plain.steps["asset"] == 0
    depth = plain.steps["bid_depth"][first] + plain.steps["ask_depth"][first]
    expected = f"{depth[600:800].mean():.0f}"
    assert gauge(live, "Depth near the mid").value == expected


def test_a_run_plays_to_its_configured_length_and_then_stops():
    live = start(length=25_000, warmup=200)
    assert live.advance(24_700) == 24_700 and not live.full  # no cap near 20,000 steps
    assert live.advance() == 100 and live.full and live.t == 25_000
    assert live.advance() == 0
    assert len(live.recent_steps()["step"]) == live.window


def test_the_warmup_must_fit_in_the_run():
    with pytest.raises(ValueError, match="shorter than the run"):
        start(length=1_000, warmup=1_000)


# ------------------------------------------------------------------------------ interventions
def test_pull_is_idempotent_and_the_makers_come_back_on_schedule():
    live = start(return_after=300)
    live.advance()
    before = live.spread_now()
    assert live.pull() is True
    pulled_at = live.pulled_at
    assert live.pull() is False and live.pulled_at == pulled_at  # a replayed click
    live.advance()
    assert live.spread_now() > 4 * before and not live.market.makers.active
    assert live.returned_at is None and live.status().endswith(f"step {pulled_at + 300:,}")
    live.advance(400)
    assert live.returned_at == pulled_at + 300 and live.market.makers.active  # inside a chunk
    assert live.bring_back() is False
    assert [text for _, text in live.events] == ["makers pulled", "makers back"]


def test_without_a_return_the_makers_stay_away_until_brought_back():
    live = start(return_after=None)
    live.pull()
    live.advance(3_000)
    assert live.returned_at is None and not live.market.makers.active
    assert "Bring makers back" in live.status()
    assert live.bring_back() is True and live.returned_at == live.t


def test_a_shortened_return_brings_the_makers_back_at_once():
    live = start(return_after=None)
    live.pull()
    live.advance(500)
    live.return_after = 100  # the user lowers the setting after 500 steps away
    live.advance()
    assert live.returned_at == live.pulled_at + 500


def test_rules_switch_once_and_are_logged():
    live = start(length=1_000, warmup=300)
    assert live.apply_rules(False, 0.0) is False
    assert live.apply_rules(True, 20.0) is True
    assert live.apply_rules(True, 20.0) is False
    assert live.rules.short_ban and live.rules.tobin_tax == pytest.approx(0.002)
    assert [text for _, text in live.events] == ["short ban on", "Tobin tax 20 bp"]


# ------------------------------------------------------------------------------ recovery
def test_live_recovery_is_what_marlsim_scenario_reports(tmp_path):
    live = start(length=8_000, return_after=1_000)
    live.advance()
    live.pull()
    while live.recovery_steps() is None and not live.full:
        live.advance()
    assert (live.pulled_at, live.returned_at) == (1_200, 2_200)
    # The same pull and return as a flash-crash scenario, through the command line.
    command = ["--kind", "flash_crash", "--steps", "8000", "--pull-at", "1200"]
    command += ["--return-at", "2200", "--seed", str(SEED), "--db", str(tmp_path / "r.duckdb")]
    out = subprocess.run(
        [MARLSIM, "scenario", *command, "--json"], capture_output=True, text=True, check=True
    )
    (reported,) = json.loads(out.stdout)["per_seed"]["flash_crash"]
    assert live.recovery_steps() == reported["recovery_steps"] is not None
    assert gauge(live, "Spread recovery").value == f"after {reported['recovery_steps']:,} steps"
    # ... and in-process, through the function the command calls.
    scenario = Scenario("flash_crash", start_at=1_200, end_at=2_200).resolved(8_000)
    run = run_scenario(MarketConfig(steps=8_000), scenario, SEED)
    assert measure(run, scenario)["recovery_steps"] == live.recovery_steps()


def test_recovery_shows_only_once_the_spread_held_within_tolerance():
    live = start(return_after=None)
    live.advance()
    live.pull()
    assert gauge(live, "Spread recovery").value == "not yet"
    live.advance(1_000)
    assert live.recovery_steps() is None  # makers away: the spread stays wide
    live.bring_back()
    checked = []
    while live.recovery_steps() is None:
        assert gauge(live, "Spread recovery").value == "not yet" and not live.full
        live.advance(10)
        checked.append(live.t)
    recovery = live.recovery_steps()
    spread = live.series("spread")
    held = spread[live.returned_at + recovery :][:RECOVERY_HOLD]
    assert len(held) == RECOVERY_HOLD
    assert np.all(held <= RECOVERY_RATIO * live.spread_before())
    # ... and it was not shown before the hold was complete.
    assert live.returned_at + recovery + RECOVERY_HOLD <= checked[-1]
    assert len(checked) == 1 or live.returned_at + recovery + RECOVERY_HOLD > checked[-2]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([1.0, 2.0, 9.0, math.nan]), min_size=60, max_size=300),
    st.integers(0, 250),
)
def test_rechecking_a_growing_series_finds_the_same_recovery(values, checked):
    spread = np.array([2.0] * 100 + values)
    start = 100
    full = spread_recovery_steps(spread, start, start)
    checked = min(checked + start, len(spread))
    if spread_recovery_steps(spread[:checked], start, start) is None:
        assert spread_recovery_steps(spread, start, start, checked) == full
    within = np.nan_to_num(spread, nan=np.inf) <= 1.5 * nanmean(spread[pre_event_start(100) : 100])
    if full is not None:
        assert within[start + full : start + full + RECOVERY_HOLD].all()


# ------------------------------------------------------------------------------ the gauges
def test_the_spread_delta_points_the_way_the_spread_moved():
    live = start(return_after=1_000)
    live.advance()
    live.pull()
    live.advance()
    up = gauge(live, "Spread (ticks)")
    assert up.delta.startswith("+") and up.delta.endswith("vs pre-pull (lower is better)")
    assert up.delta_color == "inverse"  # a rise shows red, a fall green
    signs = set()
    for _ in range(100):  # the makers come back after 5 chunks; the spread goes up and down
        if signs == {"+", "-"}:
            break
        live.advance()
        change = live.spread_now() / live.spread_before() - 1
        delta = gauge(live, "Spread (ticks)").delta
        assert delta.startswith(f"{change:+.0%} ")
        if round(change, 2):
            signs.add(delta[0])
            assert delta[0] == ("+" if change > 0 else "-")  # the arrow follows the change
    assert signs == {"+", "-"}


# ------------------------------------------------------------------------------ numbers
def test_number_helpers():
    assert math.isnan(nanmean([math.nan])) and nanmean([1.0, math.nan, 3.0]) == 2.0
    assert fmt(math.inf) == "-" and fmt(None, missing="n/a") == "n/a" and fmt(2.0) == "2.00"
    assert finite_or_none({"a": [1.0, math.nan], "b": (math.inf, "x")}) == {
        "a": [1.0, None],
        "b": [None, "x"],
    }


# ------------------------------------------------------------------------------ one implementation
REPO = Path(__file__).resolve().parents[1]
FRONT_ENDS = ("app_pages/3_scenarios.py", "marl_market/lite/page.py")


@pytest.mark.parametrize("page", FRONT_ENDS)
def test_the_app_and_the_dashboard_play_this_live_market_and_mark_events_one_way(page):
    source = (REPO / page).read_text(encoding="utf-8")
    imported = {
        (node.module, alias.name)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert ("marl_market.core.live", "LiveMarket") in imported
    # No second copy of the pull, the rules or the event marks in the page itself.
    for own_copy in (".pull_market_makers()", "set_rules(", "add_vline(", "def nanmean"):
        assert own_copy not in source
    assert "add_events" in source
    assert not (REPO / "marl_market" / "live.py").exists()
