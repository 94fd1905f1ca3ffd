"""The run store: every finished run, its tables and its metrics in one DuckDB file.

Split by job: ``schema`` (tables, migrations), ``ids`` (run IDs and the code version),
``connection`` (finding, checking and opening the file around other processes' locks),
``writer`` (one transaction per run or batch), ``reader``, ``sql`` (the read-only SQL box),
``transfer`` (Parquet export, DuckDB export/import of whole runs) and ``records`` (pydantic
validation of what enters). Storage runs nothing: re-running a run to verify it is lab's job.
"""

from marl_market.store.connection import (
    DB_ENV,
    DEFAULT_DB_PATH,
    DEFAULT_TIMEOUT,
    check_readable,
    check_writable,
    default_db_path,
)
from marl_market.store.errors import ImportConflict, QueryRefused, StoreBusy, StoreError
from marl_market.store.ids import canonical_json, code_version, make_run_id
from marl_market.store.reader import Reader
from marl_market.store.schema import ALL_TABLES, DONE, RESULT_TABLES
from marl_market.store.sql import SqlBox
from marl_market.store.transfer import Transfer
from marl_market.store.writer import SLOW_SAVE_ENV, RunRecord


class RunStore(Transfer, Reader, SqlBox):
    """The DuckDB file holding all runs; safe to use from several processes at once.

    No connection is kept open: each method opens the file, works, and closes it, waiting (up to
    ``timeout`` seconds) while another process holds it.
    """


__all__ = [
    "ALL_TABLES",
    "DB_ENV",
    "DEFAULT_DB_PATH",
    "DEFAULT_TIMEOUT",
    "DONE",
    "RESULT_TABLES",
    "SLOW_SAVE_ENV",
    "ImportConflict",
    "QueryRefused",
    "RunRecord",
    "RunStore",
    "StoreBusy",
    "StoreError",
    "canonical_json",
    "check_readable",
    "check_writable",
    "code_version",
    "default_db_path",
    "make_run_id",
]
