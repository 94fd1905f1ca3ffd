"""Opening the database file: where it is, whether it is one, and waiting out other processes.

How the store copes with DuckDB's locking (measured with DuckDB 2.0): a file can be open
read-write in one process only, and while that process holds it no other process can open it at
all, not even read-only. Read-only openers share the file among themselves but also keep a writer
out. So the store never keeps a connection between operations: every call opens the file, does
its work and closes it, and an open that hits a lock is retried with capped exponential backoff
plus jitter until ``timeout`` seconds have passed; only then does it raise ``StoreBusy``.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from marl_market.store.errors import StoreBusy, StoreError
from marl_market.store.schema import DONE, schema_ddl

DB_ENV = "MARL_MARKET_DB"
DEFAULT_DB_PATH = Path("data") / "marl_market.duckdb"
DEFAULT_TIMEOUT = 120.0  # seconds an operation waits for another process to release the file

# Backoff between attempts to open a locked file: a save takes ~0.1-1 s, so start small and
# never sleep much longer than one save.
_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0
_LOCK_MESSAGE = "Could not set lock"

# A connection for the user's SQL: DuckDB itself refuses file access and configuration changes.
RESTRICTED_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # last: it freezes the options above for the session
}


def default_db_path() -> Path:
    """``$MARL_MARKET_DB`` if set, else ``data/marl_market.duckdb`` in the current directory."""
    env = os.environ.get(DB_ENV, "").strip()
    return Path(env) if env else DEFAULT_DB_PATH


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Make sure a database can be created or written at ``path``; return it resolved.

    Creates missing parent directories. Meant to be called before any simulation work, so a bad
    path fails in a second rather than after an hour of simulating. Raises ``StoreError``.
    """
    db = resolve(path)
    parent = db.parent
    if parent.exists() and not parent.is_dir():
        raise StoreError(f"cannot create the run database {db}: {parent} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory {parent} for the run database {db}: {reason(exc)}"
        ) from exc
    if db.exists():
        check_readable(db)
        if not os.access(db, os.W_OK):
            raise StoreError(f"the run database {db} is not writable by this user")
    # DuckDB also creates a write-ahead log next to the file, so the directory itself must be
    # writable; a real probe file catches read-only mounts that os.access misses (and root).
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".marl_market-probe-")
    except OSError as exc:
        raise StoreError(
            f"cannot write the run database {db}: directory {parent} is not writable "
            f"({reason(exc)})"
        ) from exc
    os.close(fd)
    os.unlink(probe)
    return db


def check_readable(path: str | os.PathLike[str]) -> Path:
    """Make sure ``path`` is an existing, readable DuckDB file; return it resolved.

    For commands that only read: a missing file is an error (a typo must not look like an empty
    database), and nothing is created. Raises ``StoreError``.
    """
    db = resolve(path)
    if not db.exists():
        raise StoreError(f"no run database at {db} (check --db or ${DB_ENV})")
    if db.is_dir():
        raise StoreError(f"the run database path {db} is a directory, not a file")
    if not db.is_file():
        raise StoreError(f"the run database path {db} exists but is not a file")
    try:
        with db.open("rb") as handle:
            header = handle.read(12)
    except OSError as exc:
        raise StoreError(f"cannot read the run database {db}: {reason(exc)}") from exc
    # A DuckDB file starts with an 8-byte checksum followed by the magic bytes "DUCK".
    if header[8:12] != b"DUCK":
        raise StoreError(f"{db} is not a DuckDB database")
    return db


class Connection:
    """Opening the file for one operation at a time (the base of ``RunStore``)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.path = resolve(default_db_path() if path is None else path)
        self.timeout = float(timeout)
        self._rng = random.Random(os.getpid())
        self._rng_pid = os.getpid()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _require_run(self, con: duckdb.DuckDBPyConnection | None, run_id: str) -> None:
        sql = "SELECT count(*) FROM runs WHERE run_id = ? AND status = ?"
        if con is None or not scalar(con, sql, [run_id, DONE]):
            raise StoreError(f"no finished run {run_id!r} in {self.path}")

    @contextlib.contextmanager
    def _read(
        self, *, missing_ok: bool = False, restricted: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """A read-only connection, or None when there is no database yet (nothing is created).

        With ``missing_ok`` a missing database is stood in for by an empty in-memory one with
        the schema, so queries against it return no rows instead of failing.
        """
        config = RESTRICTED_CONFIG if restricted else {}
        if not self.path.exists():
            if not missing_ok:
                yield None
                return
            with duckdb.connect(":memory:", config=config) as con:
                for statement in schema_ddl():
                    con.execute(statement)
                yield con
            return
        check_readable(self.path)
        with self._connect(read_only=True, config=config) as con:
            has_schema = scalar(
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
                        f"cannot open the run database {self.path}: {first_line(str(exc))}"
                    ) from exc
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreBusy(
                        f"the run database {self.path} has been locked by another process for "
                        f"more than {self.timeout:g} s (DuckDB lets one process write a file "
                        f"and nobody else open it meanwhile): {first_line(str(exc))}"
                    ) from exc
                time.sleep(min(remaining, delay * self._rng.uniform(0.5, 1.5)))
                delay = min(2 * delay, _MAX_DELAY)
            except duckdb.Error as exc:
                raise StoreError(
                    f"cannot open the run database {self.path}: {first_line(str(exc))}"
                ) from exc


_process_locks: dict[Path, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    with _process_locks_guard:
        return _process_locks.setdefault(path, threading.Lock())


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute (``~`` expanded); an in-memory database is refused."""
    if str(path) in ("", ":memory:"):
        raise StoreError("the run store needs a database file path, not an in-memory database")
    return Path(path).expanduser().absolute()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> Any:
    """The first value of the first row, or None."""
    # fetchall, not fetchone: DuckDB 2.0 refuses further work on a connection while a result
    # from execute() is only partly fetched.
    rows = con.execute(sql, params).fetchall()
    return rows[0][0] if rows else None


def first_line(message: str) -> str:
    """The first line of an error message (DuckDB's run to many lines)."""
    return message.strip().splitlines()[0] if message.strip() else message


def reason(exc: OSError) -> str:
    """An OSError's reason without its errno prefix."""
    return exc.strerror or str(exc)
