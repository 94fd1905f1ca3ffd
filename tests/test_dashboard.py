"""The browser dashboard without a browser: its build, what it embeds, and the page itself.

``dashboard.html`` is committed: it must be exactly what the builder makes from the current
sources, and embed the project's own modules (not a copy that drifts). The page runs here under
Streamlit's AppTest on the server's Python; ``test_dashboard_browser.py`` runs it in Chromium.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.testing.v1 import AppTest

from marl_market.core.config import MarketConfig
from marl_market.core.live import LiveMarket
from marl_market.core.scenarios import Scenario, measure, run_scenario
from marl_market.lite import build
from marl_market.lite.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "dashboard.html"
PAGE = REPO_ROOT / "marl_market" / "lite" / "page.py"
REBUILD = "dashboard.html is out of date: run python -m marl_market.lite"


def _embedded(html_text: str, element_id: str) -> dict:
    match = re.search(
        rf'<script type="application/json" id="{element_id}">\n(.*?)\n</script>', html_text, re.S
    )
    assert match, f"no {element_id} block in the page"
    return json.loads(match.group(1))


def _expected_files() -> dict[str, Path]:
    """What the page must embed: the package root, every core module, plots and the page."""
    package = REPO_ROOT / "marl_market"
    files = {
        "streamlit_app.py": PAGE,
        "marl_market/__init__.py": package / "__init__.py",
        "marl_market/plots.py": package / "plots.py",
    }
    files.update({f"marl_market/core/{p.name}": p for p in (package / "core").glob("*.py")})
    return files


def _spread(at: AppTest) -> tuple[float, str]:
    (metric,) = [m for m in at.metric if m.label == "Spread (ticks)"]
    return float(metric.value), metric.delta


# ------------------------------------------------------------------------------ the build
def test_committed_dashboard_is_a_fresh_build():
    assert DASHBOARD.exists(), REBUILD
    assert DASHBOARD.read_bytes() == build.render_dashboard().encode("utf-8"), REBUILD


def test_build_is_deterministic_and_the_cli_writes_it(tmp_path, capsys):
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    build.build_dashboard(first)
    assert main(["--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert str(second) in capsys.readouterr().out


def test_dashboard_embeds_exactly_the_core_plots_and_page():
    text = DASHBOARD.read_text(encoding="utf-8")
    files = _embedded(text, "marl-market-files")
    expected = _expected_files()
    assert sorted(files) == sorted(expected)
    for name, path in expected.items():
        assert files[name] == path.read_text(encoding="utf-8"), f"{name} differs: {REBUILD}"


def test_dashboard_loads_the_pinned_stlite_and_pyodide():
    text = DASHBOARD.read_text(encoding="utf-8")
    assert "GENERATED FILE" in text and "python -m marl_market.lite" in text.split("<html")[0]
    assert (
        '<script src="https://cdn.jsdelivr.net/npm/@stlite/mountable@0.75.0/build/stlite.js"'
        in text
    )
    assert 'href="https://cdn.jsdelivr.net/npm/@stlite/mountable@0.75.0/build/stlite.css"' in text
    options = _embedded(text, "marl-market-options")
    assert options["pyodideUrl"] == "https://cdn.jsdelivr.net/pyodide/v0.27.7/full/pyodide.js"
    assert options["entrypoint"] == "streamlit_app.py"
    assert options["requirements"] == ["plotly==5.24.1"]
    # Nothing in the embedded sources can close the script element early.
    assert text.count("</script>") == 4


# ------------------------------------------------------------------------------ imports
def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.partition(".")[0])
    return roots - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize("name", sorted(_expected_files()))
def test_embedded_modules_import_only_what_pyodide_has(name):
    allowed = {"numpy", "marl_market"}
    if name in ("marl_market/plots.py", "streamlit_app.py"):
        allowed.add("plotly")
    if name == "streamlit_app.py":
        allowed.add("streamlit")
    assert _imported_roots(_expected_files()[name]) <= allowed


def test_page_uses_no_element_that_needs_pyarrow():
    # stlite ships only a pyarrow stub: dataframes, tables and the built-in charts break.
    needs_arrow = {"dataframe", "table", "data_editor", "line_chart", "area_chart", "bar_chart"}
    needs_arrow |= {"scatter_chart", "map"}
    used = {
        node.attr
        for node in ast.walk(ast.parse(PAGE.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "st"
    }
    assert not used & needs_arrow


# ------------------------------------------------------------------------------ the page
@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def test_page_shows_the_market_its_facts_and_its_own_timing(app):
    assert any(re.fullmatch(r"simulated 2,000 steps in [\d.]+ s", c.value) for c in app.caption)
    labels = {m.label for m in app.metric}
    assert {"Step", "Spread (ticks)", "Excess kurtosis", "ACF of |r|, lag 1"} <= labels
    assert "Pre-pull spread (ticks)" not in labels
    traces = {
        t.get("name")
        for chart in app.get("plotly_chart")
        for t in json.loads(chart.proto.spec)["data"]
    }
    assert {"mid", "fair value", "spread", "bid depth", "ask depth", "ACF of |r|"} <= traces


def test_pulling_the_makers_blows_up_the_spread_on_that_rerun(app):
    before, _ = _spread(app)
    app.button(key="pull").click().run()
    assert not app.exception
    after, delta = _spread(app)
    assert after > 3 * before, (before, after)
    assert delta.endswith("vs pre-pull (lower is better)") and delta.startswith("+")
    (gauge,) = [m for m in app.metric if m.label == "Spread (ticks)"]
    assert gauge.proto.direction == Metric.MetricDirection.UP  # up, and red: lower is better
    assert gauge.proto.color == Metric.MetricColor.RED
    (pre_pull,) = [m for m in app.metric if m.label == "Pre-pull spread (ticks)"]
    assert float(pre_pull.value) < after / 3
    assert any("Makers pulled at step **2,000**" in md.value for md in app.markdown)
    # A second click is ignored: the pull stays at step 2,000 while the run goes on.
    app.button(key="pull").click().run()
    assert any("Makers pulled at step **2,000**" in md.value for md in app.markdown)
    assert [m.value for m in app.metric if m.label == "Step"] == ["2,400"]


def test_the_makers_return_when_the_user_says_and_recovery_waits_for_the_measure(app):
    app.sidebar.number_input(key="return_after").set_value(400).run()
    app.button(key="pull").click().run()
    live = app.session_state["live"]
    assert isinstance(live, LiveMarket)  # the app's live market, not a copy
    shown = []
    while live.recovery_steps() is None:
        shown.append(next(m.value for m in app.metric if m.label == "Spread recovery"))
        app.button(key="advance").click().run()
        assert len(shown) < 30
    assert live.returned_at == live.pulled_at + 400
    assert set(shown) == {"not yet"}
    # What the flash-crash scenario reports for the same seed, pull and return.
    scenario = Scenario("flash_crash", start_at=live.pulled_at, end_at=live.returned_at)
    scenario = scenario.resolved(live.t)
    reported = measure(run_scenario(MarketConfig(steps=live.t), scenario, 42), scenario)
    recovery = next(m.value for m in app.metric if m.label == "Spread recovery")
    assert recovery == f"after {reported['recovery_steps']:,} steps"
    specs = " ".join(chart.proto.spec for chart in app.get("plotly_chart"))
    assert "makers pulled" in specs and "makers back" in specs


def test_with_no_return_set_the_makers_come_back_only_on_request(app):
    app.sidebar.number_input(key="return_after").set_value(0).run()
    app.button(key="pull").click().run()
    for _ in range(3):
        app.button(key="advance").click().run()
    live = app.session_state["live"]
    assert live.returned_at is None and 'Bring makers back"' in live.status()
    app.button(key="bring_back").click().run()
    assert live.returned_at == 3_000 and live.market.makers.active  # before its chunk


def test_the_live_run_goes_past_20000_steps_and_sets_no_timer(app, monkeypatch):
    timers = []
    enqueue = ForwardMsgQueue.enqueue

    def spy(queue, msg):
        if msg.HasField("auto_rerun"):
            timers.append(msg.auto_rerun.interval)
        return enqueue(queue, msg)

    monkeypatch.setattr(ForwardMsgQueue, "enqueue", spy)
    app.sidebar.number_input(key="live_length").set_value(30_000).run()
    live = app.session_state["live"]
    assert live.length == 30_000
    live.advance(19_900 - live.t)
    app.button(key="advance").click().run()
    app.button(key="advance").click().run()
    assert [m.value for m in app.metric if m.label == "Step"] == ["20,300"]
    assert not app.warning and timers == []  # an untouched page does nothing


def test_rules_switch_on_live_and_are_marked_on_the_charts(app):
    app.sidebar.toggle(key="short_ban").set_value(True).run()
    app.sidebar.toggle(key="tobin").set_value(True).run()
    assert not app.exception
    specs = " ".join(chart.proto.spec for chart in app.get("plotly_chart"))
    assert "short ban on" in specs and "Tobin tax 10 bp" in specs


def test_restart_and_new_settings_start_a_fresh_run(app):
    app.button(key="pull").click().run()
    app.sidebar.slider(key="steps").set_value(1_500).run()
    assert any(c.value.startswith("simulated 1,500 steps") for c in app.caption)
    assert "Pre-pull spread (ticks)" not in {m.label for m in app.metric}
    app.button(key="restart").click().run()
    assert [m.value for m in app.metric if m.label == "Step"] == ["1,500"]


def test_compare_view_tabulates_the_scenarios_against_baselines(app):
    app.button(key="compare").click().run()
    assert not app.exception
    (table,) = [md.value for md in app.markdown if md.value.startswith("| metric |")]
    assert "| flash crash | short ban | tobin tax |" in table
    row = next(line for line in table.splitlines() if line.startswith("| Spread blow-up"))
    flash_crash = float(row.split("|")[2].split("(")[0])
    assert flash_crash > 3  # the makers' exit widens the spread in every seed
    assert any(re.fullmatch(r"compared in [\d.]+ s", c.value) for c in app.caption)


def test_empty_population_is_reported(app):
    for key in ("makers", "momentum", "value", "noise"):
        app.sidebar.slider(key=key).set_value(0)
    app.run()
    assert "population is empty" in app.error[0].value
