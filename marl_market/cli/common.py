"""What every ``marlsim`` command shares: the --db and --json options, the population options,
one-line errors, JSON output and opening the run database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from marl_market.core.numbers import finite_or_none
from marl_market.store import (
    DB_ENV,
    RunStore,
    StoreError,
    check_readable,
    check_writable,
    default_db_path,
)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help=f"DuckDB run database (default: ${DB_ENV} or data/marl_market.duckdb)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

# The population, as every simulating command takes it.
MakersOption = Annotated[int, typer.Option(help="Market makers.")]
MomentumOption = Annotated[int, typer.Option(help="Momentum traders.")]
ValueOption = Annotated[int, typer.Option(help="Value (fundamental) traders.")]
NoiseOption = Annotated[int, typer.Option(help="Noise traders.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with one clear line on stderr."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def console(json_mode: bool) -> Console:
    """Where human-readable output goes: stderr when stdout is reserved for JSON."""
    return Console(stderr=json_mode, highlight=False)


def emit_json(payload: dict) -> None:
    """Print ``payload`` as the command's one JSON object (NaN and inf become null)."""
    print(json.dumps(finite_or_none(payload), default=_json_default, allow_nan=False))


def _json_default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def open_store(db: Path | None, *, for_writing: bool) -> RunStore:
    """The run database of ``--db`` (or the default), checked before any work is done.

    A command that writes needs a path where a database can be created or written; one that
    only reads needs an existing DuckDB file (a typo must not look like an empty database, and
    nothing is created). Either way a bad path ends the command with one line and exit 2.
    """
    path = db if db is not None else default_db_path()
    try:
        path = check_writable(path) if for_writing else check_readable(path)
    except StoreError as error:
        fail(str(error))
    return RunStore(path)


def scenario_table(name: str, summary: dict, n_seeds: int) -> Table:
    """A scenario's comparison with its baseline: per metric, means and the paired 95% CI."""
    table = Table(title=f"{name} vs baseline ({n_seeds} seed(s), 95% CI of the difference)")
    for column in ("metric", "scenario", "baseline", "difference [95% CI]", "expected sign"):
        table.add_column(column)
    for metric, s in summary.items():
        if s["mean"] is None:
            table.add_row(metric, "n/a", "n/a", "n/a", "")
            continue
        ci = "" if s["ci_low"] is None else f" [{s['ci_low']:.3g}, {s['ci_high']:.3g}]"
        sign = "" if not s["documented"] else ("+" if s["expected_sign"] > 0 else "-")
        share = f"{sign} on {s['sign_fraction']:.0%}" if sign else ""
        table.add_row(
            metric,
            f"{s['mean']:.3g}",
            f"{s['baseline_mean']:.3g}",
            f"{s['diff_mean']:+.3g}{ci}",
            share,
        )
    return table


def check_backend(backend: str, address: str | None, workers: int | None = None) -> None:
    """``--backend`` / ``--address`` / ``--workers`` of a command that runs tasks on
    ``lab.engine``: one exit-2 line for a bad combination or a Ray that is not installed."""
    from marl_market.lab.engine import BACKENDS, import_ray

    if backend not in BACKENDS:
        fail(f"--backend: unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        fail("--address is the Ray cluster's: give it with --backend ray")
    if backend == "ray" and workers is not None:
        fail("--workers sets the local pool: the Ray cluster schedules its own workers")
    if workers is not None and workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if backend == "ray":
        try:
            import_ray()
        except ValueError as error:
            fail(str(error))
