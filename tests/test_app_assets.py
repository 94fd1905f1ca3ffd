"""Multi-asset and regime-switching runs in the lab: the sidebar's asset controls, the asset
selector of the Market and Stylised facts pages, the correlation table, the stress band, and the
book snapshots of every asset (AppTest, as in test_app.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marl_market.core.config import MarketConfig
from marl_market.core.market import simulate
from marl_market.core.numbers import nanmean
from marl_market.lab.experiments import facts_of, market_summary, simulation_run_id
from marl_market.lab.snapshots import SnapshotRecorder, simulate_with_snapshots
from marl_market.plots_assets import (
    STRESS_COLOR,
    STRESS_NAME,
    asset_market_figure,
    correlation_pairs,
    stress_intervals,
)
from marl_market.store import RunStore
from marl_market.store.records import validate_simulate
from tests.test_app import SMALL, charts, metric, start, values

THREE = {"assets": 3, "correlation": 0.6}


@pytest.fixture(scope="module")
def three_assets():
    """The 3-asset market the pages simulate (seed 42), simulated here for reference."""
    request = validate_simulate(**SMALL, assets=3, correlation=0.6)
    return request, simulate(request.to_config(), request.seed)


def chart(at, key: str) -> dict:
    """The plotly JSON of the chart drawn with ``key`` (its element ID ends with the key)."""
    (element,) = [e for e in at.get("plotly_chart") if e.proto.id.endswith(f"-{key}")]
    return json.loads(element.proto.spec)


def table_with(at, column: str):
    """The first table on the page with ``column`` (dataframes carry no key in AppTest)."""
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def page_run_id(at) -> str:
    text = " ".join(m.value for m in at.markdown)
    return text.split("`")[1]


# ------------------------------------------------------------------------------ the sidebar
def test_default_settings_keep_the_run_and_its_id(db):
    at = start()
    # The request as it was before the asset controls existed.
    before = validate_simulate(**SMALL)
    assert page_run_id(at) == simulation_run_id(before.to_config(), 42, 5)
    assert RunStore(db).list_runs()[0]["run_id"] == page_run_id(at)
    assert at.slider(key="assets").value == 1 and at.slider(key="correlation").disabled
    assert at.number_input(key="regime_switch").value == 0.0
    assert "asset" not in {s.key for s in at.selectbox}  # one asset: nothing to choose
    assert table_with(at, "pair") is None  # no correlation table
    market = chart(at, "market_chart")
    assert not market["layout"].get("shapes") and STRESS_NAME not in {
        t.get("name") for t in market["data"]
    }


def test_an_impossible_correlation_is_one_clear_error_and_writes_nothing(db):
    at = start(assets=5, correlation=-0.5)
    assert len(at.error) == 1
    assert "at least -0.25 with 5 assets" in at.error[0].value
    assert not charts(at)
    assert not db.exists()


def test_the_asset_settings_survive_a_page_switch(db):
    at = start(**THREE)
    at.selectbox(key="asset").set_value(2).run()
    at.switch_page("app_pages/2_stylised_facts.py").run()
    assert not at.exception
    assert at.slider(key="assets").value == 3
    assert at.slider(key="correlation").value == pytest.approx(0.6)
    assert at.selectbox(key="asset").value == 2


# ------------------------------------------------------------------------------ Market page
def test_three_assets_choosing_asset_2_shows_asset_2s_market(db, three_assets):
    request, result = three_assets
    at = start(**THREE)
    selector = at.selectbox(key="asset")
    assert selector.options == ["asset 0", "asset 1", "asset 2"] and selector.value == 0
    assert metric(at, "Last mid (ticks)") == pytest.approx(
        result.asset_series("mid", 0)[-1], abs=0.05
    )
    selector.set_value(2).run()
    assert not at.exception
    mid_2 = result.asset_series("mid", 2)
    assert mid_2[-1] != result.asset_series("mid", 0)[-1]  # else the test could not fail
    assert metric(at, "Last mid (ticks)") == pytest.approx(mid_2[-1], abs=0.05)
    assert metric(at, "Mean spread (ticks)") == pytest.approx(
        nanmean(result.asset_series("spread", 2)), abs=0.005
    )
    assert metric(at, "Trades") == np.count_nonzero(result.trades["asset"] == 2)
    assert metric(at, "Excess kurtosis") == pytest.approx(
        facts_of(result, 5, 2).excess_kurtosis, abs=0.05
    )
    # The price chart, the depth chart and the order book are asset 2's too.
    np.testing.assert_allclose(values(trace(chart(at, "market_chart"), "mid")["y"]), mid_2)
    np.testing.assert_array_equal(
        values(trace(chart(at, "depth_chart"), "bid depth")["y"]),
        result.asset_series("bid_depth", 2),
    )
    _, book = simulate_with_snapshots(request.to_config(), 42)
    book_mid = values(trace(chart(at, "book_heatmap"), "mid")["y"])
    np.testing.assert_allclose(book_mid, book.of_asset(2).mid)
    assert not np.allclose(book_mid, book.mid)  # asset 0's book looks different
    assert "of asset 2" in " ".join(h.value for h in at.subheader)


def test_the_correlation_table_shows_configured_beside_measured(db, three_assets):
    request, result = three_assets
    at = start(**THREE)
    table = table_with(at, "pair")
    assert list(table["pair"]) == ["asset 0 - asset 1", "asset 0 - asset 2", "asset 1 - asset 2"]
    assert list(table["configured"]) == [0.6, 0.6, 0.6]
    measured = np.array(market_summary(result, 5, facts_of(result, 5))["fundamental_correlation"])
    np.testing.assert_allclose(
        table["measured"], [measured[0, 1], measured[0, 2], measured[1, 2]], atol=5e-4
    )
    assert all(0.3 < m < 0.9 for m in table["measured"])  # near 0.6, not 0 (independent)
    heatmap = chart(at, "correlation_chart")
    assert {t["name"] for t in heatmap["data"]} == {"configured", "measured"}


def test_a_regime_switching_run_shades_its_stress_steps(db):
    at = start(regime_switch=0.01)
    request = validate_simulate(**SMALL, regime_switch=0.01)
    result = simulate(request.to_config(), 42)
    regime = result.asset_series("regime", 0)
    assert 0 < regime.sum() < len(regime)  # some stress, some normal
    market = chart(at, "market_chart")
    shapes = [s for s in market["layout"]["shapes"] if s.get("fillcolor") == STRESS_COLOR]
    expected = stress_intervals(result.asset_series("step", 0), regime)
    assert [(s["x0"], s["x1"]) for s in shapes] == expected
    assert STRESS_NAME in {t.get("name") for t in market["data"]}
    assert any("stress regime" in c.value for c in at.caption)
    assert "asset" not in {s.key for s in at.selectbox}  # still one asset


# ------------------------------------------------------------------------------ Stylised facts
def test_stylised_facts_follow_the_chosen_asset(db, three_assets):
    _, result = three_assets
    at = start("app_pages/2_stylised_facts.py", **THREE)
    at.selectbox(key="asset").set_value(1).run()
    assert not at.exception
    facts = facts_of(result, 5, 1)
    table = table_with(at, "fact")
    kurtosis = table.loc[table["fact"] == "Excess kurtosis", "simulated"].iloc[0]
    assert float(kurtosis) == pytest.approx(facts.excess_kurtosis, rel=0.01)
    acf = trace(chart(at, "acf_chart"), "ACF of |r|")
    np.testing.assert_allclose(values(acf["y"]), facts.acf_abs, atol=1e-9)
    assert not np.allclose(values(acf["y"]), facts_of(result, 5, 0).acf_abs)
    assert any("mid of asset 1" in c.value for c in at.caption)


# ------------------------------------------------------------------------------ snapshots
def test_snapshots_record_every_asset_of_a_multi_asset_run():
    config = MarketConfig(steps=600, n_assets=2)
    result, book = simulate_with_snapshots(config, 42, every=50)
    assert book.assets == [0, 1]
    for asset in (0, 1):
        snaps = book.of_asset(asset)
        assert snaps.asset == asset and snaps.step.tolist() == [*range(0, 600, 50), 599]
        best_bid = result.asset_series("best_bid", asset)[snaps.step]
        np.testing.assert_array_equal(snaps.bid_price[:, 0], best_bid)
        np.testing.assert_array_equal(snaps.mid, result.asset_series("mid", asset)[snaps.step])
    with pytest.raises(ValueError, match="no book snapshots of asset 2"):
        book.of_asset(2)
    # The run itself is the plain run.
    np.testing.assert_array_equal(result.steps["mid"], simulate(config, 42).steps["mid"])


def test_a_one_asset_run_records_only_its_book():
    _, book = simulate_with_snapshots(MarketConfig(steps=300), 42, every=50)
    assert book.assets == [0] and book.others == {} and book.of_asset(0) is book


def test_recorder_rejects_assets_it_cannot_record():
    with pytest.raises(ValueError, match="distinct"):
        SnapshotRecorder(10, assets=(0, 0))
    with pytest.raises(ValueError, match="cannot snapshot asset 1"):
        simulate_with_snapshots(MarketConfig(steps=300), 42, assets=(0, 1))


# ------------------------------------------------------------------------------ figures
def test_stress_intervals_cover_each_stretch_of_stress():
    step = np.arange(10)
    regime = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 1])
    assert stress_intervals(step, regime) == [(0.5, 2.5), (4.5, 5.5), (7.5, 9.5)]
    assert stress_intervals(step, np.zeros(10)) == []
    # A regime flipping every step is coarsened to at most max_bands windows.
    flipping = np.tile([1, 0], 500)
    assert len(stress_intervals(np.arange(1_000), flipping, max_bands=20)) <= 20


def test_market_figure_of_a_never_stressed_asset_has_no_band():
    steps = {
        "step": np.repeat(np.arange(5), 2),
        "asset": np.tile([0, 1], 5),
        "regime": np.array([0, 0, 1, 1, 1, 1, 0, 0, 0, 0]),
        **{k: np.ones(10) for k in ("mid", "fair_value", "spread", "volume")},
    }
    fig = asset_market_figure(steps, asset=1)
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(0.5, 2.5)]
    steps["regime"] = np.zeros(10, dtype=int)
    assert not asset_market_figure(steps, asset=1).layout.shapes


def test_correlation_pairs_of_independent_assets_are_configured_zero():
    measured = np.array([[1.0, 0.1], [0.1, 1.0]])
    assert correlation_pairs(measured, None) == [
        {"pair": "asset 0 - asset 1", "configured": 0.0, "measured": 0.1}
    ]
    with pytest.raises(ValueError, match="3x3"):
        correlation_pairs(measured, np.eye(3))


def test_fewer_assets_reset_a_chosen_asset_that_no_longer_exists(db):
    at = start(**THREE)
    at.selectbox(key="asset").set_value(2).run()
    at.slider(key="assets").set_value(2).run()
    assert not at.exception
    assert at.selectbox(key="asset").options == ["asset 0", "asset 1"]
    assert at.selectbox(key="asset").value == 0
