"""``marlsim simulate`` and ``marlsim scenario``: run markets and interventions, store them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from marl_market.cli.common import (
    DbOption,
    JsonOption,
    MakersOption,
    MomentumOption,
    NoiseOption,
    ValueOption,
    console,
    emit_json,
    fail,
    open_store,
    scenario_table,
)
from marl_market.core.config import TAKER_STYLES, TakerParams
from marl_market.core.numbers import fmt
from marl_market.store.records import (
    SCENARIO_CHOICES,
    InputError,
    validate_scenario,
    validate_simulate,
)

app = typer.Typer()


# ---------------------------------------------------------------------------------- simulate
@app.command()
def simulate(
    steps: Annotated[int, typer.Option(help="Steps to simulate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same run).")] = 42,
    makers: MakersOption = 2,
    momentum: MomentumOption = 4,
    value: ValueOption = 3,
    noise: NoiseOption = 4,
    return_interval: Annotated[
        int, typer.Option(help="Steps between sampled mid prices for returns.")
    ] = 5,
    assets: Annotated[int, typer.Option(help="Assets, each with its own book.")] = 1,
    venues: Annotated[
        int,
        typer.Option(
            help="Venues each asset is listed on: a book per asset and venue, the venues of an "
            "asset sharing its fundamental (arbitrageurs then trade across venues)."
        ),
    ] = 1,
    correlation: Annotated[
        float | None,
        typer.Option(help="Correlation of every pair of assets' fundamental shocks, in (-1, 1)."),
    ] = None,
    correlation_matrix: Annotated[
        Path | None,
        typer.Option(
            help="JSON file with the assets' correlation matrix (a list of rows).",
            show_default=False,
        ),
    ] = None,
    regime_switch: Annotated[
        float,
        typer.Option(help="Per-step probability of leaving the current regime (normal/stress)."),
    ] = 0.0,
    maker_rebate: Annotated[
        float,
        typer.Option(help="Rebate to the resting side, a fraction of notional (0.0002 = 2 bp)."),
    ] = 0.0,
    taker_fee: Annotated[
        float,
        typer.Option(help="Fee paid by the aggressor, a fraction of notional (0.0002 = 2 bp)."),
    ] = 0.0,
    takers: Annotated[
        int,
        typer.Option(help="Execution takers: each buys (even) or sells (odd) a target."),
    ] = 0,
    taker_target: Annotated[
        int, typer.Option(help="Shares each execution taker must buy or sell.")
    ] = TakerParams().target,
    taker_style: Annotated[
        str, typer.Option(help=f"How takers work their target: {' | '.join(TAKER_STYLES)}.")
    ] = TakerParams().style,
    taker_horizon: Annotated[
        int, typer.Option(help="Steps the takers have for their target (capped at the run).")
    ] = TakerParams().horizon,
    arbs: Annotated[
        int, typer.Option(help="Pair arbitrageurs (need --assets 2 or more, or --venues 2).")
    ] = 0,
    calibration: Annotated[
        str | None,
        typer.Option(
            help="Simulate the market a stored calibration (marlsim calibrate) fitted: its "
            "parameters replace the options' values.",
            metavar="RUN_ID",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Simulate the fixed-rule ecology and print its stylised facts beside the S&P 500's."""
    from marl_market.lab.analysis import facts_table, sp500_reference
    from marl_market.lab.experiments import run_simulation

    try:
        request = validate_simulate(
            steps=steps,
            seed=seed,
            makers=makers,
            momentum=momentum,
            value=value,
            noise=noise,
            return_interval=return_interval,
            assets=assets,
            venues=venues,
            correlation=correlation,
            correlation_matrix=_read_matrix(correlation_matrix),
            regime_switch=regime_switch,
            maker_rebate=maker_rebate,
            taker_fee=taker_fee,
            takers=takers,
            taker_target=taker_target,
            taker_style=taker_style,
            taker_horizon=taker_horizon,
            arbs=arbs,
        )
    except InputError as error:
        fail(str(error))
    config = request.to_config()
    fitted = None
    if calibration is not None:
        from marl_market.scale.calibrate import fitted_params, with_params

        try:
            fitted = fitted_params(open_store(db, for_writing=False), calibration)
        except ValueError as error:
            fail(str(error))
        config = with_params(config, fitted)
    store = open_store(db, for_writing=True)
    out = console(json_out)
    if fitted is not None:
        out.print(f"the market calibration {calibration} fitted: {fitted}")
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
            config,
            request.seed,
            request.return_interval,
            store=store,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    reference = sp500_reference()
    table = Table(
        title=f"Stylised facts (seed {request.seed}, {request.steps:,} steps)",
        caption="S&P 500: daily returns 1999-2018",
    )
    table.add_column("fact", no_wrap=True)
    table.add_column("simulated", justify="right", no_wrap=True)
    table.add_column("S&P 500", justify="right", no_wrap=True)
    for row in facts_table(outcome.facts, reference):
        table.add_row(*row)
    out.print(table)
    market = outcome.market
    if len(market.get("assets", [])) > 1:
        for entry, facts in zip(market["assets"], outcome.asset_facts, strict=True):
            out.print(
                f"{book_label(entry)}: excess kurtosis {fmt(facts.excess_kurtosis)}, ACF |r| lag 1 "
                f"{fmt(facts.acf_abs[0], '{:.3f}')}, mean spread {fmt(facts.mean_spread_ticks)}"
            )
        matrix = market["fundamental_correlation"]
        rows = "; ".join(" ".join(f"{x:+.2f}" for x in row) for row in matrix)
        out.print(f"correlation of the simulated fundamentals' returns: {rows}")
    if request.regime_switch > 0:
        out.print(
            f"stress regime: {market['regime_stress_share']:.0%} of the steps, "
            f"{market['regime_switches']} switches"
        )
    execution = market.get("execution", [])  # runs stored before takers existed have none
    fees = market.get("fees") or {"taker_fees": 0.0, "maker_rebates": 0.0, "taxes": 0.0}
    if execution:
        out.print(execution_table(execution))
    if any(fees.values()):
        out.print(
            f"venue charges (ticks x shares): taker fees {fees['taker_fees']:,.0f}, "
            f"maker rebates {fees['maker_rebates']:,.0f}, taxes {fees.get('taxes', 0.0):,.0f}"
        )
    stored = "already stored, not recomputed" if outcome.cached else "stored"
    out.print(f"run {outcome.run_id} ({stored}) in {store.path}")
    if json_out:
        emit_json(
            {
                "run_id": outcome.run_id,
                "seed": request.seed,
                "steps": request.steps,
                "cached": outcome.cached,
                "db": str(store.path),
                "facts": outcome.facts.as_dict(),
                "reference": {"sp500": reference.as_dict()},
                **market,  # assets, fundamental_correlation, regime share and switches
                "execution": execution,
                "fees": fees,
                **({"calibration": {"run_id": calibration, "params": fitted}} if fitted else {}),
            }
        )


def book_label(entry: dict) -> str:
    """A book of ``market_summary``'s ``assets``: ``asset 2``, or ``book 3 (asset 1, venue 1)``
    when the assets are listed on several venues."""
    if "venue" not in entry:
        return f"asset {entry['asset']}"
    return f"book {entry['asset']} (asset {entry['fundamental']}, venue {entry['venue']})"


def execution_table(execution: list[dict]) -> Table:
    """Each execution taker's parent order: what it had to do, what it did, what it cost."""
    table = Table(title="Execution takers (shortfall against the arrival mid)")
    for column in ("agent", "asset", "style", "side", "target", "filled", "shortfall (bp)"):
        table.add_column(column, justify="left" if column in ("style", "side") else "right")
    for row in execution:
        table.add_row(
            str(row["agent"]),
            str(row["asset"]),
            row["style"],
            row["side"],
            f"{row['target']:,}",
            f"{row['filled']:,}",
            fmt(row["shortfall_bp"], "{:+.2f}"),
        )
    return table


def _read_matrix(path: Path | None) -> list | None:
    """The correlation matrix in a JSON file (checked by the request's validation)."""
    if path is None:
        return None
    try:
        matrix = json.loads(path.expanduser().read_text())
    except OSError as error:
        fail(f"--correlation-matrix {path}: {error.strerror or error}")
    except ValueError as error:
        fail(f"--correlation-matrix {path}: not JSON ({error})")
    if not isinstance(matrix, list) or not all(isinstance(row, list) for row in matrix):
        fail(
            f"--correlation-matrix {path}: expected a JSON list of rows, e.g. [[1, 0.5], [0.5, 1]]"
        )
    return matrix


# ---------------------------------------------------------------------------------- scenario
@app.command()
def scenario(
    kind: Annotated[
        str,
        typer.Option(help=" | ".join(SCENARIO_CHOICES)),
    ] = "compare",
    seed: Annotated[int, typer.Option(help="First seed.")] = 42,
    seeds: Annotated[
        int | None, typer.Option(help="Number of seeds (default: 20 for compare, else 1).")
    ] = None,
    steps: Annotated[int, typer.Option(help="Steps per run.")] = 5_000,
    pull_at: Annotated[
        int | None,
        typer.Option(help="Intervention step, e.g. the makers' pull (default: mid-run)."),
    ] = None,
    return_at: Annotated[
        int | None,
        typer.Option(help="Step the makers return in a flash crash (default: pull + 500)."),
    ] = None,
    tax_bp: Annotated[float, typer.Option(help="Tobin tax in basis points of notional.")] = 10.0,
    makers: MakersOption = 2,
    momentum: MomentumOption = 4,
    value: ValueOption = 3,
    noise: NoiseOption = 4,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: all cores).")
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Run an intervention (or all of them) against a same-seed baseline, over many seeds."""
    from marl_market.lab.experiments import resolve_scenario, run_scenarios

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
    store = open_store(db, for_writing=True)
    out = console(json_out)
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
        out.print(scenario_table(name, outcome.summaries[name], len(outcome.seeds)))
    if outcome.run_id:
        out.print(f"compare stored as run {outcome.run_id} in {store.path}")
    else:
        for name, ids in outcome.run_ids.items():
            out.print(f"{name} run(s) {', '.join(ids)} stored in {store.path}")
    if json_out:
        emit_json(outcome.as_dict())
