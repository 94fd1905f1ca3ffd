"""The HTML report of a stored run: in Python, and through ``marlsim report`` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marl_market.lab import workbench
from marl_market.lab.report import build_report
from marl_market.store import RunStore, StoreError
from marl_market.store.records import validate_scenario, validate_simulate

MARLSIM = [sys.executable, "-m", "marl_market.cli"]


def marlsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MARLSIM, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy()
    )


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("report") / "runs.duckdb"
    run = workbench.run_market(validate_simulate(steps=1_500, seed=11), RunStore(db))
    return db, run.run_id


@pytest.fixture(scope="module")
def document(stored) -> str:
    db, run_id = stored
    return build_report(RunStore(db), run_id)


def test_report_names_the_run_and_its_config(stored, document):
    _, run_id = stored
    assert f"<title>marl-market run {run_id}</title>" in document
    assert f"marlsim runs show {run_id}" in document
    assert '"steps": 1500' in document  # the config


def test_report_has_the_facts_beside_the_sp500(document):
    table = re.search(r"<h2>Stylised facts.*?</table>", document, re.S).group(0)
    assert "S&amp;P 500 daily 1999-2018" in table or "S&P 500 daily 1999-2018" in table
    for fact in ("Excess kurtosis", "ACF |r| lag 1", "Hill tail index", "Mean spread (ticks)"):
        assert fact in table
    assert "<td>8.17</td>" in table  # the S&P 500 excess kurtosis


def test_report_embeds_plotly_once_and_fetches_nothing(document):
    figures = document.count('class="plotly-graph-div"')
    assert figures >= 7  # price, depth, agents, distribution, QQ, ACF, book
    # plotly.js inline exactly once: its bundle starts with this banner.
    assert document.count("* plotly.js v") == 1
    assert re.search(r"<script[^>]+src=", document) is None  # nothing to fetch: works offline
    assert re.search(r"<link[^>]+href=", document) is None


def test_report_keeps_its_colours_inside_the_app(stored):
    # Importing Streamlit makes its own plotly template the default; that template leaves the
    # colours to Streamlit's frontend, so a report built inside the app must not use it.
    import streamlit  # noqa: F401

    db, run_id = stored
    document = build_report(RunStore(db), run_id, book=False)
    assert '"colorway":["#636efa"' in document


def test_report_of_a_comparison(tmp_path):
    store = RunStore(tmp_path / "runs.duckdb")
    request = validate_scenario(kind="compare", seeds=2, steps=500)
    outcome = workbench.compare_scenarios(request, ["flash_crash", "tobin_tax"], store, workers=1)
    document = build_report(store, outcome.run_id)
    assert "Scenarios against their baselines" in document
    assert "spread_blowup" in document and "95% CI" in document
    assert document.count("* plotly.js v") == 1


def test_report_of_an_unknown_run_raises(tmp_path):
    with pytest.raises(StoreError, match="no run"):
        build_report(RunStore(tmp_path / "none.duckdb"), "0123456789abcdef")


# ------------------------------------------------------------------------------ marlsim report
def test_cli_writes_the_report(stored, tmp_path):
    db, run_id = stored
    out = tmp_path / "report.html"
    done = marlsim("report", run_id, "--out", str(out), "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload == {"run_id": run_id, "out": str(out), "bytes": out.stat().st_size}
    assert run_id in out.read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_unknown_run_exits_2_with_one_line(stored, tmp_path):
    db, _ = stored
    out = tmp_path / "report.html"
    done = marlsim("report", "0123456789abcdef", "--out", str(out), "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no run '0123456789abcdef'" in done.stderr
    assert done.stdout == "" and not out.exists()


@pytest.mark.parametrize("where", ["missing_dir/report.html", "."])
def test_cli_unwritable_out_exits_2_and_writes_nothing(stored, tmp_path, where):
    db, run_id = stored
    out = tmp_path / where
    done = marlsim("report", run_id, "--out", str(out), "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "error:" in done.stderr
    assert not (tmp_path / "missing_dir").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_report_needs_out(stored):
    db, run_id = stored
    done = marlsim("report", run_id, "--db", str(db))
    assert done.returncode == 2 and "--out" in done.stderr
