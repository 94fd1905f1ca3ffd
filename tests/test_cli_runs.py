"""What a new user tripped on, through real ``marlsim`` processes: bad and missing databases,
help texts, what a run's output names, run lists that tell runs apart, and sharing runs by ID
(export, import, verify) between databases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from marl_market.store import RunStore, code_version

MARLSIM = [sys.executable, "-m", "marl_market.cli"]
GARBAGE = b"this is not a database\n" * 50


def marlsim(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MARLSIM, *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": str(columns)},
    )  # fmt: skip


def one_error_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A database with a simulation and a two-seed flash-crash scenario (baseline + scenario)."""
    db = tmp_path_factory.mktemp("runs") / "runs.duckdb"
    sim = marlsim("simulate", "--steps", "1500", "--db", str(db), "--json")
    assert sim.returncode == 0, sim.stderr
    crash = marlsim(
        "scenario", "--kind", "flash_crash", "--steps", "1500", "--seeds", "2", "--workers", "1",
        "--db", str(db), "--json",
    )  # fmt: skip
    assert crash.returncode == 0, crash.stderr
    return db, json.loads(sim.stdout)["run_id"], json.loads(crash.stdout)


# Every command, with "{db}" where the database goes and "{run}" for a stored run's ID.
COMMANDS = {
    "runs list": ["runs", "list"],
    "runs show": ["runs", "show", "{run}"],
    "runs sql": ["runs", "sql", "SELECT 1"],
    "runs export": ["runs", "export", "{run}", "--to", "{out}/shared.duckdb"],
    "runs verify": ["runs", "verify", "{run}"],
    "report": ["report", "{run}", "--out", "{out}/report.html"],
    "runs import": ["runs", "import", "{out}/nothing.duckdb"],
    "simulate": ["simulate", "--steps", "200"],
    "scenario": ["scenario", "--kind", "shock", "--steps", "400", "--seeds", "1"],
}
READ_ONLY = ("runs list", "runs show", "runs sql", "runs export", "runs verify", "report")


def _args(name: str, db: Path, out: Path) -> list[str]:
    filled = [a.format(run="0123456789abcdef", out=out) for a in COMMANDS[name]]
    return [*filled, "--db", str(db)]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_file_that_is_not_a_database_is_one_line_exit_2_and_left_untouched(name, tmp_path):
    db = tmp_path / "garbage.duckdb"
    db.write_bytes(GARBAGE)
    before = db.stat().st_mtime_ns
    message = one_error_line(marlsim(*_args(name, db, tmp_path)))
    assert "not a DuckDB database" in message
    assert db.read_bytes() == GARBAGE and db.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.duckdb"]


@pytest.mark.parametrize("name", ["runs list", "runs show", "report", "simulate"])
def test_a_directory_as_the_database_is_one_line_exit_2(name, tmp_path):
    folder = tmp_path / "folder.duckdb"
    folder.mkdir()
    message = one_error_line(marlsim(*_args(name, folder, tmp_path)))
    assert "directory" in message and list(folder.iterdir()) == []


@pytest.mark.parametrize("name", READ_ONLY)
def test_a_read_only_command_on_a_missing_database_says_so_and_creates_nothing(name, tmp_path):
    db = tmp_path / "data" / "typo.duckdb"
    message = one_error_line(marlsim(*_args(name, db, tmp_path)))
    assert "no run database" in message and str(db) in message
    assert not db.parent.exists()


def test_help_texts_have_no_stray_fragments():
    # typer cuts "[default: ...]" out of a help text and leaves " ." behind: none may remain.
    for command in ([], *[c[:2] if c[0] == "runs" else c[:1] for c in COMMANDS.values()]):
        out = marlsim(*command, "--help", columns=250)
        assert out.returncode == 0, out.stderr
        assert not re.search(r"\S \.(\s|$)", out.stdout + out.stderr), command


def test_simulate_names_its_run_and_database_and_shows_the_whole_facts_table(tmp_path):
    db = tmp_path / "runs.duckdb"
    out = marlsim("simulate", "--steps", "1000", "--db", str(db))
    assert out.returncode == 0, out.stderr
    run_id = RunStore(db).list_runs()[0]["run_id"]
    assert f"run {run_id}" in out.stdout and str(db) in out.stdout.replace("\n", "")
    header = next(line for line in out.stdout.splitlines() if "simulated" in line)
    assert "fact" in header and "S&P 500" in header and "…" not in header


def test_run_lists_tell_runs_apart(stored):
    db, _, crash = stored
    rows = json.loads(marlsim("runs", "list", "--db", str(db), "--json").stdout)["runs"]
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert {"simulate", "baseline", "scenario"} <= set(by_kind)
    for row in rows:
        assert row["seed"] is not None and row["n_steps"] == 1500 or row["kind"] == "simulate"
        assert row["code_version"] == code_version()
    assert {r["scenario"] for r in by_kind["scenario"]} == {"flash_crash"}
    shown = marlsim("runs", "show", crash["run_ids"]["flash_crash"][0], "--db", str(db)).stdout
    assert "scenario: flash_crash" in shown and "intervention at step 750" in shown
    table = marlsim("runs", "list", "--db", str(db), columns=140).stdout
    assert "flash_crash" in table and "scenario" in table and "1,500" in table
    assert code_version() in table
    narrow = marlsim("runs", "list", "--db", str(db), columns=80).stdout
    assert "…" not in narrow  # folded, never cut


def test_a_comparison_row_has_its_steps(tmp_path):
    db = tmp_path / "runs.duckdb"
    out = marlsim(
        "scenario", "--kind", "compare", "--steps", "1200", "--seeds", "2", "--workers", "1",
        "--db", str(db), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    compare_id = json.loads(out.stdout)["run_id"]
    compare = RunStore(db).get_run(compare_id)
    assert compare["n_steps"] == 1200 and "flash_crash" in compare["scenario"]
    assert compare["seeds"] == "42-43 (2)"
    table = marlsim("runs", "list", "--db", str(db), columns=80).stdout
    assert compare_id in table and "42-43" in table  # the run ID whole, never wrapped
    shown = marlsim("runs", "show", compare_id, "--db", str(db)).stdout
    assert "flash_crash vs baseline" in shown and "metrics" not in shown.split("{")[0]


def test_report_files_get_the_users_normal_mode(stored, tmp_path):
    db, run_id, _ = stored
    old = os.umask(0o022)
    try:
        out = marlsim("report", run_id, "--out", str(tmp_path / "r.html"), "--no-book",
                      "--db", str(db))  # fmt: skip
    finally:
        os.umask(old)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o644
    assert "<th></th>" not in (tmp_path / "r.html").read_text()


def test_export_import_round_trip_and_conflicts(stored, tmp_path):
    db, run_id, crash = stored
    scenario_ids = crash["run_ids"]["flash_crash"]
    shared = tmp_path / "shared.duckdb"
    out = marlsim("runs", "export", run_id, *scenario_ids, "--to", str(shared), "--db", str(db),
                  "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    again = marlsim("runs", "export", run_id, "--to", str(shared), "--db", str(db))
    assert "already exists" in one_error_line(again)

    colleague = tmp_path / "colleague.duckdb"
    first = json.loads(marlsim("runs", "import", str(shared), "--db", str(colleague),
                               "--json").stdout)  # fmt: skip
    assert sorted(first["imported"]) == sorted([run_id, *scenario_ids])
    mine, theirs = RunStore(db), RunStore(colleague)
    for rid in (run_id, *scenario_ids):
        for load in ("load_steps", "load_trades", "load_agents", "load_agent_steps"):
            a, b = getattr(mine, load)(rid), getattr(theirs, load)(rid)
            assert all((a[c] == b[c]).all() or a[c].dtype.kind == "f" for c in a)
        assert mine.load_metrics(rid) == theirs.load_metrics(rid)
        assert mine.get_run(rid)["config"] == theirs.get_run(rid)["config"]
    second = json.loads(marlsim("runs", "import", str(shared), "--db", str(colleague),
                                "--json").stdout)  # fmt: skip
    assert second["imported"] == [] and sorted(second["skipped"]) == sorted(first["imported"])

    # The colleague's copy of one run is changed: importing the original again is refused.
    with duckdb.connect(str(colleague)) as con:
        con.execute("UPDATE metrics SET value = value + 1 WHERE run_id = ?", [run_id])
    size, mtime = colleague.stat().st_size, colleague.stat().st_mtime_ns
    refused = marlsim("runs", "import", str(shared), "--db", str(colleague))
    assert "different contents" in one_error_line(refused)
    assert (colleague.stat().st_size, colleague.stat().st_mtime_ns) == (size, mtime)


def test_verify_reproduces_a_run_and_catches_a_changed_one(stored, tmp_path):
    db, run_id, crash = stored
    scenario_id = crash["run_ids"]["flash_crash"][0]
    for rid in (run_id, scenario_id):
        out = marlsim("runs", "verify", rid, "--db", str(db), "--json")
        assert out.returncode == 0, out.stderr
        verdict = json.loads(out.stdout)
        assert verdict["identical"] and verdict["same_code"] and verdict["differences"] == []

    copy = tmp_path / "tampered.duckdb"
    copy.write_bytes(db.read_bytes())
    with duckdb.connect(str(copy)) as con:
        con.execute("UPDATE steps SET mid = mid + 1 WHERE run_id = ? AND step = 700", [run_id])
    out = marlsim("runs", "verify", run_id, "--db", str(copy), "--json")
    assert out.returncode == 1
    verdict = json.loads(out.stdout)
    assert not verdict["identical"] and "steps.mid" in verdict["differences"]
    assert verdict["same_code"]


def test_run_ids_follow_the_simulation_source(tmp_path, monkeypatch):
    from marl_market.store import ids

    source = tmp_path / "core"
    source.mkdir()
    (source / "market.py").write_text("x = 1\n")
    monkeypatch.setattr(ids, "SIMULATION_SOURCE", source)
    ids.code_version.cache_clear()
    try:
        before = ids.code_version()
        (source / "market.py").write_text("x = 2\n")
        ids.code_version.cache_clear()
        after = ids.code_version()
    finally:
        ids.code_version.cache_clear()
    assert before != after and before.split("+")[0] == after.split("+")[0]
    config = {"market": {"steps": 10}}
    assert ids.make_run_id("simulate", config, 42, before) != ids.make_run_id(
        "simulate", config, 42, after
    )
