"""The Scenarios page over the Market page's multi-asset market (AppTest, as in test_app.py):
the sidebar's assets, venues and traders reach the live panel and the paired comparison, which
measures every book; with the default settings the page is the one-asset page it was."""

from __future__ import annotations

import numpy as np
import pytest

from app_pages._common import ARBS_NEED_ASSETS
from marl_market.core.scenarios import measure, pre_event_start, run_with_baseline
from marl_market.lab import workbench
from marl_market.lab.experiments import resolve_scenario
from marl_market.store import RunStore
from marl_market.store.records import validate_scenario, validate_simulate
from tests.test_app import SMALL, start

PAGE = "app_pages/3_scenarios.py"
COMPARE = {"compare_seeds": 2, "compare_steps": 600}


def compare(at, kinds: list[str]):
    at.multiselect(key="compare_kinds").set_value(kinds)
    at.button(key="run_compare").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def table(at):
    """The first scenario's comparison table, indexed by metric."""
    return at.dataframe[0].value.set_index("metric")


def stored_compare(db):
    (row,) = [r for r in RunStore(db).list_runs(limit=100) if r["kind"] == "compare"]
    return RunStore(db).get_run(row["run_id"])


def spread_blowup(config, kinds: list[str], seed: int, book: int) -> float:
    """The flash crash's spread blow-up on ``book``, measured by hand from the runs."""
    scenarios = [resolve_scenario(k, config.steps) for k in kinds]
    baseline, (run, *_) = run_with_baseline(config, scenarios, seed)
    scenario = scenarios[0]
    spread = run.asset_series("spread", book)
    start_at = scenario.start_at
    crash_end = min(start_at + scenario.window, scenario.end_at or config.steps)
    during = np.nanmean(spread[start_at:crash_end])
    before = np.nanmean(spread[pre_event_start(start_at) : start_at])
    return during / before


def test_two_assets_the_comparison_shows_each_assets_results(db):
    at = start(PAGE, assets=2, correlation=0.5, arbs=1, **COMPARE)
    live = at.session_state["live_run"]
    assert live.market.config.n_assets == 2  # the live run is the sidebar's market
    assert any("2 books" in c.value and "asset 0" in c.value for c in at.caption)
    compare(at, ["flash_crash", "tobin_tax"])

    selector = at.selectbox(key="compare_asset")
    assert selector.options == ["asset 0", "asset 1"] and selector.value == 0
    config = validate_simulate(**SMALL, assets=2, correlation=0.5, arbs=1).to_config()
    config = config.replace(steps=600)
    expected = [
        np.mean([spread_blowup(config, ["flash_crash", "tobin_tax"], s, b) for s in (42, 43)])
        for b in (0, 1)
    ]
    assert expected[0] != pytest.approx(expected[1], rel=1e-3)  # else the test could not fail
    shown_0 = float(table(at).loc["spread_blowup", "scenario mean"])
    assert shown_0 == pytest.approx(expected[0], rel=1e-2)

    selector.set_value(1).run()
    assert not at.exception, at.exception
    shown_1 = float(table(at).loc["spread_blowup", "scenario mean"])
    assert shown_1 == pytest.approx(expected[1], rel=1e-2)
    assert len(at.dataframe) == 2  # one table per scenario, for the chosen asset

    row = stored_compare(db)
    assert row["config"]["market"]["n_assets"] == 2
    assert row["config"]["market"]["population"]["arbs"] == 1
    assert [a["asset"] for a in row["summary"]["assets"]] == [0, 1]


def test_venues_name_each_book_by_its_asset_and_venue(db):
    at = start(PAGE, venues=2, arbs=1, **COMPARE)
    assert not at.slider(key="arbs").disabled  # two venues give an arbitrageur its pair
    assert ARBS_NEED_ASSETS not in [c.value for c in at.sidebar.caption]
    live = at.session_state["live_run"]
    assert live.market.config.listings == (0, 0)
    assert any("asset 0 on venue 0" in c.value for c in at.caption)
    compare(at, ["flash_crash"])
    selector = at.selectbox(key="compare_asset")
    assert selector.options == ["asset 0 on venue 0", "asset 0 on venue 1"]
    # One scenario is stored as its runs (no compare row), each with the market's books.
    store = RunStore(db)
    runs = [r for r in store.list_runs(limit=100) if r["kind"] == "scenario"]
    assert len(runs) == 2
    assert all(store.get_run(r["run_id"])["config"]["market"]["listings"] == [0, 0] for r in runs)


def test_changing_the_market_starts_a_new_live_run(db):
    at = start(PAGE)
    first = at.session_state["live_run"]
    at.slider(key="assets").set_value(2).run()
    assert not at.exception, at.exception
    second = at.session_state["live_run"]
    assert second is not first and second.market.config.n_assets == 2
    at.slider(key="steps").set_value(1_500).run()  # the sidebar's run length is not the live one
    assert at.session_state["live_run"] is second


def test_the_single_asset_page_compares_the_market_it_did_before(db, tmp_path):
    at = start(PAGE, **COMPARE)
    assert at.slider(key="venues").value == 1 and at.slider(key="assets").value == 1
    assert not any("live panel shows" in c.value for c in at.main.caption)  # no note
    compare(at, ["flash_crash", "shock"])
    assert "compare_asset" not in {s.key for s in at.selectbox}
    # The comparison the page made before it took the market settings: same run ID and table.
    request = validate_scenario(kind="compare", seed=42, seeds=2, steps=600, tax_bp=10.0)
    before = workbench.compare_scenarios(
        request, ["flash_crash", "shock"], store=RunStore(tmp_path / "before.duckdb"), workers=1
    )
    assert stored_compare(db)["run_id"] == before.run_id
    assert "assets" not in before.as_dict() and "assets" not in stored_compare(db)["summary"]
    shown = float(table(at).loc["spread_blowup", "scenario mean"])
    assert shown == pytest.approx(before.summaries["flash_crash"]["spread_blowup"]["mean"], 1e-2)


def test_measured_per_book_metrics_match_the_scenario_measure_on_book_0(db):
    """Book 0's statistics in ``assets`` are the top-level ones (``measure`` of asset 0)."""
    request = validate_scenario(kind="compare", seed=42, seeds=2, steps=600)
    market = validate_simulate(**SMALL, assets=2)
    outcome = workbench.compare_scenarios(request, ["tobin_tax"], workers=1, market=market)
    assert outcome.assets[0]["summaries"] == outcome.summaries
    config = request.to_config(market.to_config())
    scenario = resolve_scenario("tobin_tax", 600)
    baseline, (run,) = run_with_baseline(config, [scenario], 42)
    seed_42 = outcome.per_seed["tobin_tax"][0]
    assert seed_42["mean_spread"] == pytest.approx(measure(run, scenario, baseline)["mean_spread"])
