"""Runs leaving and entering a database: Parquet per table, and whole runs as a DuckDB file.

``export_runs`` writes chosen runs with every row of every table to a new DuckDB file a
colleague can take; ``import_runs`` merges such a file into this database in one transaction:
a run already stored with the same contents is skipped, a run ID stored with different contents
is refused (``ImportConflict``) and nothing is written. "Same contents" ignores only when the
run was saved (``created_at``): two people who ran the same config, seed and code agree.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marl_market.store.connection import check_readable, check_writable, first_line, reason, resolve
from marl_market.store.errors import ImportConflict, StoreError
from marl_market.store.schema import ALL_TABLES, DONE, migrate
from marl_market.store.writer import Writer

_UNCOMPARED = ("created_at",)  # columns of `runs` that may differ between identical runs


class Transfer(Writer):
    """Export and import of runs (part of ``RunStore``)."""

    def export_parquet(self, run_id: str, directory: str | os.PathLike[str]) -> list[Path]:
        """Write one parquet file per table for this run (``<run_id>_<table>.parquet``)."""
        out = Path(directory)
        with self._read() as con:
            self._require_run(con, run_id)
            tables = _run_rows(con, run_id)
        # Files are written after closing the database so other processes are not kept waiting.
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths = []
            for table, data in tables.items():
                path = out / f"{run_id}_{table}.parquet"
                pq.write_table(data, path)
                paths.append(path)
        except OSError as exc:
            raise StoreError(f"cannot write parquet files to {out}: {reason(exc)}") from exc
        return paths

    def export_runs(self, run_ids: list[str], to: str | os.PathLike[str]) -> Path:
        """Write these runs, every row of every table, to a new DuckDB file ``to``.

        An existing ``to`` is never overwritten. The file is written under a temporary name
        beside ``to`` and renamed into place, so a failure leaves nothing behind.
        """
        target = resolve(to)
        if target.exists():
            raise StoreError(f"{target} already exists: export to a new file")
        if not target.parent.is_dir():
            raise StoreError(f"cannot write {target}: directory {target.parent} does not exist")
        with self._read() as con:
            rows = {}
            for run_id in dict.fromkeys(run_ids):
                self._require_run(con, run_id)
                rows[run_id] = _run_rows(con, run_id)
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {reason(exc)}") from exc
        os.close(fd)
        os.unlink(tmp)  # DuckDB creates the file itself; an empty one is not a database
        try:
            with duckdb.connect(tmp) as out:
                out.begin()
                migrate(out)
                for tables in rows.values():
                    for table, data in tables.items():
                        _insert(out, table, data)
                out.commit()
            os.replace(tmp, target)
        except (OSError, duckdb.Error) as exc:
            raise StoreError(f"cannot write {target}: {first_line(str(exc))}") from exc
        finally:
            for leftover in (tmp, f"{tmp}.wal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        return target

    def import_runs(self, source: str | os.PathLike[str]) -> dict[str, list[str]]:
        """Merge the runs in the DuckDB file ``source`` into this database (one transaction).

        Returns ``{"imported": [...], "skipped": [...]}`` (skipped: already stored, identical).
        Raises ``ImportConflict`` - and writes nothing - if a run ID is stored with other
        contents.
        """
        path = check_readable(source)
        if path == self.path:
            raise StoreError(f"{path} is this database: nothing to import")
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                ids = [
                    row[0]
                    for row in con.execute(
                        "SELECT run_id FROM runs WHERE status = ? ORDER BY created_at, run_id",
                        [DONE],
                    ).fetchall()
                ]
                incoming = {run_id: _run_rows(con, run_id) for run_id in ids}
        except duckdb.Error as exc:
            raise StoreError(f"cannot read runs from {path}: {first_line(str(exc))}") from exc
        check_writable(self.path)
        imported, skipped = [], []
        with self._write() as con:  # Writer's transaction: all or nothing
            for run_id, tables in incoming.items():
                status = con.execute(
                    "SELECT status FROM runs WHERE run_id = ?", [run_id]
                ).fetchall()
                if status and status[0][0] == DONE:
                    if not same_rows(_run_rows(con, run_id), tables):
                        raise ImportConflict(
                            f"run {run_id} is already in {self.path} with different contents: "
                            "nothing was imported"
                        )
                    skipped.append(run_id)
                    continue
                for table in ALL_TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                for table, data in tables.items():
                    _insert(con, table, data)
                imported.append(run_id)
        return {"imported": imported, "skipped": skipped}


def _run_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, pa.Table]:
    """Every row of one run, table by table, in insertion order."""
    return {
        table: con.sql(
            f"SELECT * FROM {table} WHERE run_id = $run_id ORDER BY rowid",
            params={"run_id": run_id},
        ).to_arrow_table()
        for table in ALL_TABLES
    }


def _insert(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    names = ", ".join(data.column_names)
    con.register("_marl_import", data)
    try:
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _marl_import")
    finally:
        con.unregister("_marl_import")


def same_rows(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> bool:
    """Whether two runs' rows agree in every table and column (NaN equals NaN)."""
    for table in ALL_TABLES:
        left, right = a[table], b[table]
        columns = [c for c in left.column_names if not (table == "runs" and c in _UNCOMPARED)]
        if left.num_rows != right.num_rows or set(columns) - set(right.column_names):
            return False
        for column in columns:
            x = left[column].to_numpy(zero_copy_only=False)
            y = right[column].to_numpy(zero_copy_only=False)
            if not _same_values(x, y):
                return False
    return True


def _same_values(x: np.ndarray, y: np.ndarray) -> bool:
    if x.dtype.kind == "f" and y.dtype.kind == "f":
        return np.array_equal(x, y, equal_nan=True)
    return x.shape == y.shape and all(
        (u == v) or (u != u and v != v) for u, v in zip(x.tolist(), y.tolist(), strict=True)
    )
