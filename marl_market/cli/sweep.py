"""``marlsim sweep``: scenarios x a grid of market parameters x seeds, every run stored.

Each swept parameter takes a comma-separated list (``--makers 1,2,4 --tobin-tax 0,0.001``);
the sweep runs every combination with every ``--scenario`` on ``--seeds`` seeds from ``--seed``.
Runs already stored are skipped (run IDs follow config, seed and code), a task that fails is
reported with its parameters while the others go on, and Ctrl-C keeps every finished run.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marl_market.cli.common import (
    DbOption,
    JsonOption,
    check_backend,
    console,
    emit_json,
    fail,
    open_store,
)
from marl_market.scale.sweep import SWEEP_PARAMS, SWEEP_SCENARIOS, SweepSpec, run_sweep

app = typer.Typer()


def values_option(what: str) -> typer.Option:
    return typer.Option(help=f"{what}, comma-separated: one value per grid point (e.g. 1,2,4).",
                        show_default=False)  # fmt: skip


def parse_values(option: str, text: str, kind: type) -> tuple:
    """``"1,2,4"`` as (1, 2, 4) of ``kind``; one clear exit-2 line for anything else."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(kind(part))
        except ValueError:
            fail(f"{option}: {part!r} is not a{'n integer' if kind is int else ' number'}")
    if len(set(values)) != len(values):
        fail(f"{option}: a value is given twice")
    return tuple(values)


@app.command()
def sweep(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help=f"A scenario, repeatable: {' | '.join(SWEEP_SCENARIOS)} (default: baseline).",
            show_default=False,
        ),
    ] = None,
    makers: Annotated[str | None, values_option("Market makers")] = None,
    momentum: Annotated[str | None, values_option("Momentum traders")] = None,
    value: Annotated[str | None, values_option("Value traders")] = None,
    noise: Annotated[str | None, values_option("Noise traders")] = None,
    tobin_tax: Annotated[
        str | None,
        typer.Option(
            help="Tobin tax rates in force all run, fractions of notional (0.001 = 10 bp).",
            show_default=False,
        ),
    ] = None,  # fmt: skip
    taker_fee: Annotated[str | None, values_option("Taker fees, fractions of notional")] = None,
    maker_rebate: Annotated[
        str | None, values_option("Maker rebates, fractions of notional")
    ] = None,
    assets: Annotated[str | None, values_option("Assets")] = None,
    correlation: Annotated[
        str | None, values_option("Correlations of the assets' fundamentals")
    ] = None,
    seed: Annotated[int, typer.Option(help="The first seed.")] = 42,
    seeds: Annotated[int, typer.Option(help="Seeds per point: seed, seed+1, ...")] = 1,
    steps: Annotated[int, typer.Option(help="Steps per run.")] = 5_000,
    workers: Annotated[
        int | None,
        typer.Option(help="Local processes (default: every core).", show_default=False),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="local: a process pool on this machine; ray: Ray tasks on a cluster "
            "(pip install '.[ray]')."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="With --backend ray: the cluster's address (default: start a local Ray).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Sweep scenarios over a grid of market parameters and seeds; store every run."""
    given = {
        "makers": makers,
        "momentum": momentum,
        "value": value,
        "noise": noise,
        "tobin_tax": tobin_tax,
        "taker_fee": taker_fee,
        "maker_rebate": maker_rebate,
        "assets": assets,
        "correlation": correlation,
    }
    grid = tuple(
        (name, parse_values(f"--{name.replace('_', '-')}", text, SWEEP_PARAMS[name]))
        for name, text in given.items()
        if text is not None
    )
    if seeds < 1:
        fail(f"--seeds must be at least 1, got {seeds}")
    check_backend(backend, address, workers)
    try:
        spec = SweepSpec(
            scenarios=tuple(scenario or ("baseline",)),
            grid=grid,
            seeds=tuple(range(seed, seed + seeds)),
            steps=steps,
        )
    except ValueError as error:
        fail(str(error))
    store = open_store(db, for_writing=True)
    out = console(json_out)
    n_tasks = len(spec.tasks())
    out.print(
        f"sweep: {len(spec.points())} point(s) x {len(spec.scenarios)} scenario(s) x "
        f"{len(spec.seeds)} seed(s) = {n_tasks} run(s), {steps:,} steps each"
    )
    err = Console(stderr=True)
    with Progress(
        TextColumn("sweep"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("sweep", total=n_tasks)
        try:
            outcome = run_sweep(
                spec,
                store,
                workers,
                lambda done, total: bar.update(task, completed=done),
                backend=backend,
                address=address,
            )
        except KeyboardInterrupt:
            bar.stop()
            print(
                "sweep interrupted: every finished run is stored; run the same command again "
                "to finish it",
                file=sys.stderr,
            )
            raise typer.Exit(130) from None
    out.print(runs_table(outcome.runs))
    cached = len(outcome.runs) - outcome.ran
    out.print(
        f"{outcome.ran} run(s) made, {cached} already stored, {len(outcome.failed)} failed; "
        + (
            f"sweep {outcome.sweep_id} stored in {store.path}"
            if not outcome.failed
            else "the sweep is stored once every run succeeds"
        )
    )
    for failure in outcome.failed:
        out.print(f"failed: {failure['params']}: {failure['error']}")
    if json_out:
        emit_json(
            {
                "sweep_id": outcome.sweep_id,
                "db": str(store.path),
                "runs": [
                    {k: run[k] for k in ("run_id", "scenario", "seed", "params", "metrics")}
                    | {"cached": run["cached"]}
                    for run in outcome.runs
                ],
                "failed": outcome.failed,
            }
        )
    if outcome.failed:
        raise typer.Exit(1)


def runs_table(runs: list[dict]) -> Table:
    """One row per run: scenario, parameters, seed, run ID and a headline measure."""
    table = Table(title="sweep runs")
    for column in ("scenario", "parameters", "seed"):
        table.add_column(column)
    table.add_column("run ID", no_wrap=True, min_width=16)  # whole, to copy
    table.add_column("headline")
    table.add_column("stored before")
    for run in runs:
        metrics = run["metrics"]
        if run["scenario"] == "baseline":
            headline = f"kurtosis {metrics.get('excess_kurtosis', float('nan')):.2f}"
        else:
            name, value = next(iter(metrics.items()), ("-", float("nan")))
            headline = f"{name} {value:.3g}"
        params = ", ".join(f"{k}={v}" for k, v in run["params"].items()) or "default"
        table.add_row(
            run["scenario"],
            params,
            str(run["seed"]),
            run["run_id"],
            headline,
            "yes" if run["cached"] else "",
        )
    return table
