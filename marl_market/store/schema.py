"""The tables, their columns (taken from ``core/results.py``), and bringing old files up to date."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from marl_market.core.results import (
    AGENT_COLUMNS,
    AGENT_STEP_COLUMNS,
    POSITION_COLUMNS,
    STEP_COLUMNS,
    TRADE_COLUMNS,
)

DONE = "done"  # a run's status once every row of it is written

# Tables filled from a RunResult: name (also the RunResult attribute) -> column dtypes.
RESULT_TABLES: dict[str, dict[str, Any]] = {
    "steps": STEP_COLUMNS,
    "trades": TRADE_COLUMNS,
    "agents": AGENT_COLUMNS,
    "agent_steps": AGENT_STEP_COLUMNS,
    "positions": POSITION_COLUMNS,
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

# A training run's tables (``store.training``), written iteration by iteration under its run
# ID: the per-iteration log per learning type (``agent_type`` "all" for run-wide numbers such
# as throughput), the market monitor per asset, and every checkpoint's file and digest. Long
# (name, value) rows, so a new statistic in the trainer's log needs no migration.
TRAINING_TABLES: dict[str, dict[str, str]] = {
    "train_logs": {
        "iteration": "BIGINT",
        "agent_type": "VARCHAR",
        "name": "VARCHAR",
        "value": "DOUBLE",
    },
    "train_market": {
        "iteration": "BIGINT",
        "asset": "BIGINT",
        "name": "VARCHAR",
        "value": "DOUBLE",
    },
    "train_checkpoints": {
        "iteration": "BIGINT",
        "path": "VARCHAR",
        "sha256": "VARCHAR",
        "created_at": "TIMESTAMP",  # UTC
    },
}

_SQL_TYPES = {
    np.dtype(np.int64): "BIGINT",
    np.dtype(np.int32): "INTEGER",
    np.dtype(np.int8): "TINYINT",
    np.dtype(np.float64): "DOUBLE",
    np.dtype(object): "VARCHAR",
}


def table_columns() -> dict[str, dict[str, str]]:
    """Every table's columns and SQL types, ``run_id`` first."""
    tables = {"runs": RUN_COLUMNS, "metrics": {"run_id": "VARCHAR", **METRIC_COLUMNS}}
    for table, columns in RESULT_TABLES.items():
        sql_columns = {name: _SQL_TYPES[np.dtype(dtype)] for name, dtype in columns.items()}
        tables[table] = {"run_id": "VARCHAR", **sql_columns}
    for table, columns in TRAINING_TABLES.items():
        tables[table] = {"run_id": "VARCHAR", **columns}
    return tables


def schema_ddl() -> list[str]:
    """CREATE TABLE IF NOT EXISTS statements for every table."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        + ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
        + ")"
        for table, columns in table_columns().items()
    ]


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and add columns a file made by an older version lacks.

    Columns are only ever added (never dropped or retyped), so an old file keeps every row and a
    newer version reads it; rows stored before a column existed hold NULL there.
    """
    for statement in schema_ddl():
        con.execute(statement)
    for table, columns in table_columns().items():
        present = {
            row[0]
            for row in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
            ).fetchall()
        }
        for name, sql_type in columns.items():
            if name not in present:
                plain = sql_type.replace(" PRIMARY KEY", "")
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {plain}")
