"""``marlsim simulate --venues``: every asset listed on several venues, end to end.

A book per (asset, venue); the venues of one asset share its fundamental, so their prices
differ only by their books' order flow, and an arbitrageur paired across venues trades it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from marl_market.core.config import config_to_dict
from marl_market.store import RunStore
from tests.test_cli_runs import marlsim, one_error_line

VENUES = ["--steps", "3000", "--assets", "2", "--venues", "2", "--arbs", "1"]


@pytest.fixture(scope="module")
def venue_run(tmp_path_factory):
    """Two assets on two venues with one arbitrageur (seed 42), stored, and its JSON."""
    db = tmp_path_factory.mktemp("venues") / "runs.duckdb"
    out = marlsim("simulate", *VENUES, "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    return db, json.loads(out.stdout)


def test_two_assets_on_two_venues_are_four_books_in_the_json(venue_run):
    _, payload = venue_run
    books = payload["assets"]
    assert [b["asset"] for b in books] == [0, 1, 2, 3]
    assert [(b["fundamental"], b["venue"]) for b in books] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for book in books:
        assert set(book["facts"]) == set(payload["facts"])
    assert books[0]["facts"] == payload["facts"]
    # The venues' books trade apart: their own order flow gives them their own facts.
    assert books[0]["facts"]["mean_spread_ticks"] != books[1]["facts"]["mean_spread_ticks"]
    # Measured over the two fundamentals, not the four books (venues would repeat rows of 1s).
    measured = np.array(payload["fundamental_correlation"])
    assert measured.shape == (2, 2) and abs(measured[0, 1]) < 0.2  # independent, n = 2,999


def test_same_asset_books_share_the_fundamental_and_the_arb_trades_across_venues(venue_run):
    db, payload = venue_run
    store = RunStore(db)
    run_id = payload["run_id"]
    steps = store.load_steps(run_id)
    fair = [steps["fair_value"][steps["asset"] == book] for book in range(4)]
    mid = [steps["mid"][steps["asset"] == book] for book in range(4)]
    assert np.array_equal(fair[0], fair[1]) and np.array_equal(fair[2], fair[3])
    assert not np.array_equal(fair[0], fair[2])
    assert not np.array_equal(mid[0], mid[1])  # one fundamental, two books' prices
    stored = store.get_run(run_id)["config"]["market"]
    assert stored["n_assets"] == 4 and stored["listings"] == [0, 0, 1, 1]

    agents = store.load_agents(run_id)
    (arb,) = np.flatnonzero(agents["kind"] == "arb").tolist()
    trades = store.load_trades(run_id)
    mine = (trades["buy_agent"] == arb) | (trades["sell_agent"] == arb)
    traded = set(np.unique(trades["asset"][mine]).tolist())
    assert traded == {0, 1}  # asset 0 on venue 0 against asset 0 on venue 1
    # Its two legs go opposite ways in the same step: buys on one venue, sells on the other.
    bought = trades["buy_agent"] == arb
    sold = trades["sell_agent"] == arb
    both = set(trades["step"][bought & (trades["asset"] == 0)]) & set(
        trades["step"][sold & (trades["asset"] == 1)]
    )
    both |= set(trades["step"][sold & (trades["asset"] == 0)]) & set(
        trades["step"][bought & (trades["asset"] == 1)]
    )
    assert both


def test_venues_change_the_run_id_and_one_venue_keeps_it(tmp_path, venue_run):
    _, payload = venue_run
    db = tmp_path / "runs.duckdb"
    plain = ["simulate", "--steps", "3000", "--assets", "2", "--arbs", "1", "--db", str(db)]
    without = json.loads(marlsim(*plain, "--json").stdout)
    with_one = json.loads(marlsim(*plain, "--venues", "1", "--json").stdout)
    assert with_one["run_id"] == without["run_id"] and with_one["cached"]
    assert "venue" not in without["assets"][0]  # the JSON of a market without venues is as it was
    assert payload["run_id"] != without["run_id"]
    assert without["fundamental_correlation"] and len(without["assets"]) == 2


def test_one_asset_on_two_venues_lets_an_arbitrageur_in(tmp_path):
    db = tmp_path / "runs.duckdb"
    out = marlsim("simulate", "--steps", "1500", "--venues", "2", "--arbs", "1", "--db", str(db),
                  "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert [(b["fundamental"], b["venue"]) for b in payload["assets"]] == [(0, 0), (0, 1)]
    assert payload["fundamental_correlation"] == [[1.0]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venues", "0"], "venues"),
        (["--venues", "-1"], "venues"),
        (["--assets", "10", "--venues", "6"], "60 books"),
        (["--venues", "51"], "venues"),
        (["--arbs", "1"], "--venues 2 or more"),
    ],
)
def test_bad_venues_exit_2_and_write_nothing(tmp_path, args, message):
    db = tmp_path / "data" / "runs.duckdb"
    assert message in one_error_line(marlsim("simulate", *args, "--db", str(db)))
    assert not db.exists()


def test_the_stored_config_of_a_venue_run_reads_back(venue_run):
    from marl_market.store.records import parse_config, validate_simulate

    db, payload = venue_run
    stored = RunStore(db).get_run(payload["run_id"])["config"]["market"]
    config = parse_config(stored)
    request = validate_simulate(steps=3000, assets=2, venues=2, arbs=1)
    assert config == request.to_config() and config_to_dict(config) == stored
