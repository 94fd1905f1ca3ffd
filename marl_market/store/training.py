"""Training runs in the store: one ``runs`` row of kind ``train``, written iteration by iteration.

A simulation is saved once, finished (``writer``); a training run is long and may be stopped,
so it is written as it goes: ``start_training`` inserts its row with status ``running``, each
``record_iteration`` adds that iteration's log rows, market rows and checkpoint in one
transaction (so a crash leaves whole iterations only), ``set_training_status`` marks it
``stopped`` (resumable), and ``finish_training`` stores the evaluation and metrics and sets
``done``; only then do ``marlsim runs list/show`` see it. Nothing here knows about torch: the
trainer (``rl.runs``) turns its logs into plain rows first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from marl_market.store.connection import scalar
from marl_market.store.errors import StoreError
from marl_market.store.ids import canonical_json
from marl_market.store.reader import Reader
from marl_market.store.schema import DONE, RUN_COLUMNS, TRAINING_TABLES
from marl_market.store.writer import Writer, bulk_insert, metric_table

TRAIN_KIND = "train"
RUNNING = "running"
STOPPED = "stopped"  # stopped by the user (or interrupted): resumable from its last checkpoint
FAILED = "failed"  # an error ended it: resumable too, once the cause is fixed


class TrainingStore(Writer, Reader):
    """The run database, with the operations a training run needs."""

    def training_row(self, run_id: str) -> dict | None:
        """The ``runs`` row of a training run in any status (config and summary parsed)."""
        with self._read() as con:
            if con is None:
                return None
            cursor = con.execute(
                "SELECT * FROM runs WHERE run_id = ? AND kind = ?", [run_id, TRAIN_KIND]
            )
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        if not rows:
            return None
        row = dict(zip(columns, rows[0], strict=True))
        for key in ("config", "summary"):
            if row[key] is not None:
                row[key] = json.loads(row[key])
        return row

    def start_training(
        self,
        run_id: str,
        seed: int,
        config: dict,
        code_version: str,
        n_steps: int | None = None,
        n_assets: int | None = None,
    ) -> None:
        """Insert the run's row with status ``running``, or set a stopped one running again.

        A finished run is refused (``StoreError``): it is returned, never trained again.
        """
        row = [
            run_id,
            TRAIN_KIND,
            int(seed),
            canonical_json(config),
            RUNNING,
            datetime.now(UTC).replace(tzinfo=None),
            code_version,
            None,
            None,
            n_steps,
            n_assets,
        ]
        with self._write() as con:
            status = scalar(con, "SELECT status FROM runs WHERE run_id = ?", [run_id])
            if status == DONE:
                raise StoreError(f"run {run_id} is already trained and evaluated")
            if status is None:
                placeholders = ", ".join("?" * len(RUN_COLUMNS))
                con.execute(f"INSERT INTO runs VALUES ({placeholders})", row)
            else:
                con.execute("UPDATE runs SET status = ? WHERE run_id = ?", [RUNNING, run_id])

    def record_iteration(
        self,
        run_id: str,
        iteration: int,
        logs: Sequence[tuple[str, str, float]],
        market: Sequence[tuple[int, str, float]],
        checkpoint_path: str,
        checkpoint_sha256: str,
    ) -> None:
        """Iteration ``iteration`` (from 0) finished: its (type, name, value) log rows, its
        (asset, name, value) market rows and the checkpoint taken after it, in one transaction.

        The checkpoint's row holds ``iteration + 1``, the iterations it has done (what a run
        resumed from it starts at). Rows of this iteration or later left by an earlier attempt
        (a run resumed from an older checkpoint) are replaced."""
        log_table = pa.table(
            {
                "iteration": pa.array([iteration] * len(logs), type=pa.int64()),
                "agent_type": pa.array([str(r[0]) for r in logs], type=pa.string()),
                "name": pa.array([str(r[1]) for r in logs], type=pa.string()),
                "value": pa.array([float(r[2]) for r in logs], type=pa.float64()),
            }
        )
        market_table = pa.table(
            {
                "iteration": pa.array([iteration] * len(market), type=pa.int64()),
                "asset": pa.array([int(r[0]) for r in market], type=pa.int64()),
                "name": pa.array([str(r[1]) for r in market], type=pa.string()),
                "value": pa.array([float(r[2]) for r in market], type=pa.float64()),
            }
        )
        checkpoint = pa.table(
            {
                "iteration": pa.array([iteration + 1], type=pa.int64()),
                "path": pa.array([str(checkpoint_path)], type=pa.string()),
                "sha256": pa.array([checkpoint_sha256], type=pa.string()),
                "created_at": pa.array(
                    [datetime.now(UTC).replace(tzinfo=None)], type=pa.timestamp("us")
                ),
            }
        )
        with self._write() as con:
            self._require_training(con, run_id)
            for table, first in (
                ("train_logs", iteration),
                ("train_market", iteration),
                ("train_checkpoints", iteration + 1),
            ):
                con.execute(
                    f"DELETE FROM {table} WHERE run_id = ? AND iteration >= ?", [run_id, first]
                )
            bulk_insert(con, "train_logs", run_id, log_table)
            bulk_insert(con, "train_market", run_id, market_table)
            bulk_insert(con, "train_checkpoints", run_id, checkpoint)

    def set_training_status(self, run_id: str, status: str) -> None:
        """Mark an unfinished training run ``running``, ``stopped`` or ``failed``."""
        if status not in (RUNNING, STOPPED, FAILED):
            raise StoreError(f"unknown training status {status!r}")
        with self._write() as con:
            self._require_training(con, run_id)
            con.execute(
                "UPDATE runs SET status = ? WHERE run_id = ? AND status <> ?",
                [status, run_id, DONE],
            )

    def finish_training(self, run_id: str, summary: dict, metrics: Mapping[str, float]) -> None:
        """Store the run's summary (its evaluation) and metrics, and mark it ``done``."""
        summary_json = canonical_json(summary)
        metrics_table = metric_table(metrics)
        with self._write() as con:
            self._require_training(con, run_id)
            con.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
            bulk_insert(con, "metrics", run_id, metrics_table)
            con.execute(
                "UPDATE runs SET status = ?, summary = ? WHERE run_id = ?",
                [DONE, summary_json, run_id],
            )

    def load_training_table(self, table: str, run_id: str) -> dict[str, np.ndarray]:
        """One of ``TRAINING_TABLES`` for a run, in iteration order, as numpy columns."""
        if table not in TRAINING_TABLES:
            raise StoreError(f"not a training table: {table!r}")
        columns = list(TRAINING_TABLES[table])
        with self._read() as con:
            if con is None:
                raise StoreError(f"no training run {run_id!r} in {self.path}")
            self._require_training(con, run_id)
            data = con.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ? "
                "ORDER BY iteration, rowid",
                [run_id],
            ).fetchnumpy()
        return {name: np.asarray(data[name]) for name in columns}

    def _require_training(self, con, run_id: str) -> None:
        sql = "SELECT count(*) FROM runs WHERE run_id = ? AND kind = ?"
        if not scalar(con, sql, [run_id, TRAIN_KIND]):
            raise StoreError(f"no training run {run_id!r} in {self.path}")
