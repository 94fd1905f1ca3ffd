"""The run store: every finished run, its tables and its metrics in one DuckDB file.

How the store copes with DuckDB's locking (measured with DuckDB 2.0): a file can be open
read-write in one process only, and while that process holds it no other process can open it at
all, not even read-only. Read-only openers share the file among themselves but also keep a writer
out. So the store never keeps a connection between operations: every call opens the file, does
its work and closes it, and an open that hits a lock is retried with capped exponential backoff
plus jitter until ``timeout`` seconds have passed; only then does it raise ``StoreBusy``.

A run is written - its ``runs`` row and the rows of every table - in one transaction, so a run
killed half-way through saving leaves nothing visible behind: uncommitted rows never reach the
write-ahead log, and the file lock dies with the process. Readers only see status ``'done'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import marl_market
from marl_market.core.results import (
    AGENT_COLUMNS,
    AGENT_STEP_COLUMNS,
    STEP_COLUMNS,
    TRADE_COLUMNS,
    RunResult,
)

DB_ENV = "MARL_MARKET_DB"
DEFAULT_DB_PATH = Path("data") / "marl_market.duckdb"
DEFAULT_TIMEOUT = 120.0  # seconds an operation waits for another process to release the file
# Test-only: seconds to sleep inside the save transaction, so tests can kill a process mid-save.
SLOW_SAVE_ENV = "MARL_MARKET_TEST_SLOW_SAVE"

DONE = "done"

# Tables filled from a RunResult: name (also the RunResult attribute) -> column dtypes.
RESULT_TABLES: dict[str, dict[str, Any]] = {
    "steps": STEP_COLUMNS,
    "trades": TRADE_COLUMNS,
    "agents": AGENT_COLUMNS,
    "agent_steps": AGENT_STEP_COLUMNS,
}
RUN_COLUMNS = {
    "run_id": "VARCHAR PRIMARY KEY",
    "kind": "VARCHAR",
    "seed": "BIGINT",
    "config": "JSON",
    "status": "VARCHAR",
    "created_at": "TIMESTAMP",  # UTC
    "code_version": "VARCHAR",
    "parent_run_id": "VARCHAR",
    "summary": "JSON",
    "n_steps": "BIGINT",
    "n_assets": "BIGINT",
}
METRIC_COLUMNS = {"name": "VARCHAR", "value": "DOUBLE"}
ALL_TABLES = ("runs", "metrics", *RESULT_TABLES)

_SQL_TYPES = {
    np.dtype(np.int64): "BIGINT",
    np.dtype(np.int8): "TINYINT",
    np.dtype(np.float64): "DOUBLE",
    np.dtype(object): "VARCHAR",
}

# Backoff between attempts to open a locked file: a save takes ~0.1-1 s, so start small and
# never sleep much longer than one save.
_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0
_LOCK_MESSAGE = "Could not set lock"


class StoreError(Exception):
    """Anything that stops the store from doing what was asked, with a message for the user."""


class StoreBusy(StoreError):
    """Another process kept the database file locked for longer than the store's timeout."""


class QueryRefused(StoreError):
    """``RunStore.query`` only runs a single read-only SELECT statement."""


def default_db_path() -> Path:
    """``$MARL_MARKET_DB`` if set, else ``data/marl_market.duckdb`` in the current directory."""
    env = os.environ.get(DB_ENV, "").strip()
    return Path(env) if env else DEFAULT_DB_PATH


def code_version() -> str:
    """The version string recorded with every run (part of its run id)."""
    return marl_market.__version__


def make_run_id(kind: str, config: dict, seed: int | None, code_version: str) -> str:
    """A deterministic id: 16 hex chars of the sha256 of the canonical JSON of the inputs.

    The same kind, config, seed and code version always give the same id, which is what lets
    ``save_run`` recognise a run that has been done before.
    """
    payload = {"kind": kind, "config": config, "seed": seed, "code_version": code_version}
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()[:16]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Make sure a database can be created or written at ``path``; return it resolved.

    Creates missing parent directories. Meant to be called before any simulation work, so a bad
    path fails in a second rather than after an hour of simulating. Raises ``StoreError``.
    """
    db = _resolve(path)
    parent = db.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory {parent} for the run database {db}: {_reason(exc)}"
        ) from exc
    if db.exists():
        if not db.is_file():
            raise StoreError(f"the run database path {db} exists but is not a file")
        if not os.access(db, os.R_OK | os.W_OK):
            raise StoreError(f"the run database {db} is not readable and writable by this user")
        _check_duckdb_file(db)
    # DuckDB also creates a write-ahead log next to the file, so the directory itself must be
    # writable; a real probe file catches read-only mounts that os.access misses (and root).
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".marl_market-probe-")
    except OSError as exc:
        raise StoreError(
            f"cannot write the run database {db}: directory {parent} is not writable "
            f"({_reason(exc)})"
        ) from exc
    os.close(fd)
    os.unlink(probe)
    return db


@dataclasses.dataclass
class RunRecord:
    """One finished run to store (see ``RunStore.save_run`` for the fields)."""

    run_id: str
    kind: str
    seed: int | None
    config: dict
    result: RunResult | None
    metrics: Mapping[str, float]
    summary: dict | None = None
    parent_run_id: str | None = None


class RunStore:
    """The DuckDB file holding all runs; safe to use from several processes at once.

    No connection is kept open: each method opens the file, works, and closes it, waiting (up to
    ``timeout`` seconds) while another process holds it.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.path = _resolve(default_db_path() if path is None else path)
        self.timeout = float(timeout)
        self._rng = random.Random(os.getpid())
        self._rng_pid = os.getpid()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # ---- writing ----------------------------------------------------------------------------

    def save_run(
        self,
        run_id: str,
        kind: str,
        seed: int | None,
        config: dict,
        result: RunResult | None,
        metrics: Mapping[str, float],
        summary: dict | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        """Store a finished run and return its id; a no-op if that run is already stored.

        ``result`` may be None for summary-only runs (e.g. a multi-seed comparison). Everything
        is written in one transaction, so the run becomes visible complete or not at all.
        """
        record = RunRecord(run_id, kind, seed, config, result, metrics, summary, parent_run_id)
        self.save_runs([record])
        return run_id

    def save_runs(self, records: list[RunRecord]) -> list[str]:
        """Store several finished runs in ONE transaction (all visible together, or none).

        Runs already stored are left as they are. Returns the run ids in order.
        """
        # Validate and convert before taking the file lock, so other processes wait less.
        prepared = []
        for r in records:
            tables = _result_tables(r.result) if r.result is not None else {}
            n_steps, n_assets = _run_shape(r.config, r.result)
            run_row = [
                r.run_id,
                r.kind,
                None if r.seed is None else int(r.seed),
                _canonical_json(r.config),
                DONE,
                datetime.now(UTC).replace(tzinfo=None),
                code_version(),
                r.parent_run_id,
                None if r.summary is None else _canonical_json(r.summary),
                n_steps,
                n_assets,
            ]
            prepared.append((r.run_id, run_row, _metric_table(r.metrics), tables))
        check_writable(self.path)
        with self._connect(read_only=False) as con:
            con.begin()
            try:
                # Schema inside the transaction: a first save killed early leaves no half schema.
                for statement in _schema_ddl():
                    con.execute(statement)
                for run_id, run_row, metric_table, tables in prepared:
                    status = _scalar(con, "SELECT status FROM runs WHERE run_id = ?", [run_id])
                    if status == DONE:
                        continue
                    # A row with another status was left by some other tool: replace it.
                    for table in ALL_TABLES:
                        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                    placeholders = ", ".join("?" * len(RUN_COLUMNS))
                    con.execute(f"INSERT INTO runs VALUES ({placeholders})", run_row)
                    for table, data in [("metrics", metric_table), *tables.items()]:
                        _bulk_insert(con, table, run_id, data)
                slow = float(os.environ.get(SLOW_SAVE_ENV, "0") or 0)
                if slow > 0:
                    time.sleep(slow)
                con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                raise
        return [r.run_id for r in records]

    # ---- reading ----------------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool:
        """Whether a finished run with this id is stored."""
        return self.get_run(run_id) is not None

    def get_run(self, run_id: str) -> dict | None:
        """The ``runs`` row of a finished run, config and summary parsed; None if absent."""
        rows = self._select_runs("WHERE status = ? AND run_id = ?", [DONE, run_id])
        return rows[0] if rows else None

    def list_runs(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        """Finished runs, newest first, optionally of one kind only."""
        where, params = "WHERE status = ?", [DONE]
        if kind is not None:
            where += " AND kind = ?"
            params.append(kind)
        return self._select_runs(
            f"{where} ORDER BY created_at DESC, run_id LIMIT ?", [*params, int(limit)]
        )

    def load_steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The per-step table of a run, as in ``RunResult.steps``."""
        return self._load_table("steps", run_id)

    def load_trades(self, run_id: str) -> dict[str, np.ndarray]:
        """The trades of a run, in the order they happened."""
        return self._load_table("trades", run_id)

    def load_agents(self, run_id: str) -> dict[str, np.ndarray]:
        """The end-of-run agent table of a run."""
        return self._load_table("agents", run_id)

    def load_agent_steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The sampled per-agent inventory and PnL of a run."""
        return self._load_table("agent_steps", run_id)

    def load_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics stored with a run, by name."""
        with self._read() as con:
            self._require_run(con, run_id)
            rows = con.execute(
                "SELECT name, value FROM metrics WHERE run_id = ? ORDER BY rowid", [run_id]
            ).fetchall()
        return {name: float(value) for name, value in rows}

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Run one read-only SELECT and return (column names, rows).

        Anything else - writes, DDL, ATTACH, COPY, INSTALL/LOAD, SET, reading files - raises
        ``QueryRefused``. Two layers enforce it: statements are parsed and only a single SELECT
        is let through, and the connection itself is read-only with external access and
        configuration changes disabled, so DuckDB refuses e.g. ``read_csv('/etc/passwd')``.
        """
        _check_select_only(sql)
        try:
            with self._read(missing_ok=True, restricted=True) as con:
                cursor = con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                return columns, cursor.fetchall()
        except (duckdb.PermissionException, duckdb.InvalidInputException) as exc:
            # DuckDB reports refused statements as permission or read-only/locked-config errors.
            message = str(exc)
            if isinstance(exc, duckdb.PermissionException) or _refusal_text(message):
                raise QueryRefused(f"query refused: {_first_line(message)}") from exc
            raise StoreError(f"query failed: {_first_line(message)}") from exc
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {_first_line(str(exc))}") from exc

    def export_parquet(self, run_id: str, directory: str | os.PathLike[str]) -> list[Path]:
        """Write one parquet file per table for this run (``<run_id>_<table>.parquet``)."""
        out = Path(directory)
        with self._read() as con:
            self._require_run(con, run_id)
            arrow_tables = {
                table: con.sql(
                    f"SELECT * FROM {table} WHERE run_id = $run_id ORDER BY rowid",
                    params={"run_id": run_id},
                ).to_arrow_table()
                for table in ALL_TABLES
            }
        # Files are written after closing the database so other processes are not kept waiting.
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths = []
            for table, data in arrow_tables.items():
                path = out / f"{run_id}_{table}.parquet"
                pq.write_table(data, path)
                paths.append(path)
        except OSError as exc:
            raise StoreError(f"cannot write parquet files to {out}: {_reason(exc)}") from exc
        return paths

    # ---- internals --------------------------------------------------------------------------

    def _select_runs(self, clause: str, params: list) -> list[dict]:
        with self._read() as con:
            if con is None:
                return []
            cursor = con.execute(f"SELECT * FROM runs {clause}", params)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        runs = []
        for row in rows:
            run = dict(zip(columns, row, strict=True))
            for key in ("config", "summary"):
                if run[key] is not None:
                    run[key] = json.loads(run[key])
            runs.append(run)
        return runs

    def _load_table(self, table: str, run_id: str) -> dict[str, np.ndarray]:
        columns = RESULT_TABLES[table]
        with self._read() as con:
            self._require_run(con, run_id)
            # rowid order is insertion order: trades within a step keep their sequence.
            data = con.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? ORDER BY rowid",
                [run_id],
            ).fetchnumpy()
        return {name: np.asarray(data[name], dtype=dtype) for name, dtype in columns.items()}

    def _require_run(self, con: duckdb.DuckDBPyConnection | None, run_id: str) -> None:
        sql = "SELECT count(*) FROM runs WHERE run_id = ? AND status = ?"
        if con is None or not _scalar(con, sql, [run_id, DONE]):
            raise StoreError(f"no finished run {run_id!r} in {self.path}")

    @contextlib.contextmanager
    def _read(
        self, *, missing_ok: bool = False, restricted: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None when there is no database yet (nothing is created).

        With ``missing_ok`` a missing database is stood in for by an empty in-memory one with
        the schema, so queries against it return no rows instead of failing.
        """
        config = _RESTRICTED_CONFIG if restricted else {}
        if not self.path.exists():
            if not missing_ok:
                yield None
                return
            with duckdb.connect(":memory:", config=config) as con:
                for statement in _schema_ddl():
                    con.execute(statement)
                yield con
            return
        with self._connect(read_only=True, config=config) as con:
            has_schema = _scalar(
                con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'", []
            )
            if not has_schema and not missing_ok:
                yield None
            else:
                yield con

    @contextlib.contextmanager
    def _connect(
        self, *, read_only: bool, config: dict | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, retrying while another process holds its lock; always close it."""
        # Threads of one process would share DuckDB's cached instance and collide on its
        # configuration (read-only vs read-write), so operations in one process take turns.
        with _process_lock(self.path):
            con = self._open_with_retry(read_only, config or {})
            try:
                yield con
            finally:
                con.close()

    def _open_with_retry(self, read_only: bool, config: dict) -> duckdb.DuckDBPyConnection:
        if self._rng_pid != os.getpid():  # forked: reseed so siblings do not retry in step
            self._rng = random.Random(os.getpid())
            self._rng_pid = os.getpid()
        deadline = time.monotonic() + self.timeout
        delay = _FIRST_DELAY
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only, config=config)
            except duckdb.IOException as exc:
                if _LOCK_MESSAGE not in str(exc):
                    raise StoreError(
                        f"cannot open the run database {self.path}: {_first_line(str(exc))}"
                    ) from exc
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreBusy(
                        f"the run database {self.path} has been locked by another process for "
                        f"more than {self.timeout:g} s (DuckDB lets one process write a file "
                        f"and nobody else open it meanwhile): {_first_line(str(exc))}"
                    ) from exc
                time.sleep(min(remaining, delay * self._rng.uniform(0.5, 1.5)))
                delay = min(2 * delay, _MAX_DELAY)
            except duckdb.Error as exc:
                raise StoreError(
                    f"cannot open the run database {self.path}: {_first_line(str(exc))}"
                ) from exc


# ---- module helpers ---------------------------------------------------------------------------

_RESTRICTED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # last: it freezes the options above for the session
}

_process_locks: dict[Path, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


def _resolve(path: str | os.PathLike[str]) -> Path:
    if str(path) in ("", ":memory:"):
        raise StoreError("the run store needs a database file path, not an in-memory database")
    return Path(path).expanduser().absolute()


def _check_duckdb_file(db: Path) -> None:
    # A DuckDB file starts with an 8-byte checksum followed by the magic bytes "DUCK".
    with db.open("rb") as handle:
        header = handle.read(12)
    if header[8:12] != b"DUCK":
        raise StoreError(f"{db} exists but is not a DuckDB database")


def _schema_ddl() -> list[str]:
    """CREATE TABLE IF NOT EXISTS statements, columns taken from results.py's column dicts."""
    tables = {"runs": RUN_COLUMNS, "metrics": {"run_id": "VARCHAR", **METRIC_COLUMNS}}
    for table, columns in RESULT_TABLES.items():
        sql_columns = {name: _SQL_TYPES[np.dtype(dtype)] for name, dtype in columns.items()}
        tables[table] = {"run_id": "VARCHAR", **sql_columns}
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        + ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
        + ")"
        for table, columns in tables.items()
    ]


def _result_tables(result: RunResult) -> dict[str, pa.Table]:
    """Check a RunResult's tables against the column dicts and wrap them as Arrow tables."""
    tables = {}
    for table, columns in RESULT_TABLES.items():
        data = getattr(result, table)
        missing = [name for name in columns if name not in data]
        extra = [name for name in data if name not in columns]
        if missing or extra:
            raise StoreError(f"RunResult.{table}: missing columns {missing}, unknown {extra}")
        lengths = {len(data[name]) for name in columns}
        if len(lengths) > 1:
            raise StoreError(f"RunResult.{table}: columns differ in length {sorted(lengths)}")
        arrays = {}
        for name, dtype in columns.items():
            values = np.asarray(data[name])
            if np.dtype(dtype) == object:
                arrays[name] = pa.array([str(v) for v in values.tolist()], type=pa.string())
                continue
            # same_kind refuses silent float -> int truncation while allowing int32 -> int64.
            if not np.can_cast(values.dtype, dtype, casting="same_kind"):
                raise StoreError(f"RunResult.{table}.{name} has dtype {values.dtype}, not {dtype}")
            arrays[name] = pa.array(values.astype(dtype, copy=False))
        tables[table] = pa.table(arrays)
    return tables


def _metric_table(metrics: Mapping[str, float]) -> pa.Table:
    try:
        values = [float(v) for v in metrics.values()]
    except (TypeError, ValueError) as exc:
        raise StoreError(f"metric values must be numbers: {exc}") from exc
    return pa.table(
        {
            "name": pa.array([str(k) for k in metrics], type=pa.string()),
            "value": pa.array(values, type=pa.float64()),
        }
    )


def _bulk_insert(con: duckdb.DuckDBPyConnection, table: str, run_id: str, data: pa.Table) -> None:
    """INSERT ... SELECT from a registered Arrow table: one vectorised scan, no Python loop."""
    if data.num_rows == 0:
        return
    names = ", ".join(data.column_names)
    con.register("_marl_src", data)
    try:
        con.execute(
            f"INSERT INTO {table} (run_id, {names}) SELECT $run_id, {names} FROM _marl_src",
            {"run_id": run_id},
        )
    finally:
        con.unregister("_marl_src")


def _run_shape(config: Mapping, result: RunResult | None) -> tuple[int | None, int | None]:
    if result is not None:
        return int(result.config.steps), int(result.config.n_assets)
    steps, assets = config.get("steps"), config.get("n_assets")
    return (
        steps if isinstance(steps, int) else None,
        assets if isinstance(assets, int) else None,
    )


def _canonical_json(value: Any) -> str:
    """Sorted-key compact JSON; numpy scalars/arrays become plain values, NaN/inf become null."""
    try:
        return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"not JSON-serialisable: {exc}") from exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a metric that could not be computed is "null"
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} value {value!r}")


def _check_select_only(sql: str) -> None:
    # Parsing needs a connection but no database; a private in-memory one keeps global state out.
    with duckdb.connect(":memory:") as parser:
        try:
            statements = parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {_first_line(str(exc))}") from exc
    if len(statements) != 1:
        raise QueryRefused(
            f"query refused: give exactly one SELECT statement (got {len(statements)})"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = "INSTALL/LOAD" if kind == duckdb.StatementType.LOAD else kind.name
        raise QueryRefused(
            f"query refused: only read-only SELECT statements are allowed, not {name}"
        )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> Any:
    """The first value of the first row, or None."""
    # fetchall, not fetchone: DuckDB 2.0 refuses further work on a connection while a result
    # from execute() is only partly fetched.
    rows = con.execute(sql, params).fetchall()
    return rows[0][0] if rows else None


def _refusal_text(message: str) -> bool:
    return "read-only mode" in message or "configuration has been locked" in message


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
