"""``marlsim simulate`` with several correlated assets and switching regimes, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_cli_runs import marlsim, one_error_line


def test_assets_correlation_and_regimes_in_the_json(tmp_path):
    db = tmp_path / "runs.duckdb"
    args = ["simulate", "--steps", "6000", "--assets", "3", "--correlation", "0.6",
            "--regime-switch", "0.005", "--db", str(db), "--json"]  # fmt: skip
    out = marlsim(*args)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert [a["asset"] for a in payload["assets"]] == [0, 1, 2]
    for asset in payload["assets"]:
        assert set(asset["facts"]) == set(payload["facts"])
    assert payload["assets"][0]["facts"] == payload["facts"]
    measured = np.array(payload["fundamental_correlation"])
    assert measured.shape == (3, 3) and np.allclose(np.diag(measured), 1.0)
    off = measured[~np.eye(3, dtype=bool)]
    # Configured 0.6 on the diffusion; independent jumps pull it down a little; n = 5,999.
    assert np.all((off > 0.4) & (off < 0.7)), measured
    # Leaving each regime w.p. 0.005: the chain spends about half its time in stress and
    # switches about 6000 * 0.005 = 30 times.
    assert 0.15 < payload["regime_stress_share"] < 0.85
    assert 10 <= payload["regime_switches"] <= 60
    again = json.loads(marlsim(*args).stdout)  # the stored run, with the same extras
    assert again["cached"] and again["assets"] == payload["assets"]
    assert again["regime_switches"] == payload["regime_switches"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--assets", "0"], "assets"),
        (["--assets", "2", "--correlation", "1.0"], "correlation"),
        (["--assets", "2", "--correlation-matrix", "{matrix}"], "invalid fundamental_correlation"),
        (["--assets", "3", "--correlation-matrix", "{matrix}"], "invalid fundamental_correlation"),
        (["--assets", "2", "--correlation-matrix", "{missing}"], "No such file"),
        (["--regime-switch", "-0.1"], "regime_switch"),
    ],
)
def test_bad_asset_options_exit_2_and_write_nothing(tmp_path, args, message):
    matrix = tmp_path / "matrix.json"
    matrix.write_text(json.dumps([[1.0, 1.5], [1.5, 1.0]]))
    filled = [a.format(matrix=matrix, missing=tmp_path / "missing.json") for a in args]
    db = tmp_path / "data" / "runs.duckdb"
    assert message in one_error_line(marlsim("simulate", *filled, "--db", str(db)))
    assert not db.exists()
