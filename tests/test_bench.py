"""``marlsim bench``: the baseline book agrees with ours, the stream is what the spec says, the
command prints one JSON object with every key, bad peer options exit 2 with one line, and a
peer is run from its checkout (ABIDES's book, when the peers' snapshots sit beside the repo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marl_market.bench import book as bench_book
from marl_market.bench import peers
from marl_market.bench.baseline import PlainBook
from marl_market.bench.book import EnginesDisagree, measure_book, replay_baseline, replay_fast
from marl_market.bench.stream import CANCEL, LIMIT, LIMIT_BAND, MARKET, generate_stream, stream_mix
from marl_market.bench.suite import REQUIRED_KEYS
from marl_market.core.book import OrderBook

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
MARLSIM = [sys.executable, "-c", "from marl_market.cli import main; main()"]  # the entry point


def marlsim(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MARLSIM, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )


@pytest.fixture(scope="module")
def stream():
    return generate_stream(20_000, 42)


# ----------------------------------------------------------------------------- the stream


def test_stream_is_a_function_of_its_seed(stream):
    assert generate_stream(20_000, 42) == stream
    assert generate_stream(20_000, 43) != stream


def test_stream_has_the_specified_mix_sizes_and_prices(stream):
    mix = stream_mix(stream)
    assert 0.55 <= mix["limit"] <= 0.60
    assert 0.25 <= mix["cancel"] <= 0.30
    assert mix["market"] == pytest.approx(0.15, abs=0.01)
    submits = [op for op in stream if op[0] != CANCEL]
    assert {op[2] for op in submits} == set(range(1, 11))  # sizes 1-10, all of them drawn
    assert all(op[3] is None for op in submits if op[0] == MARKET)
    # Limit prices sit within LIMIT_BAND ticks of the book's mid when they arrive.
    book = OrderBook()
    mid = 10_000
    for kind, is_buy, qty, price, agent in stream:
        if kind == CANCEL:
            book.cancel(qty)
            continue
        if kind == LIMIT:
            bid, ask = book.best_bid(), book.best_ask()
            if bid is not None and ask is not None:
                mid = (bid + ask) // 2
            assert abs(price - mid) <= LIMIT_BAND
        book.submit_fast(is_buy, qty, price, agent)


def test_stream_cancels_live_orders_and_keeps_a_deep_book(stream):
    book = PlainBook()
    live_cancels, cancels, sizes = 0, 0, []
    for kind, is_buy, qty, price, agent in stream:
        if kind == CANCEL:
            cancels += 1
            live_cancels += book.cancel(qty) > 0
        else:
            book.submit(is_buy, qty, price, agent)
        sizes.append(len(book))
    # "a random earlier order" that is still there; only while the book is still empty at the
    # very start does a cancel find nothing to cancel
    assert cancels - live_cancels <= 0.001 * cancels
    assert sorted(sizes)[len(sizes) // 2] > 500  # the median book is not nearly empty


# ----------------------------------------------------------------------------- baseline vs ours


def test_baseline_and_our_engines_agree_on_every_fill(stream):
    _, ours, our_final = replay_fast(stream)
    _, plain, plain_final = replay_baseline(stream)
    assert ours == plain
    assert our_final == plain_final
    assert sum(len(fills) for fills in plain) > 1_000  # the stream trades a lot


def test_measure_book_reports_the_three_engines(stream):
    figures = measure_book(stream, repeats=1).as_dict()
    assert figures["ops"] == len(stream) and figures["identical_fills"]
    for key in ("submit_orders_per_s", "fast_orders_per_s", "baseline_orders_per_s"):
        assert figures[key] > 0
    assert figures["fast_vs_baseline"] == pytest.approx(
        figures["fast_orders_per_s"] / figures["baseline_orders_per_s"]
    )


def test_measure_book_refuses_engines_that_disagree(stream, monkeypatch):
    real = bench_book.replay_fast

    def off_by_one(ops):
        seconds, fills, final = real(ops)
        first = next(i for i, f in enumerate(fills) if f)
        fills[first] = [(fills[first][0][0] + 1, *fills[first][0][1:])]
        return seconds, fills, final

    monkeypatch.setattr(bench_book, "replay_fast", off_by_one)
    with pytest.raises(EnginesDisagree, match="fast and the baseline differ"):
        measure_book(stream, repeats=1)


operations = st.lists(
    st.tuples(
        st.sampled_from([LIMIT, LIMIT, CANCEL, MARKET]),
        st.booleans(),
        st.integers(1, 10),
        st.integers(95, 105),
        st.integers(0, 5),
        st.integers(0, 10**6),  # which earlier order a cancel picks
    ),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_baseline_matches_our_book_on_any_sequence(ops):
    ours, plain = OrderBook(), PlainBook()
    submitted = 0
    for kind, is_buy, qty, price, agent, pick in ops:
        if kind == CANCEL:
            target = pick % submitted + 1 if submitted else 0  # any earlier id, live or not
            assert ours.cancel(target) == plain.cancel(target)
            continue
        limit = price if kind == LIMIT else None
        our_id, trades = ours.submit_fast(is_buy, qty, limit, agent)
        plain_id, fills = plain.submit(is_buy, qty, limit, agent)
        submitted += 1
        assert our_id == plain_id
        assert [bench_book._fill(t) for t in trades] == fills
        assert ours.best_bid() == plain.best(True) and ours.best_ask() == plain.best(False)
    assert ours.depth("buy", 10**9) == plain.depth(True)
    assert ours.depth("sell", 10**9) == plain.depth(False)


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def quick_json():
    # --scale (hidden, for tests) shrinks every workload so the whole command takes seconds.
    out = marlsim("bench", "--quick", "--json", "--scale", "0.02")
    assert out.returncode == 0, out.stderr
    return out


def test_bench_json_prints_one_object_with_every_key(quick_json):
    payload = json.loads(quick_json.stdout)  # exactly one JSON object on stdout
    for key in REQUIRED_KEYS:
        assert key in payload
    for key in ("book_orders_per_s", "baseline_orders_per_s", "sim_steps_per_s"):
        assert payload[key] > 0
    # The environment with random actions, beside its market alone on the same actions.
    env = payload["env"]
    assert payload["env_steps_per_s"] == env["steps_per_s"] > 0
    assert env["learners"] == ["maker_0", "taker_0", "arb_0"] and env["n_assets"] == 3
    assert env["market_steps_per_s"] > 0 and env["steps"] == 200
    assert payload["crowd_events_per_s"] > 0 and payload["compare_wall_s"] > 0
    # Training: throughput measured, the 15-minute race to a paired-CI win skipped and said so.
    training = payload["train"]
    assert payload["train_agent_steps_per_s"] == training["throughput"]["agent_steps_per_s"] > 0
    assert training["throughput"]["learners"] == ["maker"]
    assert training["throughput_everyone"]["agent_steps_per_s"] > 0
    # Beside it, the same episodes' markets alone on the same processes: training's ceiling.
    ceiling = training["market_ceiling"]
    assert ceiling["agent_steps_per_s"] > 0 and ceiling["learners"] == ["maker"]
    assert (
        ceiling["agent_steps_per_iteration"] == training["throughput"]["agent_steps_per_iteration"]
    )
    assert payload["train_minutes_to_ci_win"] is None
    assert payload["calibrate_wall_s"] == payload["calibrate"]["seconds"] > 0
    assert any("calibrate_wall_s ran a small calibration" in note for note in payload["notes"])
    assert any("train_minutes_to_ci_win skipped" in note for note in payload["notes"])
    assert payload["peak_rss_mb_1m_steps"] is None  # skipped under --quick, and said so
    assert any("skipped under --quick" in note for note in payload["notes"])
    assert any("not 20" in note for note in payload["notes"])  # fewer compare seeds, said so
    assert payload["book"]["identical_fills"] is True
    assert payload["peers"] == {}  # no peer given: no peer figure, stored or otherwise
    assert payload["machine"]["cpus"] >= 1
    assert "book:" in quick_json.stderr  # progress goes to stderr


def test_bench_without_json_prints_the_table():
    out = marlsim("bench", "--quick", "--scale", "0.01")
    assert out.returncode == 0, out.stderr
    assert "submit_fast" in out.stdout and "plain book" in out.stdout
    assert "environment, 3 assets, 3 learners" in out.stdout
    assert "ours / reference" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--abides", "/nonexistent"], "--abides /nonexistent: no such directory"),
        (["--pymarketsim", "/"], "not a PyMarketSim checkout"),
        (["--abides-python", sys.executable], "--abides-python needs --abides"),
        (["--abides", str(ROOT), "--abides-python", "/nonexistent/python"], "not an executable"),
        (["--scale", "0"], "scale"),
    ],
)
def test_bench_bad_options_exit_2_with_one_line(args, message):
    out = marlsim("bench", "--quick", "--json", *args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


# ----------------------------------------------------------------------------- a peer, for real


@pytest.mark.skipif(not (PEERS / "abides").is_dir(), reason="no peer snapshots beside the repo")
def test_abides_book_runs_from_its_checkout_and_trades_like_ours():
    ops = generate_stream(3_000, 7)
    abides = PEERS / "abides"
    try:
        peers.check_abides(abides, sys.executable)
    except peers.PeerOptionError as error:
        pytest.skip(f"ABIDES's book does not import in this environment: {error}")
    theirs = peers.abides_book(abides, sys.executable, ops)
    ours = measure_book(ops, repeats=1)
    assert theirs["ops"] == len(ops) and theirs["orders_per_s"] > 0
    assert (theirs["fills"], theirs["filled_qty"]) == (ours.fills, ours.filled_qty)


def test_minutes_to_ci_win_reports_the_first_check_whose_interval_clears_zero():
    from marl_market.bench.train import minutes_to_ci_win
    from marl_market.rl.ippo import TrainConfig

    config = TrainConfig(iterations=3, episode_steps=50, episodes_per_iteration=1, hidden=16)
    race = minutes_to_ci_win(config, eval_seeds=3, every=1, budget_minutes=10.0)
    checks = race["checks"]
    assert [c["iteration"] for c in checks] == [1, 2, 3][: len(checks)]
    for name, key in (
        ("vs_fixed", "minutes_to_ci_win"),
        ("vs_untrained", "minutes_to_beat_untrained"),
    ):
        won = [c["minutes"] for c in checks if c[name]["ci_low"] > 0]
        assert race[key] == (won[0] if won else None)
