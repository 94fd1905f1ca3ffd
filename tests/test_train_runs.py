"""Training runs in the store (``rl.runs``): one run ID per config, logs and checkpoints per
iteration, stop and resume ending identical to an uninterrupted run, a damaged checkpoint
refused with one clear error, evaluation on seeds training never used."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
import torch

from marl_market.rl import runs
from marl_market.rl.checkpoint import CheckpointError, file_digest
from marl_market.rl.env import MarketEnv
from marl_market.rl.ippo import TrainConfig, is_training_seed, training_seed
from marl_market.store import RunStore, StoreError

TINY = {"iterations": 2, "episode_steps": 50, "episodes_per_iteration": 1, "seed": 42}
EVAL_SEEDS = 3
LOG_COLUMNS = (
    "episode_reward", "component_mtm", "component_inventory_penalty", "policy_loss",
    "value_loss", "approx_kl", "clipfrac", "explained_variance", "entropy", "learning_rate",
    "agent_steps_per_s",
)  # fmt: skip
MARKET_COLUMNS = ("mean_spread", "volatility", "excess_kurtosis", "tracking_error")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, **changes})


def comparable(logs: pd.DataFrame) -> pd.DataFrame:
    """The logs without the columns that time the machine."""
    return logs.drop(columns=[c for c in runs.TIMING_COLUMNS if c in logs])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One tiny run trained start to end: (database, outcome)."""
    db = tmp_path_factory.mktemp("whole") / "runs.duckdb"
    torch.set_num_threads(1)
    outcome = runs.run_training(db, tiny_config(), eval_seeds=EVAL_SEEDS)
    return db, outcome


def stopped_run(tmp_path, **kwargs):
    """The tiny run stopped after its first iteration: (database, outcome)."""
    db = tmp_path / "runs.duckdb"
    outcome = runs.run_training(
        db, tiny_config(), eval_seeds=EVAL_SEEDS, should_stop=lambda: True, **kwargs
    )
    return db, outcome


def test_a_run_is_stored_whole_under_one_run_id(uninterrupted):
    db, outcome = uninterrupted
    assert not outcome.stopped and not outcome.cached
    assert outcome.run_id == runs.training_run_id(tiny_config(), EVAL_SEEDS)
    record = runs.load_training(db, outcome.run_id)
    assert record.status == "done" and record.eval_seeds == EVAL_SEEDS
    assert record.train_config() == tiny_config()
    # One log row per iteration and learning type, with every statistic the brief names.
    assert list(zip(record.logs["iteration"], record.logs["type"], strict=True)) == [
        (0, "maker"),
        (1, "maker"),
    ]
    for column in LOG_COLUMNS:
        assert column in record.logs, column
    assert list(record.logs["episode_reward"]) == [
        log["types"]["maker"]["episode_reward"] for log in outcome.state.logs
    ]
    # The market monitor per iteration and asset.
    assert list(record.market["asset"]) == [0, 0]
    for column in MARKET_COLUMNS:
        assert column in record.market, column
    # A checkpoint per iteration, at the default place, with the digest of its file.
    assert [c["iteration"] for c in record.checkpoints] == [1, 2]
    for checkpoint in record.checkpoints:
        assert checkpoint["path"].startswith(str(db.parent / "checkpoints" / outcome.run_id))
        assert checkpoint["path"].endswith(f"iter_{checkpoint['iteration']:04d}.pt")
        assert file_digest(checkpoint["path"]) == checkpoint["sha256"]
    # The evaluation under the same ID, and its summary as metrics `runs show` lists.
    assert record.evaluation["paired_diff"] == outcome.evaluation["paired_diff"]
    store = RunStore(db)
    metrics = store.load_metrics(outcome.run_id)
    assert metrics["eval_paired_diff_mean"] == pytest.approx(
        outcome.evaluation["paired_diff"]["mean"]
    )
    assert metrics["eval_wins"] == outcome.evaluation["wins"]
    assert [r["run_id"] for r in store.list_runs(kind="train")] == [outcome.run_id]


def test_the_same_config_again_is_returned_not_retrained(uninterrupted):
    db, outcome = uninterrupted
    seen = []
    again = runs.run_training(db, tiny_config(), eval_seeds=EVAL_SEEDS, on_iteration=seen.append)
    assert again.cached and again.run_id == outcome.run_id and seen == []
    assert again.evaluation == outcome.evaluation
    # The policy comes back from the latest checkpoint.
    for kind, policy in again.state.policies.items():
        original = outcome.state.policies[kind].net.state_dict()
        for name, tensor in policy.net.state_dict().items():
            assert torch.equal(tensor, original[name]), name


def test_two_identical_runs_give_identical_results(uninterrupted, tmp_path):
    db, outcome = uninterrupted
    twin = runs.run_training(tmp_path / "twin.duckdb", tiny_config(), eval_seeds=EVAL_SEEDS)
    assert twin.run_id == outcome.run_id
    pd.testing.assert_frame_equal(
        comparable(runs.load_training(tmp_path / "twin.duckdb", twin.run_id).logs),
        comparable(runs.load_training(db, outcome.run_id).logs),
    )
    assert twin.evaluation == outcome.evaluation


def test_a_different_seed_is_a_different_run(uninterrupted, tmp_path):
    _, outcome = uninterrupted
    assert runs.training_run_id(tiny_config(seed=7), EVAL_SEEDS) != outcome.run_id
    assert runs.training_run_id(tiny_config(), EVAL_SEEDS + 1) != outcome.run_id


def test_stopped_then_resumed_equals_uninterrupted(uninterrupted, tmp_path):
    db, outcome = uninterrupted
    stopped_db, stopped = stopped_run(tmp_path)
    assert stopped.stopped and stopped.evaluation is None
    record = runs.load_training(stopped_db, stopped.run_id)
    assert record.status == "stopped" and [c["iteration"] for c in record.checkpoints] == [1]
    assert RunStore(stopped_db).list_runs() == []  # unfinished: not among the finished runs
    resumed = runs.run_training(
        stopped_db, tiny_config(), eval_seeds=EVAL_SEEDS, resume_run_id=stopped.run_id
    )
    assert not resumed.stopped and resumed.run_id == outcome.run_id
    assert [log["iteration"] for log in resumed.state.logs] == [1]  # only the missing one
    pd.testing.assert_frame_equal(
        comparable(runs.load_training(stopped_db, stopped.run_id).logs),
        comparable(runs.load_training(db, outcome.run_id).logs),
    )
    pd.testing.assert_frame_equal(
        runs.load_training(stopped_db, stopped.run_id).market,
        runs.load_training(db, outcome.run_id).market,
    )
    assert resumed.evaluation == outcome.evaluation


def test_ctrl_c_keeps_the_finished_iterations_stopped(tmp_path):
    def interrupt(log: dict) -> None:
        raise KeyboardInterrupt

    db = tmp_path / "runs.duckdb"
    with pytest.raises(KeyboardInterrupt):
        runs.run_training(db, tiny_config(), eval_seeds=EVAL_SEEDS, on_iteration=interrupt)
    run_id = runs.training_run_id(tiny_config(), EVAL_SEEDS)
    record = runs.load_training(db, run_id)
    assert record.status == "stopped"
    assert [c["iteration"] for c in record.checkpoints] == [1]
    assert len(record.logs) == 1
    # The stopped run's policy loads, e.g. for the Market page.
    assert runs.load_trained_state(db, run_id).iteration == 1


def test_a_changed_checkpoint_is_refused_with_one_clear_error(tmp_path):
    db, stopped = stopped_run(tmp_path)
    (checkpoint,) = runs.load_training(db, stopped.run_id).checkpoints
    with open(checkpoint["path"], "r+b") as handle:  # one flipped byte
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    for attempt in (
        lambda: runs.run_training(
            db, tiny_config(), eval_seeds=EVAL_SEEDS, resume_run_id=stopped.run_id
        ),
        lambda: runs.load_trained_state(db, stopped.run_id),
    ):
        with pytest.raises(CheckpointError, match="does not match the SHA-256") as error:
            attempt()
        assert "\n" not in str(error.value) and stopped.run_id in str(error.value)
    assert runs.load_training(db, stopped.run_id).status == "stopped"  # nothing changed


def test_a_missing_checkpoint_is_refused_with_one_clear_error(tmp_path):
    db, stopped = stopped_run(tmp_path)
    (checkpoint,) = runs.load_training(db, stopped.run_id).checkpoints
    (tmp_path / "checkpoints" / stopped.run_id / "iter_0001.pt").unlink()
    with pytest.raises(CheckpointError, match="is missing: no file at"):
        runs.run_training(db, tiny_config(), eval_seeds=EVAL_SEEDS, resume_run_id=stopped.run_id)
    assert checkpoint["path"].endswith("iter_0001.pt")


def test_resume_refuses_an_unknown_run_or_another_config(tmp_path):
    db, stopped = stopped_run(tmp_path)
    with pytest.raises(StoreError, match="no training run 'feedfacefeedface'"):
        runs.run_training(
            db, tiny_config(), eval_seeds=EVAL_SEEDS, resume_run_id="feedfacefeedface"
        )
    with pytest.raises(StoreError, match="another config"):
        runs.run_training(
            db, tiny_config(seed=7), eval_seeds=EVAL_SEEDS, resume_run_id=stopped.run_id
        )
    config, n_eval = runs.stored_config(db, stopped.run_id)
    assert config == tiny_config() and n_eval == EVAL_SEEDS


def test_evaluation_seeds_are_never_training_seeds(tmp_path, monkeypatch):
    played: list[int] = []
    reset = MarketEnv.reset

    def recording_reset(self, seed=None, options=None):
        played.append(seed)
        return reset(self, seed=seed, options=options)

    monkeypatch.setattr(MarketEnv, "reset", recording_reset)
    config = tiny_config()
    outcome = runs.run_training(tmp_path / "runs.duckdb", config, eval_seeds=EVAL_SEEDS)
    assert outcome.evaluation["eval_seeds"] == [1, 2, 3]
    trained = {training_seed(config.seed, k) for k in range(config.iterations)}
    assert set(played) == trained | {1, 2, 3}
    assert all(is_training_seed(s) for s in trained)
    assert not any(is_training_seed(s) for s in outcome.evaluation["eval_seeds"])


def test_load_training_and_the_csv_export_round_trip(uninterrupted, tmp_path):
    db, outcome = uninterrupted
    path = runs.export_training_csv(db, outcome.run_id, tmp_path / "log.csv")
    table = pd.read_csv(path)
    record = runs.load_training(db, outcome.run_id)
    assert len(table) == len(record.logs) == 2
    pd.testing.assert_series_equal(table["episode_reward"], record.logs["episode_reward"])
    for column in MARKET_COLUMNS:
        assert list(table[f"{column}_asset0"]) == pytest.approx(list(record.market[column]))
    with pytest.raises(StoreError, match="does not exist"):
        runs.export_training_csv(db, outcome.run_id, tmp_path / "nowhere" / "log.csv")
    with pytest.raises(StoreError, match="no training run"):
        runs.load_training(db, "0000000000000000")


def test_the_training_tables_hold_long_rows(uninterrupted):
    db, outcome = uninterrupted
    with duckdb.connect(str(db), read_only=True) as con:
        kinds = con.execute(
            "SELECT DISTINCT agent_type FROM train_logs WHERE run_id = ? ORDER BY 1",
            [outcome.run_id],
        ).fetchall()
    assert kinds == [("all",), ("maker",)]


def test_presets_build_valid_configs():
    assert set(runs.PRESETS) == {"single_maker", "maker_taker", "multi_asset_gnn"}
    single = runs.preset_config("single_maker")
    assert single.learners == ("maker",) and single.n_assets == 1
    population = single.make_env().market_config.population
    assert population.noise > population.makers + population.momentum + population.value
    assert runs.preset_config("maker_taker").types == ["maker", "taker"]
    gnn = runs.preset_config("multi_asset_gnn", iterations=3)
    assert (gnn.types, gnn.n_assets, gnn.encoder, gnn.iterations) == (
        ["maker", "arb"],
        3,
        "sage",
        3,
    )
    for name in runs.PRESETS:
        config = runs.preset_config(name)
        # A stored config comes back as the same config, so it keeps its run ID.
        assert runs.config_from_dict(config.to_dict()) == config
        assert config.iterations == TrainConfig().iterations  # the trainer's defaults
    with pytest.raises(ValueError, match="single_maker, maker_taker, multi_asset_gnn"):
        runs.preset_config("nope")
    with pytest.raises(ValueError, match="eval seeds"):
        runs.training_run_id(single, 1)
