"""``marlsim``: the command line for scripted and batch work.

Every command takes ``--db PATH`` (default ``data/marl_market.duckdb``, env ``MARL_MARKET_DB``)
and ``--json``; with ``--json`` exactly one JSON object goes to stdout and everything else
(progress, tables) to stderr. Bad options exit with code 2 and one line on stderr, before
anything is simulated or written.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

try:  # typer >= 0.20 ships its own copy of click; its exceptions live there
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors

from marl_market.records import InputError, validate_scenario, validate_simulate
from marl_market.store import (
    DB_ENV,
    QueryRefused,
    RunStore,
    StoreError,
    check_writable,
    default_db_path,
)

app = typer.Typer(
    name="marlsim",
    help="marl-market: simulate markets of heterogeneous agents and study what emerges.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List, show and query stored runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help=f"DuckDB run database [default: $${DB_ENV} or data/marl_market.duckdb]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with one clear line on stderr."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _console(json_mode: bool) -> Console:
    """Where human-readable output goes: stderr when stdout is reserved for JSON."""
    return Console(stderr=json_mode, highlight=False)


def _emit_json(payload: dict) -> None:
    print(json.dumps(payload, default=_json_default, allow_nan=False))


def _json_default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: object) -> object:
    """NaN/inf become null so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _store(db: Path | None, *, for_writing: bool) -> RunStore:
    path = db if db is not None else default_db_path()
    if for_writing:
        try:
            path = check_writable(path)
        except StoreError as error:
            fail(str(error))
    return RunStore(path)


# ---------------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    steps: Annotated[int, typer.Option(help="Steps to simulate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same run).")] = 42,
    makers: Annotated[int, typer.Option(help="Market makers.")] = 2,
    momentum: Annotated[int, typer.Option(help="Momentum traders.")] = 4,
    value: Annotated[int, typer.Option(help="Value (fundamental) traders.")] = 3,
    noise: Annotated[int, typer.Option(help="Noise traders.")] = 4,
    return_interval: Annotated[
        int, typer.Option(help="Steps between sampled mid prices for returns.")
    ] = 5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Simulate the fixed-rule ecology and print its stylised facts beside the S&P 500's."""
    from marl_market.analysis import facts_table, sp500_reference
    from marl_market.experiments import run_simulation

    try:
        request = validate_simulate(
            steps=steps,
            seed=seed,
            makers=makers,
            momentum=momentum,
            value=value,
            noise=noise,
            return_interval=return_interval,
        )
    except InputError as error:
        fail(str(error))
    store = _store(db, for_writing=True)
    console = _console(json_out)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} steps"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=request.steps < 20_000,
    ) as bar:
        task = bar.add_task("simulate", total=request.steps)
        outcome = run_simulation(
            request.to_config(),
            request.seed,
            request.return_interval,
            store=store,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    reference = sp500_reference()
    table = Table(title=f"Stylised facts - run {outcome.run_id} (seed {request.seed})")
    for column in ("fact", "simulated", "S&P 500 daily 1999-2018"):
        table.add_column(column)
    for row in facts_table(outcome.facts, reference):
        table.add_row(*row)
    console.print(table)
    if outcome.cached:
        console.print(f"(already stored: run {outcome.run_id} was not recomputed)")
    if json_out:
        _emit_json(
            {
                "run_id": outcome.run_id,
                "seed": request.seed,
                "steps": request.steps,
                "cached": outcome.cached,
                "db": str(store.path),
                "facts": _clean(outcome.facts.as_dict()),
                "reference": {"sp500": _clean(reference.as_dict())},
            }
        )


# ---------------------------------------------------------------------------------- scenario
@app.command()
def scenario(
    kind: Annotated[
        str,
        typer.Option(
            help="flash_crash | short_ban | tobin_tax | stress | drought | shock | compare"
        ),
    ] = "compare",
    seed: Annotated[int, typer.Option(help="First seed.")] = 42,
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds [default: 20 for compare, else 1].")
    ] = None,
    steps: Annotated[int, typer.Option(help="Steps per run.")] = 5_000,
    pull_at: Annotated[
        int | None, typer.Option(help="Intervention step (the makers' pull) [default: mid-run].")
    ] = None,
    return_at: Annotated[
        int | None,
        typer.Option(help="Step the makers return in a flash crash [default: pull + 500]."),
    ] = None,
    tax_bp: Annotated[float, typer.Option(help="Tobin tax in basis points of notional.")] = 10.0,
    makers: Annotated[int, typer.Option(help="Market makers.")] = 2,
    momentum: Annotated[int, typer.Option(help="Momentum traders.")] = 4,
    value: Annotated[int, typer.Option(help="Value traders.")] = 3,
    noise: Annotated[int, typer.Option(help="Noise traders.")] = 4,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [default: all cores].")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run an intervention (or all of them) against a same-seed baseline, over many seeds."""
    from marl_market.experiments import resolve_scenario, run_scenarios

    try:
        request = validate_scenario(
            kind=kind,
            seed=seed,
            seeds=seeds,
            steps=steps,
            pull_at=pull_at,
            return_at=return_at,
            tax_bp=tax_bp,
            makers=makers,
            momentum=momentum,
            value=value,
            noise=noise,
            workers=workers,
        )
        scenarios = [
            resolve_scenario(k, request.steps, request.pull_at, request.return_at, request.tax_bp)
            for k in request.kinds
        ]
    except (InputError, ValueError) as error:
        fail(str(error))
    store = _store(db, for_writing=True)
    console = _console(json_out)
    with Progress(
        TextColumn(f"{request.kind}: seeds"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("seeds", total=request.seeds)
        outcome = run_scenarios(
            request.to_config(),
            scenarios,
            request.seed_list,
            store=store,
            workers=request.workers,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    for name in outcome.kinds:
        console.print(_scenario_table(name, outcome.summaries[name], len(outcome.seeds)))
    if outcome.run_id:
        console.print(f"compare stored as run {outcome.run_id}")
    if json_out:
        _emit_json(_clean(outcome.as_dict()))


def _scenario_table(name: str, summary: dict, n_seeds: int) -> Table:
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


# ---------------------------------------------------------------------------------- runs
@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """List stored runs, newest first."""
    rows = _store(db, for_writing=False).list_runs(limit=limit, kind=kind)
    if json_out:
        _emit_json({"runs": [_run_brief(r) for r in rows]})
        return
    table = Table(title=f"{len(rows)} run(s)")
    for column in ("run_id", "kind", "seed", "steps", "created_at (UTC)"):
        table.add_column(column)
    for r in rows:
        created = str(r["created_at"])[:19]
        table.add_row(r["run_id"], r["kind"], str(r["seed"]), str(r["n_steps"]), created)
    _console(False).print(table)


def _run_brief(row: dict) -> dict:
    keys = ("run_id", "kind", "seed", "status", "created_at", "code_version", "n_steps")
    return {k: row.get(k) for k in keys}


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's ID.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one run: its config, summary and metrics."""
    store = _store(db, for_writing=False)
    row = store.get_run(run_id)
    if row is None:
        fail(f"no run {run_id!r} in {store.path}")
    metrics = store.load_metrics(run_id)
    if json_out:
        _emit_json(_clean({**row, "metrics": metrics}))
        return
    console = _console(False)
    console.print(f"[bold]run {run_id}[/bold]  kind={row['kind']}  seed={row['seed']}")
    table = Table(title="metrics")
    table.add_column("name")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    console.print_json(json.dumps(_clean(row["config"])))


@runs_app.command("sql")
def runs_sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT over the run tables.")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run a read-only SQL query (SELECT only; writes and file access are refused)."""
    store = _store(db, for_writing=False)
    try:
        columns, rows = store.query(query)
    except QueryRefused as error:
        fail(str(error))
    except StoreError as error:
        fail(str(error), code=1)
    if json_out:
        _emit_json(_clean({"columns": columns, "rows": [list(r) for r in rows]}))
        return
    table = Table()
    for column in columns:
        table.add_column(column)
    for r in rows:
        table.add_row(*(str(v) for v in r))
    _console(False).print(table)


# ---------------------------------------------------------------------------------- the app
def _app_script() -> Path:
    """``app.py``, which lives at the repository root next to the package (not inside it)."""
    import marl_market

    script = Path(marl_market.__file__).resolve().parents[1] / "app.py"
    if not script.is_file():
        fail(
            f"the app is not installed: {script} is missing (marlsim dashboard needs a source "
            "checkout installed with `pip install -e .`; or run `streamlit run app.py` there)"
        )
    return script


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "localhost",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    headless: Annotated[
        bool, typer.Option("--headless", help="Do not open a browser window.")
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Start the lab in the browser (the Streamlit app) on HOST:PORT."""
    import os

    if not 1 <= port <= 65_535:
        fail(f"--port must be between 1 and 65535, got {port}")
    if not host.strip():
        fail("--host must not be empty")
    script = _app_script()
    try:
        path = check_writable(db if db is not None else default_db_path())
    except StoreError as error:
        fail(str(error))
    env = {**os.environ, DB_ENV: str(path)}  # the app opens the same database as this command
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.address", host, "--server.port", str(port),
    ]  # fmt: skip
    if headless:
        command += ["--server.headless", "true"]
    url = f"http://{host}:{port}"
    if json_out:
        _emit_json({"url": url, "app": str(script), "db": str(path)})
    else:
        print(f"marl-market lab on {url} (database {path}); Ctrl+C stops it", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if json_out:  # stdout holds exactly one JSON object: Streamlit's own output goes to stderr
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Become the server (no child process): Ctrl+C and kill reach Streamlit itself, and nothing
    # is left running behind a dead parent.
    os.execve(sys.executable, command, env)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="The run's ID.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.", show_default=False)],
    book: Annotated[
        bool, typer.Option(help="Replay the run to include its order-book heatmap.")
    ] = True,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write a self-contained HTML report of a stored run (works offline)."""
    import os
    import tempfile

    from marl_market.report import build_report

    store = _store(db, for_writing=False)
    if store.get_run(run_id) is None:
        fail(f"no run {run_id!r} in {store.path}")
    target = out.expanduser().absolute()
    if target.is_dir():
        fail(f"--out {target} is a directory; give a file name such as report.html")
    if not target.parent.is_dir():
        fail(f"cannot write {target}: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        fail(f"cannot write {target}: permission denied")
    document = build_report(store, run_id, book=book)
    # Written next to the target and renamed over it: a failure leaves no half-written report.
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(document)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        fail(f"cannot write {target}: {error.strerror or error}")
    size = target.stat().st_size
    if json_out:
        _emit_json({"run_id": run_id, "out": str(target), "bytes": size})
    else:
        print(f"wrote {target} ({size / 1e6:.1f} MB)", file=sys.stderr)


def main() -> None:
    """Entry point: usage errors become one line on stderr with exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="marlsim", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:
        # Bare ``marlsim`` or ``marlsim runs``: show the help, as a user expects.
        print(error.ctx.get_help() if error.ctx else "", file=sys.stderr)
        sys.exit(2)
    except click_errors.UsageError as error:
        print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(2)
    except click_errors.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(130)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
