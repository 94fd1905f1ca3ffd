"""The sweep's Ray backend on a local Ray instance: the same runs as the local backend, bit for
bit (run IDs and metrics), and ``marlsim sweep --backend ray`` end to end."""

from __future__ import annotations

import json
import os

import pytest
import ray  # in requirements-dev.txt: README's test command installs it, so this never skips

from marl_market.scale.sweep import SweepSpec, run_sweep
from marl_market.store import RunStore
from tests.test_cli import marlsim

SPEC = SweepSpec(
    scenarios=("baseline", "short_ban"),
    grid=(("makers", (1, 2)), ("noise", (4, 6))),
    seeds=(42, 43),
    steps=1_200,
)


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for the module (starting one costs seconds), no token written."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def comparable(outcome) -> list[tuple]:
    return [
        (r["run_id"], r["scenario"], r["seed"], r["params"], r["metrics"]) for r in outcome.runs
    ]


def test_ray_tasks_give_the_local_backends_runs_bit_for_bit(local_ray, tmp_path):
    on_ray = run_sweep(SPEC, RunStore(tmp_path / "ray.duckdb"), backend="ray")
    local = run_sweep(SPEC, RunStore(tmp_path / "local.duckdb"), workers=2)
    assert len(on_ray.runs) == 16 and not on_ray.failed
    assert comparable(on_ray) == comparable(local)
    assert on_ray.sweep_id == local.sweep_id
    # Run again on Ray: everything is stored, nothing is sent to the cluster.
    again = run_sweep(SPEC, RunStore(tmp_path / "ray.duckdb"), backend="ray")
    assert again.ran == 0


def test_the_command_runs_on_a_ray_it_starts_itself(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    out = marlsim(
        "sweep", "--makers", "1,2", "--steps", "1200", "--backend", "ray", "--db", db, "--json",
        env={"RAY_AUTH_MODE": "disabled"}, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert len(payload["runs"]) == 2 and payload["failed"] == []
    local = json.loads(
        marlsim("sweep", "--makers", "1,2", "--steps", "1200", "--db", db, "--json").stdout
    )
    assert [r["run_id"] for r in local["runs"]] == [r["run_id"] for r in payload["runs"]]
    assert all(r["cached"] for r in local["runs"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "dask"], "unknown backend 'dask'"),
        (["--address", "10.0.0.1:6379"], "--address is the Ray cluster's"),
        (["--backend", "ray", "--workers", "2"], "--workers sets the local pool"),
    ],
)
def test_bad_backend_options_exit_2(tmp_path, args, message):
    db = tmp_path / "never.duckdb"
    out = marlsim("sweep", *args, "--db", str(db))
    assert out.returncode == 2 and message in out.stderr and not db.exists()
