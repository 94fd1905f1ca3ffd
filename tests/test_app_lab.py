"""What the app's pages call: book snapshots, stored runs and their exports (the live run:
test_live.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from marl_market.core.config import MarketConfig
from marl_market.core.market import simulate
from marl_market.lab import workbench
from marl_market.lab.experiments import run_simulation
from marl_market.lab.snapshots import SnapshotRecorder, simulate_with_snapshots
from marl_market.store import RunStore, StoreError
from marl_market.store.records import validate_scenario, validate_simulate

CONFIG = MarketConfig(steps=1_500)


# ------------------------------------------------------------------------------ snapshots
def test_snapshots_do_not_change_the_run():
    result, book = simulate_with_snapshots(CONFIG, 3, every=50)
    plain = simulate(CONFIG, 3)
    for name, column in plain.steps.items():
        np.testing.assert_array_equal(result.steps[name], column)
    assert book.step.tolist() == [*range(0, 1_500, 50), 1_499]


def test_snapshots_match_the_per_step_record():
    result, book = simulate_with_snapshots(CONFIG, 4, every=25, levels=10)
    for i, step in enumerate(book.step):
        best_bid, best_ask = result.steps["best_bid"][step], result.steps["best_ask"][step]
        assert (
            book.bid_price[i, 0] == best_bid
            or np.isnan(best_bid)
            and np.isnan(book.bid_price[i, 0])
        )
        assert (
            book.ask_price[i, 0] == best_ask
            or np.isnan(best_ask)
            and np.isnan(book.ask_price[i, 0])
        )
        assert book.mid[i] == result.steps["mid"][step]
        bids = book.bid_price[i][~np.isnan(book.bid_price[i])]
        assert np.all(np.diff(bids) < 0)  # best first
    assert (book.bid_qty >= 0).all() and (book.ask_qty >= 0).all()


def test_heatmap_grid_is_bounded_and_keeps_every_share():
    _, book = simulate_with_snapshots(CONFIG, 5, every=1)
    steps, prices, bids, asks = book.grid(max_rows=50, max_cols=100)
    assert bids.shape == asks.shape == (len(prices), len(steps))
    assert len(steps) <= 100 and len(prices) <= 50
    used = np.arange(0, len(book), int(np.ceil(len(book) / 100)))
    assert np.nansum(bids) == book.bid_qty[used].sum()
    assert np.nansum(asks) == book.ask_qty[used].sum()
    # The book is never crossed: in every column the lowest ask bin is at or above the top bid.
    for col in range(len(steps)):
        bid_rows, ask_rows = np.flatnonzero(bids[:, col] > 0), np.flatnonzero(asks[:, col] > 0)
        if len(bid_rows) and len(ask_rows):
            assert bid_rows.max() <= ask_rows.min()


def test_ladder_snaps_to_the_last_snapshot_at_or_before_a_step():
    _, book = simulate_with_snapshots(CONFIG, 6, every=100)
    assert book.ladder(250)["step"] == 200
    assert book.ladder(0)["step"] == 0
    assert book.ladder(10**6)["step"] == 1_499


def test_recorder_rejects_bad_settings():
    with pytest.raises(ValueError, match="interval"):
        SnapshotRecorder(0)
    with pytest.raises(ValueError, match="level"):
        SnapshotRecorder(10, levels=0)


# ------------------------------------------------------------------------------ stored runs
@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "workbench.duckdb")


def test_run_market_stores_what_marlsim_simulate_stores(store):
    request = validate_simulate(steps=1_000, seed=9)
    run = workbench.run_market(request, store)
    assert run.newly_stored
    again = run_simulation(request.to_config(), 9, request.return_interval, store)
    assert again.cached and again.run_id == run.run_id
    assert again.facts.as_dict() == run.facts.as_dict()
    assert workbench.run_market(request, store).newly_stored is False


def test_open_run_and_its_facts(store):
    run_id = workbench.run_market(validate_simulate(steps=1_000, seed=2), store).run_id
    run = workbench.open_run(store, run_id)
    assert run.kind == "simulate" and run.has_steps and len(run.steps["step"]) == 1_000
    facts = workbench.run_facts(run)
    assert facts is not None and facts.n_returns == 199
    with pytest.raises(StoreError, match="no run"):
        workbench.open_run(store, "0000000000000000")


def test_replayed_book_matches_the_stored_run(store):
    request = validate_simulate(steps=1_000, seed=2)
    made = workbench.run_market(request, store)
    book = workbench.replay_book(workbench.open_run(store, made.run_id))
    np.testing.assert_array_equal(book.bid_price, made.snapshots.bid_price)
    np.testing.assert_array_equal(book.ask_qty, made.snapshots.ask_qty)


def test_replay_refuses_a_run_whose_prices_it_cannot_reproduce(store):
    run = workbench.open_run(
        store, workbench.run_market(validate_simulate(steps=500, seed=2), store).run_id
    )
    run.steps["mid"] = run.steps["mid"] + 1.0  # as if the model had changed since
    with pytest.raises(ValueError, match="does not reproduce"):
        workbench.replay_book(run)


def test_export_zip_holds_every_table_as_parquet(store):
    run_id = workbench.run_market(validate_simulate(steps=500, seed=2), store).run_id
    with zipfile.ZipFile(io.BytesIO(workbench.export_zip(store, run_id))) as archive:
        names = sorted(archive.namelist())
        steps = pq.read_table(io.BytesIO(archive.read(f"{run_id}_steps.parquet")))
    assert names == sorted(
        f"{run_id}_{t}.parquet"
        for t in ("runs", "metrics", "steps", "trades", "agents", "agent_steps", "positions")
    )
    assert steps.num_rows == 500


def test_spread_falls_with_more_makers(store):
    curve = workbench.spread_vs_makers(validate_simulate(steps=2_000, seed=42), store=store)
    assert curve.makers.tolist() == [1, 2, 3, 4]
    assert curve.mean[0] > curve.mean[-1]
    again = workbench.spread_vs_makers(validate_simulate(steps=2_000, seed=42), store=store)
    np.testing.assert_array_equal(again.mean, curve.mean)  # read back from the store


def test_compare_scenarios_stores_a_comparison(store):
    request = validate_scenario(kind="compare", seeds=2, steps=600)
    outcome = workbench.compare_scenarios(request, ["flash_crash", "short_ban"], store, workers=1)
    assert outcome.run_id is not None and store.get_run(outcome.run_id)["kind"] == "compare"
    assert outcome.summaries["flash_crash"]["spread_blowup"]["n"] == 2
    with pytest.raises(ValueError, match="at least one"):
        workbench.compare_scenarios(request, [], store)


def test_share_spells_out_the_query_and_the_command():
    shared = workbench.share("abc")
    assert shared["sql"].startswith("SELECT * FROM steps WHERE run_id = 'abc'")
    assert shared["cli"] == "marlsim runs show abc"
    assert shared["query_string"] == "?run_id=abc"
