"""The Streamlit front page under AppTest."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_front_page_runs_a_market_and_stores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MARL_MARKET_DB", str(tmp_path / "app.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    at.sidebar.slider(key="steps").set_value(2_000)
    at.run()
    assert not at.exception
    assert at.metric[0].label == "Excess kurtosis"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"] for t in chart["data"]} >= {"mid", "fair value", "spread", "volume"}
    assert (tmp_path / "app.duckdb").exists()


def test_front_page_reports_an_empty_population(tmp_path, monkeypatch):
    monkeypatch.setenv("MARL_MARKET_DB", str(tmp_path / "app.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    for key in ("makers", "momentum", "value", "noise"):
        at.sidebar.slider(key=key).set_value(0)
    at.run()
    assert not at.exception
    assert "population is empty" in at.error[0].value
