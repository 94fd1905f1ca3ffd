"""``marlsim train`` end to end: the --json contract, a stored run returned not retrained,
bad options refused before anything is written, Ctrl-C leaving a resumable run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from marl_market.cli import app
from marl_market.rl import runs
from tests.test_cli_runs import MARLSIM, marlsim, one_error_line

TINY = ["--iterations", "2", "--episode-steps", "50", "--episodes", "1", "--eval-seeds", "3"]


def train_json(*args: str) -> dict:
    out = marlsim("train", *args, "--json")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny `marlsim train --learners maker` run: (database, payload, csv path)."""
    folder = tmp_path_factory.mktemp("train")
    db, csv = folder / "runs.duckdb", folder / "log.csv"
    payload = train_json("--learners", "maker", *TINY, "--db", str(db), "--csv", str(csv))
    return db, payload, csv


def test_the_json_contract(trained):
    db, payload, _ = trained
    assert isinstance(payload["run_id"], str) and len(payload["run_id"]) == 16
    evaluation = payload["eval"]
    for part in ("learned_mtm", "fixed_mtm", "paired_diff"):
        assert set(evaluation[part]) >= {"mean", "ci_low", "ci_high"}
        assert evaluation[part]["ci_low"] <= evaluation[part]["mean"] <= evaluation[part]["ci_high"]
    assert evaluation["eval_seeds"] == [1, 2, 3]
    assert 0 <= evaluation["wins"] <= 3
    assert payload["status"] == "done" and payload["cached"] is False
    assert payload["config"]["learners"] == ["maker"] and payload["iterations"] == 2


def test_the_run_is_listed_and_shown_with_its_evaluation(trained):
    db, payload, _ = trained
    listed = json.loads(marlsim("runs", "list", "--db", str(db), "--json").stdout)["runs"]
    assert [(r["run_id"], r["kind"]) for r in listed] == [(payload["run_id"], "train")]
    shown = marlsim("runs", "show", payload["run_id"], "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    metrics = json.loads(shown.stdout)["metrics"]
    assert metrics["eval_paired_diff_mean"] == pytest.approx(payload["eval"]["paired_diff"]["mean"])
    assert metrics["eval_wins"] == payload["eval"]["wins"]


def test_the_csv_holds_the_per_iteration_log(trained):
    db, payload, csv = trained
    table = pd.read_csv(csv)
    assert list(table["iteration"]) == [0, 1] and set(table["type"]) == {"maker"}
    for column in ("episode_reward", "approx_kl", "agent_steps_per_s", "tracking_error_asset0"):
        assert column in table, column
    logs = runs.load_training(db, payload["run_id"]).logs
    assert list(table["episode_reward"]) == pytest.approx(list(logs["episode_reward"]))


def test_the_same_command_again_is_returned_not_retrained(trained):
    db, payload, _ = trained
    out = marlsim("train", "--learners", "maker", *TINY, "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    again = json.loads(out.stdout)
    assert again["cached"] is True and again["run_id"] == payload["run_id"]
    assert again["eval"]["paired_diff"] == payload["eval"]["paired_diff"]
    assert "already trained and evaluated: not retrained" in out.stderr


BAD = [
    (["--preset", "single_maker", "--learners", "maker"], "--preset sets the learners"),
    (["--preset", "single_maker", "--everyone"], "--preset sets the learners"),
    (["--everyone", "--learners", "maker"], "--everyone already makes every type learn"),
    (["--learners", "banker"], "unknown type 'banker'"),
    (["--encoder", "transformer"], "unknown encoder 'transformer'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--iterations", "0"], "iterations must be a positive integer"),
    (["--eval-seeds", "1"], "--eval-seeds must be at least 2"),
    (["--learners", "arb"], "n_assets must be >= 2"),
    (["--resume", "feedfacefeedface", "--iterations", "3"], "drop --iterations"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "new" / "runs.duckdb"
    out = marlsim("train", *args, "--db", str(db), "--json")
    assert message in one_error_line(out)
    assert out.stdout == ""
    assert not (tmp_path / "new").exists()  # not even the database's folder


def test_resuming_an_unknown_run_leaves_the_database_untouched(trained):
    db, _, _ = trained
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    out = marlsim("train", "--resume", "feedfacefeedface", "--db", str(db))
    assert "no training run 'feedfacefeedface'" in one_error_line(out)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_ctrl_c_keeps_a_resumable_run_that_ends_as_the_uninterrupted_one(
    trained, tmp_path, monkeypatch
):
    _, payload, _ = trained
    train = runs.run_training

    def interrupted_after_one_iteration(*args, on_iteration=None, **kwargs):
        def interrupt(log: dict) -> None:
            on_iteration(log)
            raise KeyboardInterrupt  # what Ctrl-C raises, after the first iteration is stored

        return train(*args, on_iteration=interrupt, **kwargs)

    monkeypatch.setattr(runs, "run_training", interrupted_after_one_iteration)
    db = tmp_path / "runs.duckdb"
    result = CliRunner().invoke(app, ["train", "--learners", "maker", *TINY, "--db", str(db)])
    assert result.exit_code == 130, result.output
    run_id = payload["run_id"]
    assert f"stopped after iteration 1/2: run {run_id} kept" in result.output
    assert f"marlsim train --resume {run_id} --db {db}" in result.output
    record = runs.load_training(db, run_id)
    assert record.status == "stopped" and len(record.checkpoints) == 1
    monkeypatch.undo()

    resumed = train_json("--resume", run_id, "--db", str(db))
    assert resumed["run_id"] == run_id and resumed["iterations"] == 2
    assert resumed["eval"] == payload["eval"]  # as if it had never been interrupted


def test_ctrl_c_in_a_terminal_stops_the_trainer_and_its_worker_quietly(tmp_path):
    # A terminal's Ctrl-C reaches the whole process group: the trainer and the worker process
    # that plays the other rollout group (8 episodes = 2 groups of 4). The run is kept, the
    # exit is 130, no traceback is printed and no process is left behind.
    db = tmp_path / "runs.duckdb"
    command = [*MARLSIM, "train", "--learners", "maker", "--iterations", "200"]
    command += ["--episode-steps", "100", "--episodes", "8", "--eval-seeds", "2", "--db", str(db)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    checkpoints = tmp_path / "checkpoints"
    deadline = time.monotonic() + 120
    while not any(checkpoints.glob("*/iter_0001.pt")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "kept (status stopped)" in stderr
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # the group is empty: the worker is gone too
