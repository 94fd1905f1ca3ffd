"""The Train page under AppTest: it shows the run ID its settings give, refuses bad settings
with one error, trains in a ``marlsim train`` subprocess it follows through the database,
stops (SIGINT) and resumes that process, and opens any stored training run by ``?run_id=``.

Each test has its own database (``$MARL_MARKET_DB``) and tiny configs. AppTest does not fire
``st.fragment`` timers, so the tests poll the database themselves and rerun the page.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_pages import _trainers
from marl_market import plots_train
from marl_market.rl import runs
from marl_market.store.training import TrainingStore
from tests.test_app import APP, charts, trace_names

PAGE = "app_pages/5_train.py"
WAIT = 120  # seconds a test waits for a trainer
# Custom, one learning maker, tiny: trains and evaluates in a few seconds.
TINY = {
    "train_mode": "Custom",
    "train_learners": ["maker"],
    "train_encoder": "mlp",
    "train_assets": 1,
    "train_iterations": 2,
    "train_episode_steps": 50,
    "train_episodes": 1,
    "train_seed": 42,
    "train_eval_seeds": 2,
}


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "app.duckdb"
    monkeypatch.setenv("MARL_MARKET_DB", str(path))
    yield path
    # A failed test can leave its trainer running: stop the ones this test started.
    for trainer in started_trainers(path):
        if trainer.alive:
            trainer.process.send_signal(signal.SIGINT)
            try:
                trainer.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                trainer.process.kill()
                trainer.process.wait()


def started_trainers(db: Path) -> list[_trainers.Trainer]:
    """The processes the app started for ``db`` (the server-wide registry is this process's)."""
    registry = _trainers.registry()
    return [t for t in (registry.get(str(db), i) for i in run_ids_in_logs(db)) if t is not None]


def run_ids_in_logs(db: Path) -> list[str]:
    folder = _trainers.log_path(str(db), "x").parent
    return [p.stem for p in folder.glob("*.log")] if folder.is_dir() else []


def open_page(query: dict | None = None, **state) -> AppTest:
    """The Train page run once with ``state`` in session state."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE)
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def tiny_config(**changes) -> runs.TrainConfig:
    settings = {"iterations": 2, "episode_steps": 50, "episodes_per_iteration": 1, **changes}
    return runs.TrainConfig(**settings)


def status(db: Path, run_id: str) -> str | None:
    row = TrainingStore(db).training_row(run_id) if db.exists() else None
    return None if row is None else row["status"]


def iterations_stored(db: Path, run_id: str) -> int:
    if status(db, run_id) is None:
        return 0
    return len(runs.load_training(db, run_id).checkpoints)


def wait_for_exit(db: Path, run_id: str) -> int:
    """The exit code of the app's trainer for ``run_id``, once it has exited."""
    trainer = _trainers.registry().get(str(db), run_id)
    assert trainer is not None, "the page started no trainer"
    return trainer.process.wait(timeout=WAIT)


def matrix(data: list | dict) -> np.ndarray:
    """A heatmap's z: plotly >= 6 sends a 2-d numpy array as base64 ``bdata`` with its shape."""
    if isinstance(data, dict) and "bdata" in data:
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
        return flat.reshape([int(n) for n in str(data["shape"]).split(",")])
    return np.array(data, dtype=float)


def markdown(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


# ------------------------------------------------------------------------------ settings
def test_the_page_shows_the_run_id_of_its_settings_and_writes_nothing(db):
    at = open_page()
    assert at.title[0].value == "Train"
    assert not at.error
    expected = runs.training_run_id(runs.preset_config("single_maker"), runs.DEFAULT_EVAL_SEEDS)
    assert f"run `{expected}`" in markdown(at)
    assert at.button(key="train_launch").label == "Train"
    assert "No training runs yet" in at.info[0].value
    # Custom settings give the CLI's run ID for the same options.
    at = open_page(**TINY)
    assert f"run `{runs.training_run_id(tiny_config(), 2)}`" in markdown(at)
    assert not db.exists()


@pytest.mark.parametrize(
    ("learners", "message"),
    [(["arb"], "an arbitrageur trades a pair"), ([], "learners is empty")],
)
def test_bad_settings_give_one_error_and_start_nothing(db, learners, message):
    at = open_page(**{**TINY, "train_learners": learners})
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "train_launch"]
    assert not run_ids_in_logs(db) and not db.exists()


# ------------------------------------------------------------------------------ training
def test_a_run_trained_from_the_page_is_followed_and_evaluated(db):
    run_id = runs.training_run_id(tiny_config(), 2)
    at = open_page(**TINY)
    at.button(key="train_launch").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="train_open_run").value == run_id  # opened below at once
    assert at.query_params["run_id"] in (run_id, [run_id])  # the address bar links to it
    assert wait_for_exit(db, run_id) == 0
    assert status(db, run_id) == "done"

    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table[""])[:3] == ["MTM", "wins (learned > fixed)", "MTM, untrained policy"]
    assert table["learned - fixed (paired)"][1].endswith("/ 2")
    assert table["learned - fixed (paired)"][2].startswith("learned - untrained: ")
    assert any("market: mean spread" in row for row in table[""])
    verdict = [*at.info, *at.success, *at.warning]
    assert any("paired 95% CI" in v.value for v in verdict)
    assert {"maker", "learned", "fixed", "asset 0", "mtm"} <= trace_names(at)
    assert any(b.label == "Download CSV" for b in at.get("download_button"))
    assert next(m.value for m in at.metric if m.label == "Iteration") == "2 / 2"
    # Settings of a finished run: nothing to launch, the stored run is reused.
    assert not [b for b in at.button if b.key == "train_launch"]
    assert "Already trained" in " ".join(c.value for c in at.caption)
    log = _trainers.log_path(str(db), run_id).read_text()
    assert '"status": "done"' in log


def test_stop_then_resume_ends_like_an_uninterrupted_run(db, tmp_path):
    # Iterations long enough (~1 s) for the first to be stored well before the last.
    settings = {**TINY, "train_iterations": 5, "train_episode_steps": 1000, "train_episodes": 2}
    config = tiny_config(iterations=5, episode_steps=1000, episodes_per_iteration=2)
    run_id = runs.training_run_id(config, 2)
    at = open_page(**settings)
    at.button(key="train_launch").click().run()
    assert not at.exception
    with pytest.raises(_trainers.AlreadyTraining):  # one process per run, whatever the tabs
        _trainers.registry().start(str(db), run_id, ["--resume", run_id])

    deadline = time.monotonic() + WAIT
    while iterations_stored(db, run_id) == 0:
        assert time.monotonic() < deadline, "no iteration stored"
        time.sleep(0.1)
    at.run()
    at.button(key="train_stop").click().run()
    assert not at.exception
    assert wait_for_exit(db, run_id) == 130  # marlsim train's exit after Ctrl-C
    record = runs.load_training(db, run_id)
    assert record.status == "stopped" and 1 <= len(record.checkpoints) < 5

    at.run()
    assert next(m.value for m in at.metric if m.label == "Status") == "stopped"
    at.button(key="train_resume").click().run()
    assert not at.exception and not at.error
    assert wait_for_exit(db, run_id) == 0
    at.run()
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value[""])[0] == "MTM"  # the evaluation table

    resumed = runs.load_training(db, run_id)
    assert resumed.status == "done"
    assert list(resumed.logs["iteration"]) == [0, 1, 2, 3, 4]
    whole_db = tmp_path / "whole.duckdb"
    runs.run_training(whole_db, config, eval_seeds=2)
    whole = runs.load_training(whole_db, run_id)
    assert resumed.evaluation == whole.evaluation
    timing = [c for c in runs.TIMING_COLUMNS if c in whole.logs]
    assert resumed.logs.drop(columns=timing).equals(whole.logs.drop(columns=timing))


# ------------------------------------------------------------------------------ stored runs
def test_a_link_opens_a_stored_gat_run_with_its_attention_map(db):
    config = tiny_config(learners=("maker", "arb"), encoder="gat", n_assets=2, iterations=1)
    run_id = runs.run_training(db, config, eval_seeds=2).run_id
    at = open_page(query={"run_id": run_id})
    assert not at.error
    assert at.selectbox(key="train_open_run").value == run_id
    assert f"train?run_id={run_id}" in markdown(at) and f"runs?run_id={run_id}" in markdown(at)
    heatmaps = [spec for spec in charts(at) for trace in spec["data"] if trace["type"] == "heatmap"]
    assert len(heatmaps) == 2  # one per learning type
    weights = matrix(heatmaps[0]["data"][0]["z"])
    assert weights.shape == (2, 2) and np.allclose(weights.sum(axis=0), 1.0)  # per target
    # The evaluation: one MTM row and one verdict per learning type the trainer evaluated.
    kinds = plots_train.evaluated_types(runs.load_training(db, run_id).evaluation)
    rows = [row for row in at.dataframe[0].value[""] if row.startswith("MTM, ") or row == "MTM"]
    rows = [row for row in rows if "untrained" not in row]
    assert rows == (["MTM"] if len(kinds) == 1 else [f"MTM, {kind}" for kind in kinds])
    assert len([*at.success, *at.info, *at.warning]) == len(kinds)


def test_a_link_to_something_else_says_so(db):
    at = open_page(query={"run_id": "0123456789abcdef"})
    assert "not a training run" in at.warning[0].value
    assert not at.error


def test_the_attention_map_reads_the_first_graph_of_a_batch():
    """GATConv's (edge_index, weights) over two agents' graphs of 2 assets, self-loops last, 2
    heads: the map is the first graph's, heads averaged, [source, target]."""
    edge_index = np.array([[0, 1, 2, 3, 0, 1, 2, 3], [1, 0, 3, 2, 0, 1, 2, 3]])
    weights = np.array([[0.2, 0.4], [0.6, 0.8], [0.5, 0.5], [0.5, 0.5],
                        [0.4, 0.2], [0.8, 0.6], [0.5, 0.5], [0.5, 0.5]])  # fmt: skip
    weights_map = plots_train.attention_matrix(edge_index, weights, n_assets=2)
    assert np.allclose(weights_map, [[0.3, 0.3], [0.7, 0.7]])
    assert np.allclose(weights_map.sum(axis=0), 1.0)  # each target's weights over its sources
