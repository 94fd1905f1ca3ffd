"""``marlsim runs ...``: list, show, query, export, import and verify stored runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from marl_market.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    open_store,
    scenario_table,
)
from marl_market.store import QueryRefused, StoreError, code_version

app = typer.Typer(help="List, show, query, export, import and verify stored runs.")

# What a list shows of every run, so runs can be told apart.
LIST_COLUMNS = (
    "run_id", "kind", "scenario", "population", "seed", "seeds", "n_steps", "created_at",
    "code_version",
)  # fmt: skip


@app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List stored runs, newest first: kind, scenario, agents, seed, steps, created, code."""
    rows = _read(lambda store: store.list_runs(limit=limit, kind=kind), db)
    if json_out:
        emit_json({"runs": [{k: r.get(k) for k in (*LIST_COLUMNS, "status")} for r in rows]})
        return
    table = Table(
        title=f"{len(rows)} run(s)",
        caption="agents: makers/momentum/value/noise (+ takers, arbs, learners); created in UTC",
        box=box.SIMPLE_HEAD,
    )
    for column in ("run ID", "kind", "scenario", "agents", "seed", "steps", "created", "code"):
        # Fold rather than cut, so every value shows in full; a run ID never wraps (it is
        # copied whole).
        table.add_column(column, overflow="fold", no_wrap=column == "run ID")
    for r in rows:
        table.add_row(
            r["run_id"],
            r["kind"],
            r["scenario"] or "",
            r["population"] or "",
            r["seeds"] or "",
            _blank(r["n_steps"]),
            str(r["created_at"])[:16],
            r["code_version"] or "",
        )
    console(False).print(table)


def _blank(value: object) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


@app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's ID.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one run: its config, summary and metrics, and whether this code made it."""
    store = open_store(db, for_writing=False)
    row = _read(lambda s: s.get_run(run_id), db, store)
    if row is None:
        fail(f"no run {run_id!r} in {store.path}")
    metrics = store.load_metrics(run_id)
    same_code = row["code_version"] == code_version()
    if json_out:
        emit_json({**row, "metrics": metrics, "made_by_current_code": same_code})
        return
    out = console(False)
    out.print(
        f"[bold]run {run_id}[/bold]  kind={row['kind']}  seed={row['seeds']}  "
        f"agents={row['population']}  steps={row['n_steps']}  "
        f"created={str(row['created_at'])[:19]} UTC  code={row['code_version']}"
    )
    summary = row.get("summary") or {}
    if row.get("scenario"):
        out.print(f"scenario: {row['scenario']}")
    for change in summary.get("interventions") or []:
        what = f"{change.get('action')} {change.get('changes') or ''}".strip()
        out.print(f"  intervention at step {change.get('step'):,}: {what}")
    if not same_code:
        out.print(
            f"made by different code: {row['code_version']} (this is {code_version()}); "
            f"`marlsim runs verify {run_id}` says whether it still reproduces"
        )
    if metrics:
        table = Table(title="metrics")
        table.add_column("name")
        table.add_column("value", justify="right")
        for name, value in sorted(metrics.items()):
            table.add_row(name, f"{value:.4g}")
        out.print(table)
    n_seeds = len((row.get("config") or {}).get("seeds") or [])
    for name, stats in (summary.get("summaries") or {}).items():  # a comparison's results
        out.print(scenario_table(name, stats, n_seeds))
    out.print_json(json.dumps(row["config"]))


@app.command("sql")
def runs_sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT over the run tables.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run a read-only SQL query (SELECT only; writes and file access are refused)."""
    store = open_store(db, for_writing=False)
    try:
        columns, rows = store.query(query)
    except QueryRefused as error:
        fail(str(error))
    except StoreError as error:
        fail(str(error), code=1)
    if json_out:
        emit_json({"columns": columns, "rows": [list(r) for r in rows]})
        return
    table = Table()
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(*(str(v) for v in r))
    console(False).print(table)


@app.command("export")
def runs_export(
    run_ids: Annotated[list[str], typer.Argument(help="The IDs of the runs to export.")],
    to: Annotated[Path, typer.Option("--to", help="New DuckDB file to write.", show_default=False)],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write runs with all their rows to a new DuckDB file a colleague can import."""
    store = open_store(db, for_writing=False)
    target = _read(lambda s: s.export_runs(run_ids, to.expanduser()), db, store)
    if json_out:
        emit_json({"exported": list(dict.fromkeys(run_ids)), "to": str(target)})
    else:
        print(f"wrote {len(set(run_ids))} run(s) to {target}", file=sys.stderr)


@app.command("import")
def runs_import(
    source: Annotated[Path, typer.Argument(help="A DuckDB file written by `runs export`.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Merge the runs of an exported file into the database (identical runs are skipped)."""
    store = open_store(db, for_writing=True)
    outcome = _read(lambda s: s.import_runs(source.expanduser()), db, store)
    if json_out:
        emit_json({**outcome, "db": str(store.path)})
        return
    console(False).print(
        f"imported {len(outcome['imported'])} run(s), skipped {len(outcome['skipped'])} "
        f"already stored, into {store.path}"
    )


@app.command("verify")
def runs_verify(
    run_id: Annotated[str, typer.Argument(help="The run's ID.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Re-run a stored run from its stored config and seed: is the result bit-identical?"""
    from marl_market.lab.verify import verify_run

    store = open_store(db, for_writing=False)
    verification = _read(lambda s: verify_run(s, run_id), db, store)
    if json_out:
        emit_json(verification.as_dict())
    else:
        console(False).print(verification.verdict())
    if not verification.identical:
        raise typer.Exit(1)


def _read(action, db, store=None):
    """Run ``action(store)``; a store error ends the command with one line (exit 2)."""
    store = store or open_store(db, for_writing=False)
    try:
        return action(store)
    except StoreError as error:
        fail(str(error))
