"""``marlsim simulate`` with fees, execution takers and arbitrageurs, end to end."""

from __future__ import annotations

import json
import math

import pytest

from marl_market.core.market import Market
from marl_market.lab.experiments import execution_of
from marl_market.store.records import validate_simulate
from tests.test_cli_runs import marlsim, one_error_line

GAME = ["--steps", "3000", "--assets", "2", "--correlation", "0.8", "--takers", "2",
        "--taker-target", "300", "--taker-horizon", "1000", "--arbs", "1",
        "--taker-fee", "0.0002", "--maker-rebate", "0.0001"]  # fmt: skip


def simulate_json(*args: str) -> dict:
    out = marlsim("simulate", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_takers_fees_and_arbs_in_the_json_and_the_stored_run(tmp_path):
    db = str(tmp_path / "runs.duckdb")
    payload = simulate_json(*GAME, "--db", db)
    execution = payload["execution"]
    assert [(row["asset"], row["side"]) for row in execution] == [(0, "buy"), (1, "sell")]
    for row in execution:
        assert {"agent", "asset", "style", "target", "filled", "shortfall_bp"} <= set(row)
        # TWAP sweeps what is left on the horizon's last step: the target is met on time.
        assert row["style"] == "twap" and row["target"] == 300 and row["filled"] == 300
        assert math.isfinite(row["shortfall_bp"])
    fees = payload["fees"]
    assert fees["taker_fees"] > 0 and fees["maker_rebates"] > 0 and fees["taxes"] == 0
    # Every trade has one aggressor and one resting side: a 2 bp fee against a 1 bp rebate.
    assert fees["maker_rebates"] == pytest.approx(fees["taker_fees"] / 2, rel=1e-6)

    # Stored with the run: `runs show` gives them back, `runs list` names the new agents.
    shown = marlsim("runs", "show", payload["run_id"], "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    market = json.loads(shown.stdout)["summary"]["market"]
    assert market["execution"] == execution and market["fees"] == fees
    metrics = json.loads(shown.stdout)["metrics"]
    assert metrics["taker_fees"] == pytest.approx(fees["taker_fees"])
    listed = json.loads(marlsim("runs", "list", "--db", db, "--json").stdout)["runs"]
    assert [r["population"] for r in listed] == ["2/4/3/4 +2 takers +1 arb"]
    text = marlsim("runs", "list", "--db", db, columns=200).stdout
    assert "2/4/3/4 +2 takers +1 arb" in text

    again = simulate_json(*GAME, "--db", db)  # read back from the store, not recomputed
    assert again["cached"] and again["execution"] == execution and again["fees"] == fees


def test_pov_takers_without_fees(tmp_path):
    args = ["--steps", "2000", "--takers", "1", "--taker-style", "pov", "--taker-target", "200"]
    payload = simulate_json(*args, "--db", str(tmp_path / "runs.duckdb"))
    (row,) = payload["execution"]
    assert row["style"] == "pov" and row["filled"] == row["target"] == 200
    assert payload["fees"] == {"taker_fees": 0.0, "maker_rebates": 0.0, "taxes": 0.0}


def test_same_market_same_run_id(tmp_path):
    db = str(tmp_path / "runs.duckdb")
    plain = simulate_json("--steps", "1500", "--db", db)
    assert plain["execution"] == []
    # Taker settings without takers change nothing, so they leave the run (and its ID) alone.
    idle = simulate_json("--steps", "1500", "--taker-target", "50", "--taker-style", "pov",
                         "--db", db)  # fmt: skip
    assert idle["run_id"] == plain["run_id"] and idle["cached"]
    # A correlation of 0 is independent fundamentals: the run of no --correlation (and the
    # app's, which sends none for its slider at 0).
    two = simulate_json("--steps", "1500", "--assets", "2", "--db", db)
    zero = simulate_json("--steps", "1500", "--assets", "2", "--correlation", "0", "--db", db)
    assert zero["run_id"] == two["run_id"] != plain["run_id"]


def test_execution_read_from_the_record_is_the_markets_own_report():
    config = validate_simulate(steps=1_200, takers=3, taker_target=2_000, taker_style="pov",
                               taker_fee=3e-4).to_config()  # fmt: skip
    market = Market(config, 42)
    market.advance(700)  # part-way: the takers' horizon is 1,000 steps
    report = market.execution_report()
    rebuilt = execution_of(market.result())
    for ours, theirs in zip(rebuilt, report, strict=True):
        assert ours["filled"] == theirs["filled"] and ours["style"] == theirs["style"]
        assert ours["shortfall_bp"] == pytest.approx(theirs["shortfall_bp"], abs=1e-5)
    assert any(0 < row["filled"] < row["target"] for row in rebuilt)  # really part-way


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--taker-fee", "-0.0001"], "taker fee must be a fraction of notional"),
        (["--maker-rebate", "-0.0001"], "maker rebate must be a fraction of notional"),
        (["--taker-fee", "1"], "taker fee must be a fraction of notional"),
        (["--maker-rebate", "1.5"], "maker rebate must be a fraction of notional"),
        (["--arbs", "1"], "needs --assets 2 or more"),
        (["--takers", "1", "--taker-target", "0"], "taker_target"),
        (["--taker-target", "-5"], "taker_target"),
        (["--takers", "1", "--taker-style", "vwap"], "taker style must be one of twap, pov"),
        (["--takers", "-1"], "takers"),
        (["--arbs", "-1", "--assets", "2"], "arbs"),
        (["--takers", "1", "--taker-horizon", "0"], "taker_horizon"),
    ],
)
def test_bad_game_options_exit_2_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "data" / "runs.duckdb"
    assert message in one_error_line(marlsim("simulate", *args, "--db", str(db)))
    assert not db.exists() and not db.parent.exists()
