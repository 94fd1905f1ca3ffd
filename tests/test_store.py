"""The DuckDB run store: round trips, idempotency, refusals, and real multi-process behaviour."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from marl_market.core.config import config_to_dict
from marl_market.core.results import RunResult
from marl_market.store import (
    RESULT_TABLES,
    SLOW_SAVE_ENV,
    QueryRefused,
    RunStore,
    StoreBusy,
    StoreError,
    check_writable,
    code_version,
    default_db_path,
    make_run_id,
)
from marl_market.store import writer as writer_module
from marl_market.store.schema import migrate
from tests.store_helpers import make_run_result

REPO = Path(__file__).resolve().parents[1]


def save(store: RunStore, result: RunResult, kind: str = "sim", **kwargs) -> str:
    config = config_to_dict(result.config)
    run_id = make_run_id(kind, config, result.seed, code_version())
    metrics = kwargs.pop("metrics", {"sharpe": 0.5, "kurtosis": 7.25})
    return store.save_run(run_id, kind, result.seed, config, result, metrics, **kwargs)


def count_rows(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            for table in ("runs", "metrics", *RESULT_TABLES)
        }


# ---- round trip ---------------------------------------------------------------------------------


def test_round_trip_every_table(tmp_path):
    store = RunStore(tmp_path / "db.duckdb")
    result = make_run_result(seed=3, n_steps=500, n_trades=2_000, n_assets=2)
    metrics = {"sharpe": 0.5, "hurst": float("nan"), "n": 3.0}
    summary = {"note": "hello", "values": [1, 2.5], "bad": float("nan")}
    run_id = save(store, result, metrics=metrics, summary=summary)

    loaded = {
        "steps": store.load_steps(run_id),
        "trades": store.load_trades(run_id),
        "agents": store.load_agents(run_id),
        "agent_steps": store.load_agent_steps(run_id),
        "positions": store.load_positions(run_id),
    }
    for table, columns in RESULT_TABLES.items():
        original = getattr(result, table)
        assert list(loaded[table]) == list(columns), table
        for name, dtype in columns.items():
            got = loaded[table][name]
            assert got.dtype == np.dtype(dtype), (table, name, got.dtype)
            # assert_array_equal treats NaN == NaN, so empty-book NaNs must survive too.
            np.testing.assert_array_equal(got, original[name], err_msg=f"{table}.{name}")
    assert np.isnan(loaded["steps"]["best_bid"]).any()

    got_metrics = store.load_metrics(run_id)
    assert got_metrics.keys() == metrics.keys()
    assert got_metrics["sharpe"] == 0.5 and np.isnan(got_metrics["hurst"])

    run = store.get_run(run_id)
    assert run is not None
    assert run["config"] == config_to_dict(result.config)
    assert run["summary"] == {"note": "hello", "values": [1, 2.5], "bad": None}
    assert (run["kind"], run["seed"], run["status"]) == ("sim", 3, "done")
    assert (run["n_steps"], run["n_assets"]) == (500, 2)
    assert run["code_version"] == code_version() and run["parent_run_id"] is None
    assert store.has_run(run_id)
    assert [r["run_id"] for r in store.list_runs()] == [run_id]


def test_list_runs_newest_first_and_by_kind(tmp_path):
    store = RunStore(tmp_path / "db.duckdb")
    first = save(store, make_run_result(1, 20, 10))
    second = save(store, make_run_result(2, 20, 10), kind="train")
    comparison = store.save_run(
        "cmp-1", "compare", None, {"seeds": [1, 2]}, None, {"mean": 1.0}, summary={"n": 2}
    )
    assert [r["run_id"] for r in store.list_runs()] == [comparison, second, first]
    assert [r["run_id"] for r in store.list_runs(limit=1)] == [comparison]
    assert [r["run_id"] for r in store.list_runs(kind="train")] == [second]
    # A summary-only run has no rows, but its tables load empty with the right dtypes.
    steps = store.load_steps(comparison)
    assert all(v.size == 0 for v in steps.values())
    assert steps["mid"].dtype == np.float64 and steps["step"].dtype == np.int64
    assert store.get_run(comparison)["n_steps"] is None


def test_unfinished_run_is_invisible_and_replaced_by_a_real_save(tmp_path):
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    save(store, make_run_result(1, 20, 10))
    result = make_run_result(2, 30, 40)
    config = config_to_dict(result.config)
    run_id = make_run_id("sim", config, 2, code_version())
    with duckdb.connect(str(db)) as con:  # what a crashed tool might leave behind
        con.execute(
            "INSERT INTO runs (run_id, kind, status) VALUES (?, 'sim', 'running')", [run_id]
        )
        con.execute("INSERT INTO trades (run_id, step) VALUES (?, 1), (?, 2)", [run_id, run_id])
    assert store.get_run(run_id) is None
    assert not store.has_run(run_id)
    assert run_id not in [r["run_id"] for r in store.list_runs()]
    with pytest.raises(StoreError, match="no finished run"):
        store.load_trades(run_id)

    store.save_run(run_id, "sim", 2, config, result, {"x": 1.0})
    assert store.get_run(run_id)["status"] == "done"
    assert store.load_trades(run_id)["step"].size == 40  # the two stale rows are gone


def test_ctrl_c_during_a_save_lets_the_save_finish_then_interrupts(tmp_path, monkeypatch):
    # DuckDB abandons a query a SIGINT lands in ("Query interrupted"): a Ctrl-C mid-save
    # must instead wait for the commit, then stop the program as Ctrl-C does.
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    result = make_run_result(1, 20, 10)
    config = config_to_dict(result.config)
    run_id = make_run_id("sim", config, 1, code_version())
    real_migrate = writer_module.migrate

    def migrate_then_ctrl_c(con):
        real_migrate(con)
        os.kill(os.getpid(), signal.SIGINT)  # arrives inside the transaction

    monkeypatch.setattr(writer_module, "migrate", migrate_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        store.save_run(run_id, "sim", 1, config, result, {"x": 1.0})
    assert store.get_run(run_id)["status"] == "done"  # saved whole before the interrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_save_from_another_thread_runs_as_it_is(tmp_path):
    # Only the main thread can hold back a signal; elsewhere (a Streamlit page) writes as usual.
    store = RunStore(tmp_path / "db.duckdb")
    saved = []
    thread = threading.Thread(target=lambda: saved.append(save(store, make_run_result(1, 20, 10))))
    thread.start()
    thread.join(timeout=60)
    assert len(saved) == 1 and store.get_run(saved[0])["status"] == "done"


def test_missing_database_reads_empty_without_creating_it(tmp_path):
    db = tmp_path / "nested" / "db.duckdb"
    store = RunStore(db)
    assert store.list_runs() == []
    assert store.get_run("abc") is None
    assert not store.has_run("abc")
    assert store.query("SELECT count(*) AS n FROM runs") == (["n"], [(0,)])
    with pytest.raises(StoreError, match="no finished run"):
        store.load_steps("abc")
    assert not db.parent.exists()


def test_default_db_path(monkeypatch):
    monkeypatch.delenv("MARL_MARKET_DB", raising=False)
    assert default_db_path() == Path("data/marl_market.duckdb")
    monkeypatch.setenv("MARL_MARKET_DB", "/somewhere/else.duckdb")
    assert default_db_path() == Path("/somewhere/else.duckdb")
    assert RunStore().path == Path("/somewhere/else.duckdb")


# ---- run ids and idempotency ------------------------------------------------------------------


def test_run_ids_are_deterministic():
    config = {"b": 1, "a": {"y": [1, 2], "x": 0.5}}
    run_id = make_run_id("sim", config, 7, "0.1.0")
    assert len(run_id) == 16 and int(run_id, 16) >= 0
    reordered = {"a": {"x": 0.5, "y": (1, 2)}, "b": np.int64(1)}
    assert make_run_id("sim", reordered, 7, "0.1.0") == run_id
    assert make_run_id("sim", config, 8, "0.1.0") != run_id
    assert make_run_id("sim", config, None, "0.1.0") != run_id
    assert make_run_id("train", config, 7, "0.1.0") != run_id
    assert make_run_id("sim", config, 7, "0.2.0") != run_id
    assert make_run_id("sim", {**config, "b": 2}, 7, "0.1.0") != run_id


def test_saving_again_returns_the_stored_run(tmp_path):
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    result = make_run_result(5, 200, 300)
    run_id = save(store, result)
    before = count_rows(db)
    created = store.get_run(run_id)["created_at"]
    assert save(store, result, metrics={"other": 1.0}) == run_id
    assert count_rows(db) == before
    assert store.get_run(run_id)["created_at"] == created
    assert store.load_metrics(run_id) == {"sharpe": 0.5, "kurtosis": 7.25}


def test_bad_result_is_rejected_before_writing(tmp_path):
    db = tmp_path / "db.duckdb"
    result = make_run_result(1, 10, 10)
    result.trades = {k: v for k, v in result.trades.items() if k != "qty"}
    with pytest.raises(StoreError, match="missing columns \\['qty'\\]"):
        save(RunStore(db), result)
    result = make_run_result(1, 10, 10)
    result.trades["price"] = result.trades["price"] + 0.5
    with pytest.raises(StoreError, match="trades.price has dtype float64"):
        save(RunStore(db), result)
    assert not db.exists()


def test_save_speed_10k_steps_100k_trades(tmp_path):
    store = RunStore(tmp_path / "db.duckdb")
    save(store, make_run_result(0, 100, 100))  # schema exists, like any non-first save
    result = make_run_result(1, 10_000, 100_000)
    start = time.perf_counter()
    run_id = save(store, result)
    elapsed = time.perf_counter() - start
    assert store.load_trades(run_id)["price"].size == 100_000
    assert elapsed < 3.0, f"saving took {elapsed:.2f} s"  # ~0.1-0.3 s here; loose for slow CI


# ---- query ------------------------------------------------------------------------------------


def test_query_selects(tmp_path):
    store = RunStore(tmp_path / "db.duckdb")
    run_id = save(store, make_run_result(1, 50, 123))
    columns, rows = store.query(
        "SELECT r.kind, count(*) AS n FROM trades t JOIN runs r USING (run_id) GROUP BY r.kind"
    )
    assert columns == ["kind", "n"] and rows == [("sim", 123)]
    assert store.query("WITH x AS (SELECT 1 AS a) SELECT a FROM x") == (["a"], [(1,)])
    _, rows = store.query("DESCRIBE trades")
    assert [r[0] for r in rows] == ["run_id", *RESULT_TABLES["trades"]]
    with pytest.raises(StoreError, match="does not exist"):
        store.query("SELECT * FROM no_such_table")
    assert store.has_run(run_id)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE evil (a INTEGER)",
        "CREATE TEMP TABLE evil (a INTEGER)",
        "INSERT INTO runs (run_id, status) VALUES ('x', 'done')",
        "UPDATE runs SET kind = 'x'",
        "DELETE FROM trades",
        "DROP TABLE trades",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "COPY trades TO '{tmp}/out.csv'",
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET memory_limit = '1GB'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT 1; DROP TABLE runs",
        "CHECKPOINT",
    ],
)
def test_query_refuses_everything_but_select(tmp_path, sql):
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    save(store, make_run_result(1, 50, 100))
    before = count_rows(db)
    files = sorted(tmp_path.iterdir())
    with pytest.raises(QueryRefused, match="^query refused: "):
        store.query(sql.format(tmp=tmp_path))
    assert count_rows(db) == before
    assert sorted(tmp_path.iterdir()) == files


def test_query_connection_is_locked_down_by_duckdb_itself(tmp_path):
    # Second layer behind the SELECT-only check: DuckDB refuses these on the query connection.
    store = RunStore(tmp_path / "db.duckdb")
    save(store, make_run_result(1, 10, 10))
    with store._read(restricted=True) as con:
        for sql in [
            "CREATE TABLE evil (a INTEGER)",
            "DELETE FROM trades",
            f"ATTACH '{tmp_path}/other.duckdb' AS other",
            f"COPY trades TO '{tmp_path}/out.csv'",
            "SET enable_external_access = true",
            "SELECT * FROM read_csv('/etc/passwd')",
        ]:
            with pytest.raises(duckdb.Error):
                con.execute(sql)


# ---- export, writability ----------------------------------------------------------------------


def test_export_parquet(tmp_path):
    store = RunStore(tmp_path / "db.duckdb")
    result = make_run_result(2, 300, 777)
    run_id = save(store, result)
    save(store, make_run_result(3, 10, 10))  # another run, which must not leak into the export
    paths = store.export_parquet(run_id, tmp_path / "export")
    frames = {p.name.removeprefix(f"{run_id}_").removesuffix(".parquet"): p for p in paths}
    assert set(frames) == {"runs", "metrics", *RESULT_TABLES}
    counts = {name: len(pd.read_parquet(path)) for name, path in frames.items()}
    assert counts == {
        "runs": 1,
        "metrics": 2,
        "steps": 300,
        "trades": 777,
        "agents": result.agents["agent_id"].size,
        "agent_steps": result.agent_steps["step"].size,
        "positions": result.positions["agent_id"].size,
    }
    trades = pd.read_parquet(frames["trades"])
    assert list(trades.columns) == ["run_id", *RESULT_TABLES["trades"]]
    np.testing.assert_array_equal(trades["price"].to_numpy(), result.trades["price"])
    runs = pd.read_parquet(frames["runs"])
    assert json.loads(runs["config"][0]) == config_to_dict(result.config)
    with pytest.raises(StoreError, match="no finished run"):
        store.export_parquet("nope", tmp_path / "export2")


def test_check_writable_creates_parents(tmp_path):
    db = tmp_path / "a" / "b" / "db.duckdb"
    assert check_writable(db) == db
    assert db.parent.is_dir() and list(db.parent.iterdir()) == []


def test_check_writable_parent_is_a_file(tmp_path):
    (tmp_path / "plain").write_text("not a directory")
    db = tmp_path / "plain" / "sub" / "db.duckdb"
    with pytest.raises(StoreError, match="cannot create the directory .*plain/sub"):
        check_writable(db)
    with pytest.raises(StoreError, match="cannot create the directory"):
        save(RunStore(db), make_run_result(1, 10, 10))
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]


def test_check_writable_not_a_database(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, this is no database")
    with pytest.raises(StoreError, match="not a DuckDB database"):
        check_writable(tmp_path / "notes.txt")
    with pytest.raises(StoreError, match="not a file"):
        check_writable(tmp_path)


def test_check_writable_directory_without_permission():
    # /proc refuses new files even to root (a chmod-ed directory would not stop root).
    with pytest.raises(StoreError, match="not writable"):
        check_writable("/proc/db.duckdb")
    with pytest.raises(StoreError, match="cannot create the directory"):
        check_writable("/proc/sub/db.duckdb")
    assert not Path("/proc/sub").exists()


def test_threads_of_one_process_take_turns(tmp_path):
    # Threads share DuckDB's per-process instance; read-only and read-write opens would clash.
    store = RunStore(tmp_path / "db.duckdb")
    errors: list[Exception] = []

    def attempt(action) -> None:
        try:
            action()
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [
        threading.Thread(
            target=attempt, args=(lambda i=i: save(store, make_run_result(i, 200, 500)),)
        )
        for i in range(3)
    ] + [threading.Thread(target=attempt, args=(store.list_runs,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_runs()) == 3


# ---- real processes ---------------------------------------------------------------------------

CHILD_SAVE = """
import json, sys, time
from marl_market.core.config import config_to_dict
from marl_market.store import RunStore, code_version, make_run_id
from tests.store_helpers import make_run_result

seed, n_trades = int(sys.argv[1]), int(sys.argv[2])
result = make_run_result(seed, 5_000, n_trades)
config = config_to_dict(result.config)
run_id = make_run_id("sim", config, seed, code_version())
print("ready", flush=True)
start = time.monotonic()
RunStore(sys.argv[3]).save_run(run_id, "sim", seed, config, result, {"seed": float(seed)})
print(json.dumps({"run_id": run_id, "seconds": time.monotonic() - start}), flush=True)
"""

CHILD_READ = """
import json, sys, time
from marl_market.store import RunStore

store = RunStore(sys.argv[1])
start = time.monotonic()
columns, rows = store.query("SELECT count(*) FROM trades")
runs = store.list_runs()
print(json.dumps({"seconds": time.monotonic() - start, "trades": rows[0][0]}), flush=True)
"""


def spawn(code: str, *args: object, slow_save: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(SLOW_SAVE_ENV, None)
    if slow_save:
        env[SLOW_SAVE_ENV] = str(slow_save)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def wait_until_locked(db: Path, timeout: float = 30) -> None:
    """Return once another process holds the database's lock (i.e. is writing it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            duckdb.connect(str(db), read_only=True).close()
        except duckdb.IOException as exc:
            if "Could not set lock" in str(exc):
                return
        time.sleep(0.01)
    raise AssertionError("no process took the database lock")


@pytest.mark.slow
def test_two_writers_and_a_reader_at_the_same_time(tmp_path):
    db = tmp_path / "db.duckdb"
    # Writer A holds the file inside its transaction for a while; B and the reader start
    # while it does, so both are guaranteed to meet the lock and have to wait for it.
    writer_a = spawn(CHILD_SAVE, 1, 50_000, db, slow_save=1.0)
    wait_until_locked(db)
    writer_b = spawn(CHILD_SAVE, 2, 50_000, db, slow_save=0.3)
    reader = spawn(CHILD_READ, db)
    a, b, read = finish(writer_a), finish(writer_b), finish(reader)

    store = RunStore(db)
    assert {r["run_id"] for r in store.list_runs()} == {a["run_id"], b["run_id"]}
    for run in (a, b):
        assert store.load_trades(run["run_id"])["step"].size == 50_000
        assert store.load_steps(run["run_id"])["step"].size == 5_000
    # The reader saw a consistent database: no run, one run or both, never part of one.
    assert read["trades"] in (0, 50_000, 100_000)


@pytest.mark.slow
def test_busy_database_times_out_with_store_busy(tmp_path):
    db = tmp_path / "db.duckdb"
    holder = spawn(
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        "time.sleep(30)\n",
        db,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = RunStore(db, timeout=0.5)
        start = time.monotonic()
        with pytest.raises(StoreBusy, match="locked by another process for more than 0.5 s"):
            store.list_runs()
        assert 0.5 <= time.monotonic() - start < 3
        with pytest.raises(StoreBusy):
            save(store, make_run_result(1, 10, 10))
    finally:
        holder.kill()
        holder.communicate()
    assert RunStore(db, timeout=5).list_runs() == []  # the lock dies with its process


@pytest.mark.slow
def test_sigkill_during_save_leaves_no_visible_run(tmp_path):
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    kept = save(store, make_run_result(9, 100, 100))
    before = count_rows(db)

    victim = spawn(CHILD_SAVE, 1, 50_000, db, slow_save=30)
    try:
        wait_until_locked(db)
        time.sleep(0.5)  # the rows are inserted in ~0.1 s; now it sleeps before COMMIT
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
    finally:
        victim.kill()
    assert victim.returncode == -signal.SIGKILL

    assert [r["run_id"] for r in store.list_runs()] == [kept]
    assert count_rows(db) == before  # not even invisible leftovers
    run_id = save(store, make_run_result(1, 5_000, 50_000))
    assert store.has_run(run_id)
    assert store.load_trades(run_id)["price"].size == 50_000


def test_a_file_from_before_per_asset_agent_samples_reads_as_asset_0(tmp_path):
    db = tmp_path / "db.duckdb"
    store = RunStore(db)
    run_id = save(store, make_run_result(seed=5, n_steps=200, n_trades=50))
    with duckdb.connect(str(db)) as con:  # what an older version wrote: no asset column
        con.execute("ALTER TABLE agent_steps DROP COLUMN asset")
    samples = RunStore(db).load_agent_steps(run_id)  # read as it is, without the column
    assert samples["asset"].size == samples["step"].size > 0
    assert (samples["asset"] == 0).all()
    with duckdb.connect(str(db)) as con:  # a newer version's write adds it back, NULL
        migrate(con)
    assert (RunStore(db).load_agent_steps(run_id)["asset"] == 0).all()
