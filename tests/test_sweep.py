"""Sweeps: the same runs in a process pool or in this process, stored runs skipped, a failing
task reported while the others finish, an interrupted sweep resumed without repeating work,
and ``marlsim sweep`` end to end."""

from __future__ import annotations

import json

import pytest

from marl_market.lab.experiments import simulation_run_id
from marl_market.scale import sweep as sweeps
from marl_market.scale.sweep import SweepSpec, run_sweep
from marl_market.store import RunStore
from marl_market.store.records import SimulateRequest
from tests.test_cli import marlsim

SPEC = SweepSpec(
    scenarios=("baseline", "flash_crash"),
    grid=(("makers", (1, 2)), ("tobin_tax", (0.0, 0.001))),
    seeds=(42, 43),
    steps=1_200,
)


_REAL_RUN_TASK = sweeps.run_task


def _flaky(spec, task):
    """``run_task``, failing on one task (module level: the pool pickles it by name)."""
    if task.params == {"makers": 2} and task.seed == 43:
        raise RuntimeError("the market caught fire")
    return _REAL_RUN_TASK(spec, task)


def comparable(outcome) -> list[tuple]:
    return [
        (r["run_id"], r["scenario"], r["seed"], r["params"], r["metrics"]) for r in outcome.runs
    ]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("sweep") / "pool.duckdb")
    return store, run_sweep(SPEC, store, workers=2)


def test_a_pool_and_this_process_give_the_same_runs_bit_for_bit(pooled, tmp_path):
    _, in_pool = pooled
    alone = run_sweep(SPEC, RunStore(tmp_path / "alone.duckdb"), workers=1)
    assert len(in_pool.runs) == 2 * 2 * 2 * 2 and not in_pool.failed
    assert comparable(in_pool) == comparable(alone)
    assert in_pool.sweep_id == alone.sweep_id


def test_every_run_is_stored_under_the_id_its_command_gives_it(pooled):
    store, outcome = pooled
    first = outcome.runs[0]  # baseline, makers=1, no tax, seed 42
    request = SimulateRequest(steps=1_200, seed=42, makers=1)
    assert first["run_id"] == simulation_run_id(request.to_config(), 42, 5)
    kinds = {store.get_run(run["run_id"])["kind"] for run in outcome.runs}
    assert kinds == {"simulate", "scenario"}
    taxed = [r for r in outcome.runs if r["params"]["tobin_tax"] == 0.001][0]
    assert store.get_run(taxed["run_id"])["config"]["market"]["rules"]["tobin_tax"] == 0.001
    sweep_row = store.get_run(outcome.sweep_id)
    assert sweep_row["kind"] == "sweep"
    assert [r["run_id"] for r in sweep_row["summary"]["runs"]] == [
        r["run_id"] for r in outcome.runs
    ]


def test_running_it_again_repeats_nothing(pooled):
    store, outcome = pooled
    again = run_sweep(SPEC, store, workers=2)
    assert again.ran == 0 and all(run["cached"] for run in again.runs)
    assert comparable(again) == comparable(outcome)


def test_a_failing_task_is_reported_with_its_parameters_and_the_rest_complete(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(sweeps, "run_task", _flaky)  # forked workers inherit the patch
    spec = SweepSpec(grid=(("makers", (1, 2)),), seeds=(42, 43), steps=1_200)
    store = RunStore(tmp_path / "flaky.duckdb")
    outcome = run_sweep(spec, store, workers=2)
    assert outcome.failed == [
        {
            "params": {"scenario": "baseline", "makers": 2, "seed": 43},
            "error": "RuntimeError: the market caught fire",
        }
    ]
    assert len(outcome.runs) == 3
    assert all(store.get_run(run["run_id"]) is not None for run in outcome.runs)
    assert store.get_run(outcome.sweep_id) is None  # stored once every task has succeeded
    monkeypatch.setattr(sweeps, "run_task", _REAL_RUN_TASK)
    fixed = run_sweep(spec, store, workers=1)
    assert fixed.ran == 1 and not fixed.failed and store.get_run(fixed.sweep_id) is not None


def test_an_interrupted_sweep_resumes_without_repeating_work(tmp_path):
    spec = SweepSpec(grid=(("noise", (2, 4, 6)),), seeds=(42,), steps=1_200)
    store = RunStore(tmp_path / "stop.duckdb")

    def ctrl_c_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, store, workers=1, progress=ctrl_c_after_two)
    kept = [r for r in store.list_runs(kind="simulate")]
    assert len(kept) == 2
    resumed = run_sweep(spec, store, workers=1)
    assert resumed.ran == 1 and len(resumed.runs) == 3
    assert {r["run_id"] for r in kept} <= {r["run_id"] for r in resumed.runs}


def test_bad_specs_are_refused_with_one_message():
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        SweepSpec(scenarios=("nope",))
    with pytest.raises(ValueError, match="unknown sweep parameter 'spread'"):
        SweepSpec(grid=(("spread", (1,)),))
    with pytest.raises(ValueError, match="assets=0: assets: must be greater than or equal to 1"):
        SweepSpec(grid=(("assets", (1, 0)),))


def test_the_command_prints_the_json_contract_and_skips_stored_runs(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    args = ("sweep", "--scenario", "baseline", "--scenario", "short_ban", "--makers", "1,3")
    args += ("--seeds", "2", "--steps", "1200", "--workers", "2", "--db", db, "--json")
    first = marlsim(*args)
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    assert set(payload) >= {"sweep_id", "runs", "failed"} and payload["failed"] == []
    assert len(payload["runs"]) == 2 * 2 * 2
    for run in payload["runs"]:
        assert {"run_id", "scenario", "seed", "metrics"} <= set(run)
    assert [r["seed"] for r in payload["runs"][:2]] == [42, 43]
    again = json.loads(marlsim(*args).stdout)
    assert all(run["cached"] for run in again["runs"])
    assert [r["metrics"] for r in again["runs"]] == [r["metrics"] for r in payload["runs"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--makers", "1,x"], "--makers: 'x' is not an integer"),
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--tobin-tax", "2"], "tobin_tax must be a fraction in [0, 1)"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "never.duckdb"
    out = marlsim("sweep", *args, "--db", str(db))
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not db.exists()
