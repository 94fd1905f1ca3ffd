"""The multipage lab under Streamlit's AppTest: every page renders, and the things users do work.

Each test has its own database (``$MARL_MARKET_DB``) and small step counts. Settings are put in
session state before the first run (the widgets are drawn without ``value=`` for that reason),
so no test pays for a default 5,000-step market it does not look at. Plotly charts show up as
UnknownElement; ``json.loads(el.proto.spec)`` gives their traces.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.testing.v1 import AppTest

from marl_market.core.scenarios import Scenario, measure, run_scenario
from marl_market.lab import workbench
from marl_market.store import RunStore
from marl_market.store.records import validate_simulate

UP, DOWN = Metric.MetricDirection.UP, Metric.MetricDirection.DOWN
RED, GREEN = Metric.MetricColor.RED, Metric.MetricColor.GREEN
APP = str(Path(__file__).resolve().parent.parent / "app.py")
SMALL = {"steps": 1_000, "return_interval": 5}


def start(page: str | None = None, query: dict | None = None, **state) -> AppTest:
    """The app run once (on the Market page unless a link says otherwise), then on ``page``."""
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {**SMALL, **state}.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list[dict]:
    """Every plotly chart on the page, as plotly JSON."""
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def trace_names(at: AppTest) -> set[str]:
    return {t.get("name") for spec in charts(at) for t in spec["data"]}


def values(data: list | dict) -> list:
    """A trace's data array: plotly >= 6 sends numpy arrays as base64 ``bdata``."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def title(spec: dict) -> str:
    return json.dumps(spec["layout"].get("title", ""))


def metric(at: AppTest, label: str) -> float:
    value = next(m.value for m in at.metric if m.label == label)
    return float(value.replace(",", "").split()[0])


def stored_run(db: Path, steps: int = 1_000) -> str:
    """A simulation stored in ``db`` the way the Market page stores it."""
    request = validate_simulate(steps=steps, seed=7)
    return workbench.run_market(request, RunStore(db)).run_id


# ------------------------------------------------------------------------------ Market
def test_market_page_runs_a_market_stores_it_and_draws_it(db):
    at = start()
    assert at.title[0].value == "Market"
    names = trace_names(at)
    assert {"mid", "fair value", "spread", "volume"} <= names  # price vs fair value, spread, volume
    assert {"bids depth", "asks depth", "bids", "asks"} <= names  # the book heatmap and the ladder
    assert {"maker", "momentum", "value", "noise"} <= names  # agents' PnL and inventory
    types = {t["type"] for spec in charts(at) for t in spec["data"]}
    assert "heatmap" in types
    runs = RunStore(db).list_runs()
    assert len(runs) == 1 and runs[0]["n_steps"] == 1_000
    assert runs[0]["run_id"] in " ".join(m.value for m in at.markdown)
    assert metric(at, "Mean spread (ticks)") > 0


def test_market_page_ladder_follows_the_chosen_step(db):
    at = start()
    at.slider(key="ladder_step").set_value(500).run()
    assert not at.exception
    assert metric(at, "Snapshot step") == 500
    ladder = next(spec for spec in charts(at) if "ladder" in title(spec))
    assert "step 500" in title(ladder)


def test_market_page_rerun_hits_the_cache(db):
    at = start()
    created = RunStore(db).list_runs()[0]["created_at"]
    at.run()
    assert not at.exception
    # The same cached market: not simulated or stored again.
    assert "new in the database" in " ".join(m.value for m in at.markdown)
    assert RunStore(db).list_runs()[0]["created_at"] == created


def test_an_empty_population_gives_one_error_and_writes_nothing(db):
    at = start(makers=0, momentum=0, value=0, noise=0)
    assert len(at.error) == 1
    assert "population is empty" in at.error[0].value
    assert not charts(at)
    for page in ("app_pages/2_stylised_facts.py", "app_pages/3_scenarios.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert len(at.error) == 1 and "population is empty" in at.error[0].value
        assert not charts(at)
    assert not db.exists()


def test_too_few_returns_is_one_clear_error(db):
    at = start(steps=500, return_interval=50)
    assert len(at.error) == 1 and "fewer than 20 returns" in at.error[0].value
    assert not db.exists()


def test_an_unusable_database_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MARL_MARKET_DB", str(blocker / "app.duckdb"))
    at = start()
    assert len(at.error) == 1 and "is not a directory" in at.error[0].value
    assert not charts(at)


# ------------------------------------------------------------------------------ Stylised facts
def test_stylised_facts_page(db):
    at = start("app_pages/2_stylised_facts.py")
    specs = charts(at)
    layouts = [spec["layout"] for spec in specs]
    assert any(layout.get("yaxis", {}).get("type") == "log" for layout in layouts)  # vs Gaussian
    assert {"simulated", "Gaussian", "returns", "ACF of |r|", "ACF of r", "mean spread"} <= (
        trace_names(at)
    )
    spread = next(t for spec in specs for t in spec["data"] if t.get("name") == "mean spread")
    assert values(spread["x"]) == [1, 2, 3, 4]
    table = at.dataframe[0].value
    assert list(table.columns) == ["fact", "simulated", "S&P 500 daily 1999-2018"]
    assert "Excess kurtosis" in set(table["fact"])
    # The makers' curve is a set of stored runs: the page's own run plus 1..4 makers.
    assert len(RunStore(db).list_runs()) >= 4


# ------------------------------------------------------------------------------ Scenarios
def test_pulling_the_makers_blows_up_the_spread_on_that_rerun(db):
    at = start("app_pages/3_scenarios.py")
    before = metric(at, "Spread (ticks)")
    step = metric(at, "Step")
    at.button(key="pull_market_makers").click().run()
    assert not at.exception
    after = metric(at, "Spread (ticks)")
    assert after > 4 * before, (before, after)
    assert metric(at, "Step") > step  # the click's own rerun played on
    live = at.session_state["live_run"]
    assert live.pulled_at == step  # pulled where the run stood, before this rerun's chunk
    assert any("makers pulled" in json.dumps(spec) for spec in charts(at))
    pulled_at = live.pulled_at
    at.run()  # a replayed click must not pull again
    assert at.session_state["live_run"].pulled_at == pulled_at
    assert at.button(key="pull_market_makers").disabled


def test_the_spread_arrow_and_colour_follow_its_direction(db):
    at = start("app_pages/3_scenarios.py", live_return_after=400)
    at.button(key="pull_market_makers").click().run()
    seen = set()
    for _ in range(40):  # the blow-up, the return after two chunks, then ups and downs
        if seen == {True, False}:
            break
        live = at.session_state["live_run"]
        change = live.spread_now() / live.spread_before() - 1
        (gauge,) = [m for m in at.metric if m.label == "Spread (ticks)"]
        assert gauge.delta.endswith("vs pre-pull (lower is better)")
        if round(change, 2):
            rose = change > 0
            seen.add(rose)
            assert gauge.delta.startswith("+" if rose else "-"), gauge.delta
            assert gauge.proto.direction == (UP if rose else DOWN)
            assert gauge.proto.color == (RED if rose else GREEN)  # lower is better
        at.run()
    assert seen == {True, False}


def recovery_shown(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "Spread recovery")


def test_recovery_is_shown_only_once_the_scenario_measure_says_so(db):
    at = start("app_pages/3_scenarios.py", live_return_after=300)
    at.button(key="pull_market_makers").click().run()
    config = validate_simulate(**SMALL).to_config()
    shown = []
    while True:
        live = at.session_state["live_run"]
        # What `marlsim scenario --kind flash_crash` reports for a run of the steps played.
        scenario = Scenario("flash_crash", start_at=live.pulled_at, end_at=live.returned_at)
        scenario = scenario.resolved(live.t)
        run = run_scenario(config.replace(steps=live.t), scenario, 42)
        reported = measure(run, scenario)["recovery_steps"]
        shown.append(recovery_shown(at))
        if reported is None:
            assert shown[-1] == "not yet"
        else:
            assert shown[-1] == f"after {reported:,} steps"
            break
        at.run()
        assert len(shown) < 30
    assert shown[0] == "not yet" and live.returned_at == live.pulled_at + 300


def test_the_makers_stay_away_as_long_as_the_user_says(db):
    at = start("app_pages/3_scenarios.py", live_return_after=0)
    at.button(key="pull_market_makers").click().run()
    for _ in range(4):
        at.run()
    live = at.session_state["live_run"]
    assert live.returned_at is None and not live.market.makers.active
    assert recovery_shown(at) == "not yet"
    at.button(key="return_market_makers").click().run()
    assert live.returned_at is not None and live.market.makers.active
    assert any("makers back" in json.dumps(spec) for spec in charts(at))


@pytest.fixture
def timers(monkeypatch) -> list:
    """The fragment timers (auto-rerun messages) each script run sends the browser: one list
    per script run, the latest last."""
    runs: list[list[float]] = [[]]
    enqueue, clear = ForwardMsgQueue.enqueue, ForwardMsgQueue.clear

    def spy_enqueue(queue, msg):
        if msg.HasField("auto_rerun"):
            runs[-1].append(msg.auto_rerun.interval)
        return enqueue(queue, msg)

    def spy_clear(queue, *args, **kwargs):  # called as each script run starts
        runs.append([])
        return clear(queue, *args, **kwargs)

    monkeypatch.setattr(ForwardMsgQueue, "enqueue", spy_enqueue)
    monkeypatch.setattr(ForwardMsgQueue, "clear", spy_clear)
    return runs


def test_a_paused_page_has_no_timer_and_does_not_advance(db, timers):
    at = start("app_pages/3_scenarios.py")
    assert timers[-1] == [1.0]  # playing: one tick a second
    at.toggle(key="live_playing").set_value(False).run()
    assert timers[-1] == []
    step = metric(at, "Step")
    at.button(key="pull_market_makers").click().run()  # a click while paused pulls ...
    at.run()
    assert metric(at, "Step") == step and timers[-1] == []  # ... and plays nothing
    assert at.session_state["live_run"].pulled_at == step
    at.button(key="play_chunk").click().run()
    assert metric(at, "Step") == step + 200 and timers[-1] == []


def test_a_finished_run_drops_its_timer(db, timers):
    at = start("app_pages/3_scenarios.py", live_length=10_000, live_warmup=200)
    live = at.session_state["live_run"]
    live.advance(10_000 - 200 - live.t)  # 200 steps before the end
    at.run()
    assert live.full and metric(at, "Step") == 10_000
    assert timers[-1] == []  # the run that found it finished registered no timer
    assert any("played all its 10,000 steps" in i.value for i in at.info)
    at.run()
    assert metric(at, "Step") == 10_000 and timers[-1] == []


def test_a_live_run_goes_past_20000_steps_to_its_configured_length(db):
    at = start("app_pages/3_scenarios.py", live_length=30_000, live_warmup=200)
    live = at.session_state["live_run"]
    assert live.length == 30_000
    live.advance(19_900 - live.t)
    at.run()
    at.run()
    assert metric(at, "Step") == 20_300 and not live.full and not at.info
    assert not at.button(key="pull_market_makers").disabled


def test_restart_starts_a_fresh_live_run(db):
    at = start("app_pages/3_scenarios.py")
    at.button(key="pull_market_makers").click().run()
    old = at.session_state["live_run"]
    at.button(key="restart_live").click().run()
    assert not at.exception
    fresh = at.session_state["live_run"]
    assert fresh is not old and fresh.pulled_at is None
    assert not at.button(key="pull_market_makers").disabled


def test_rules_toggles_apply_to_the_live_run(db):
    at = start("app_pages/3_scenarios.py")
    at.toggle(key="short_ban").set_value(True)
    at.toggle(key="tobin_tax").set_value(True)
    at.slider(key="tobin_tax_bp").set_value(25)
    at.run()
    assert not at.exception
    rules = at.session_state["live_run"].rules
    assert rules.short_ban and rules.tobin_tax == pytest.approx(25e-4)
    texts = [text for _, text in at.session_state["live_run"].events]
    assert "short ban on" in texts and "Tobin tax 25 bp" in texts


def test_compare_panel_runs_seeds_stores_them_and_shows_cis(db):
    at = start("app_pages/3_scenarios.py")
    at.multiselect(key="compare_kinds").set_value(["flash_crash", "tobin_tax"])
    at.number_input(key="compare_seeds").set_value(2)
    at.number_input(key="compare_steps").set_value(600)
    at.button(key="run_compare").click().run()
    assert not at.exception and not at.error
    tables = [df.value for df in at.dataframe]
    assert {"scenario mean", "baseline mean", "difference", "95% CI"} <= set(tables[0].columns)
    assert any(r != "-" for r in tables[0]["95% CI"])  # two seeds give an interval
    kinds = {r["kind"] for r in RunStore(db).list_runs(limit=100)}
    assert {"compare", "scenario", "baseline"} <= kinds


def test_compare_panel_rejects_an_empty_choice(db):
    at = start("app_pages/3_scenarios.py")
    at.multiselect(key="compare_kinds").set_value([])
    at.button(key="run_compare").click().run()
    assert len(at.error) == 1 and "at least one scenario" in at.error[0].value


# ------------------------------------------------------------------------------ Runs
def test_runs_page_opens_a_run_by_its_id(db):
    run_id = stored_run(db)
    at = start("app_pages/4_runs.py")
    assert run_id in set(at.dataframe[0].value["run_id"])
    at.text_input(key="open_run_id").input(run_id).run()
    assert not at.exception and not at.error
    assert {"mid", "spread", "bid depth", "maker", "ACF of |r|"} <= trace_names(at)
    code = " ".join(c.value for c in at.code)
    assert f"SELECT * FROM steps WHERE run_id = '{run_id}'" in code
    assert f"marlsim runs show {run_id}" in code
    assert at.query_params["run_id"] in (run_id, [run_id])  # the address bar links to the run


def test_a_shared_link_reopens_the_run(db):
    run_id = stored_run(db)
    at = start(query={"run_id": run_id})
    assert at.title[0].value == "Runs"
    assert at.text_input(key="open_run_id").value == run_id
    assert {"mid", "fair value", "maker"} <= trace_names(at)


def test_an_unknown_run_id_is_one_clear_error(db):
    stored_run(db)
    at = start("app_pages/4_runs.py")
    at.text_input(key="open_run_id").input("0123456789abcdef").run()
    assert not at.exception
    assert len(at.error) == 1 and "no run '0123456789abcdef'" in at.error[0].value


def test_the_order_book_of_a_stored_run_is_replayed_on_request(db):
    run_id = stored_run(db)
    at = start("app_pages/4_runs.py")
    at.text_input(key="open_run_id").input(run_id).run()
    at.toggle(key="replay_book").set_value(True).run()
    assert not at.exception and not at.warning
    assert "heatmap" in {t["type"] for spec in charts(at) for t in spec["data"]}


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM runs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "CREATE TABLE x AS SELECT 1",
        "SELECT 1; DELETE FROM runs",
    ],
)
def test_sql_box_refuses_writes_and_file_reads(db, sql):
    stored_run(db)
    at = start("app_pages/4_runs.py")
    before = RunStore(db).query("SELECT count(*) FROM runs")[1]
    at.text_area(key="sql_query").input(sql)
    at.button(key="run_sql").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "refused" in at.error[0].value
    assert RunStore(db).query("SELECT count(*) FROM runs")[1] == before
    assert not any("passwd" in str(df.value) for df in at.dataframe[1:])


def test_sql_box_runs_a_select(db):
    run_id = stored_run(db)
    at = start("app_pages/4_runs.py")
    at.text_area(key="sql_query").input(
        f"SELECT count(*) AS n FROM steps WHERE run_id = '{run_id}'"
    )
    at.button(key="run_sql").click().run()
    assert not at.exception and not at.error
    assert at.dataframe[-1].value["n"][0] == 1_000


# ------------------------------------------------------------------------------ all pages
def test_settings_survive_a_page_switch(db):
    at = start()
    at.slider(key="noise").set_value(6).run()
    at.switch_page("app_pages/2_stylised_facts.py").run()
    at.switch_page("app_pages/1_market.py").run()
    assert not at.exception
    assert at.slider(key="noise").value == 6
