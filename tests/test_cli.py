"""``marlsim`` end to end, through real processes: the JSON contract, bad options, the store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marl_market.store import RunStore

MARLSIM = [sys.executable, "-m", "marl_market.cli"]


def marlsim(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MARLSIM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    db = tmp_path_factory.mktemp("cli") / "runs.duckdb"
    out = marlsim("simulate", "--steps", "3000", "--seed", "42", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return db, out


def test_simulate_json_contract(simulated):
    _, out = simulated
    payload = json.loads(out.stdout)  # exactly one JSON object on stdout
    assert isinstance(payload["run_id"], str) and payload["run_id"]
    facts = payload["facts"]
    assert facts["return_interval"] == 5
    assert isinstance(facts["excess_kurtosis"], float)
    assert len(facts["acf_abs"]) == 50 and len(facts["acf_raw"]) == 50
    assert facts["mean_spread_ticks"] > 0
    assert "Stylised facts" in out.stderr  # the table goes to stderr in --json mode


def test_simulate_is_stored_and_rerun_returns_the_stored_run(simulated):
    db, out = simulated
    run_id = json.loads(out.stdout)["run_id"]
    again = marlsim("simulate", "--steps", "3000", "--seed", "42", "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    payload = json.loads(again.stdout)
    assert payload["run_id"] == run_id and payload["cached"] is True
    assert payload["facts"] == json.loads(out.stdout)["facts"]
    listed = json.loads(marlsim("runs", "list", "--db", str(db), "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    shown = json.loads(marlsim("runs", "show", run_id, "--db", str(db), "--json").stdout)
    assert shown["seed"] == 42 and shown["metrics"]["excess_kurtosis"] == pytest.approx(
        payload["facts"]["excess_kurtosis"]
    )
    sql = marlsim("runs", "sql", "SELECT count(*) AS n FROM steps", "--db", str(db), "--json")
    assert json.loads(sql.stdout) == {"columns": ["n"], "rows": [[3000]]}


def test_runs_sql_refuses_writes_and_file_reads(simulated):
    db, _ = simulated
    for query in ("DELETE FROM runs", "SELECT * FROM read_csv('/etc/passwd')"):
        out = marlsim("runs", "sql", query, "--db", str(db))
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1
    assert len(RunStore(db).list_runs()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "steps"),
        (["--steps", "-5"], "steps"),
        (["--steps", "many"], "--steps"),
        (["--makers", "0", "--momentum", "0", "--value", "0", "--noise", "0"], "population"),
        (["--makers", "-1"], "makers"),
        (["--steps", "1000", "--return-interval", "5000"], "return interval"),
        (["--return-interval", "0"], "return_interval"),
        (["--no-such-option"], "no-such-option"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "runs.duckdb"
    out = marlsim("simulate", *args, "--db", str(db))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert out.stdout == ""
    assert not db.exists()


def test_unwritable_database_path_exits_2_before_simulating(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = marlsim("simulate", "--steps", "2000", "--db", str(blocker / "runs.duckdb"))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "a_file" in out.stderr


def test_db_from_environment(tmp_path):
    db = tmp_path / "env.duckdb"
    out = marlsim("simulate", "--steps", "1000", "--json", env={"MARL_MARKET_DB": str(db)})
    assert out.returncode == 0, out.stderr
    assert db.exists() and json.loads(out.stdout)["db"] == str(db)


@pytest.mark.slow
def test_two_simulations_writing_at_once_both_land(tmp_path):
    db = tmp_path / "runs.duckdb"
    env = {**os.environ, "MARL_MARKET_TEST_SLOW_SAVE": "1.5"}  # hold the lock a while
    procs = [
        subprocess.Popen(
            [
                *MARLSIM,
                "simulate",
                "--steps",
                "2000",
                "--seed",
                str(seed),
                "--db",
                str(db),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in (1, 2)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    ids = {json.loads(out)["run_id"] for out, _ in outputs}
    assert {r["run_id"] for r in RunStore(db).list_runs()} == ids
    for run_id in ids:
        assert len(RunStore(db).load_steps(run_id)["step"]) == 2000


@pytest.mark.slow
def test_a_killed_simulation_leaves_no_run_and_the_next_one_works(tmp_path):
    db = tmp_path / "runs.duckdb"
    env = {**os.environ, "MARL_MARKET_TEST_SLOW_SAVE": "30"}
    proc = subprocess.Popen(
        [*MARLSIM, "simulate", "--steps", "2000", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not Path(str(db)).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # now inside the save transaction, sleeping
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert RunStore(db).list_runs() == []
    out = marlsim("simulate", "--steps", "2000", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    assert [r["run_id"] for r in RunStore(db).list_runs()] == [json.loads(out.stdout)["run_id"]]
