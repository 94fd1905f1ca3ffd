"""The read-only SQL box: one SELECT over the run tables, nothing else.

Two layers enforce it: statements are parsed and only a single SELECT is let through, and the
connection itself is read-only with external access and configuration changes disabled, so
DuckDB refuses e.g. ``read_csv('/etc/passwd')``, ATTACH, COPY, INSTALL/LOAD and SET.
"""

from __future__ import annotations

import duckdb

from marl_market.store.connection import Connection, first_line
from marl_market.store.errors import QueryRefused, StoreError


class SqlBox(Connection):
    """Read-only queries for users (part of ``RunStore``)."""

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Run one read-only SELECT and return (column names, rows); else ``QueryRefused``."""
        check_select_only(sql)
        try:
            with self._read(missing_ok=True, restricted=True) as con:
                cursor = con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                return columns, cursor.fetchall()
        except (duckdb.PermissionException, duckdb.InvalidInputException) as exc:
            # DuckDB reports refused statements as permission or read-only/locked-config errors.
            message = str(exc)
            if isinstance(exc, duckdb.PermissionException) or _refusal_text(message):
                raise QueryRefused(f"query refused: {first_line(message)}") from exc
            raise StoreError(f"query failed: {first_line(message)}") from exc
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {first_line(str(exc))}") from exc


def check_select_only(sql: str) -> None:
    """Raise ``QueryRefused`` unless ``sql`` is exactly one SELECT statement."""
    # Parsing needs a connection but no database; a private in-memory one keeps global state out.
    with duckdb.connect(":memory:") as parser:
        try:
            statements = parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {first_line(str(exc))}") from exc
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


def _refusal_text(message: str) -> bool:
    return "read-only mode" in message or "configuration has been locked" in message
