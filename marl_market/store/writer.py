"""Writing runs: each run - its ``runs`` row and the rows of every table - in one transaction.

A run killed half-way through saving leaves nothing visible behind: uncommitted rows never
reach the write-ahead log, and the file lock dies with the process. Readers only see ``done``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from marl_market.core.results import RunResult
from marl_market.store.connection import Connection, check_writable, scalar
from marl_market.store.errors import StoreError
from marl_market.store.ids import canonical_json, code_version
from marl_market.store.interrupts import interrupts_deferred
from marl_market.store.schema import ALL_TABLES, DONE, RESULT_TABLES, RUN_COLUMNS, migrate

# Test-only: seconds to sleep inside the save transaction, so tests can kill a process mid-save.
SLOW_SAVE_ENV = "MARL_MARKET_TEST_SLOW_SAVE"


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


class Writer(Connection):
    """Saving finished runs (part of ``RunStore``)."""

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
            tables = result_tables(r.result) if r.result is not None else {}
            n_steps, n_assets = run_shape(r.config, r.result)
            run_row = [
                r.run_id,
                r.kind,
                None if r.seed is None else int(r.seed),
                canonical_json(r.config),
                DONE,
                datetime.now(UTC).replace(tzinfo=None),
                code_version(),
                r.parent_run_id,
                None if r.summary is None else canonical_json(r.summary),
                n_steps,
                n_assets,
            ]
            prepared.append((r.run_id, run_row, metric_table(r.metrics), tables))
        check_writable(self.path)
        with self._write() as con:
            for run_id, run_row, metrics, tables in prepared:
                status = scalar(con, "SELECT status FROM runs WHERE run_id = ?", [run_id])
                if status == DONE:
                    continue
                # A row with another status was left by some other tool: replace it.
                for table in ALL_TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                placeholders = ", ".join("?" * len(RUN_COLUMNS))
                con.execute(f"INSERT INTO runs VALUES ({placeholders})", run_row)
                for table, data in [("metrics", metrics), *tables.items()]:
                    bulk_insert(con, table, run_id, data)
        return [r.run_id for r in records]

    @contextlib.contextmanager
    def _write(self):
        """A read-write connection inside one transaction, committed only if the block ends."""
        with self._connect(read_only=False) as con, interrupts_deferred():
            con.begin()
            try:
                # Schema inside the transaction: a first save killed early leaves no half schema.
                migrate(con)
                yield con
                slow = float(os.environ.get(SLOW_SAVE_ENV, "0") or 0)
                if slow > 0:
                    time.sleep(slow)
                con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                raise


def result_tables(result: RunResult) -> dict[str, pa.Table]:
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


def metric_table(metrics: Mapping[str, float]) -> pa.Table:
    """The ``metrics`` rows of one run as an Arrow table."""
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


def bulk_insert(con: duckdb.DuckDBPyConnection, table: str, run_id: str, data: pa.Table) -> None:
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


def run_shape(config: Mapping, result: RunResult | None) -> tuple[int | None, int | None]:
    """(steps, assets) of a run: from its result, else from its config (a comparison's, too)."""
    if result is not None:
        return int(result.config.steps), int(result.config.n_assets)
    market = config.get("market", config)  # stored configs nest the market under "market"
    steps, assets = market.get("steps"), market.get("n_assets")
    return (
        steps if isinstance(steps, int) else None,
        assets if isinstance(assets, int) else None,
    )
