"""``marlsim calibrate``: fit behavioural parameters to a real market's stylised facts.

The target is the S&P 500's daily returns shipped with ``arch`` (``--target sp500``) or a CSV
column of prices (``--target-csv FILE``); the fit is ``scale.calibrate`` (simulated method of
moments, scipy's differential evolution, every candidate on ``--seeds`` markets run on the
sweep engine). Stored as one run of kind ``calibrate``; the same command again returns it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
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
from marl_market.core.numbers import fmt

app = typer.Typer()

MIN_PRICES = 200  # fewer prices give no meaningful ACF to lag 50 or tail index


def read_prices(path: Path) -> np.ndarray:
    """The prices of a CSV file: the column named close, adj close or price (any case), else the
    only column; one clear exit-2 line for anything unusable."""
    if not path.is_file():
        fail(f"--target-csv {path}: no such file")
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        fail(f"--target-csv {path}: cannot read it ({error})")
    if not rows:
        fail(f"--target-csv {path}: the file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(n) for n in ("close", "adj close", "price") if n in header), None)
    body = rows[1:]
    if column is None:
        if len(header) != 1:
            fail(f"--target-csv {path}: name the price column close, adj close or price")
        column = 0
        if _number(rows[0][0]) is not None:
            body = rows  # no header row
    prices = [_number(row[column]) if len(row) > column else None for row in body]
    if any(p is None for p in prices):
        line = prices.index(None) + 1 + (body is not rows)
        fail(f"--target-csv {path}: row {line} has no price")
    values = np.array(prices, dtype=np.float64)
    if len(values) < MIN_PRICES:
        fail(f"--target-csv {path}: {len(values)} prices; at least {MIN_PRICES} are needed")
    if not np.all(values > 0):
        fail(f"--target-csv {path}: prices must be positive")
    return values


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@app.command()
def calibrate(
    target: Annotated[
        str, typer.Option(help="sp500: S&P 500 daily returns 1999-2018 (shipped with arch).")
    ] = "sp500",
    target_csv: Annotated[
        Path | None,
        typer.Option(
            help="Fit to this CSV's prices instead (a close/price column).", show_default=False
        ),
    ] = None,  # fmt: skip
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="A parameter to fit, repeatable (default: noise_intensity, "
            "fundamental_volatility): noise_intensity, momentum_share, momentum_strength, "
            "value_share, value_strength, makers, fundamental_volatility.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Markets per candidate (seed, seed+1, ...).")] = 3,
    budget: Annotated[int, typer.Option(help="Candidates to evaluate at most.")] = 20,
    steps: Annotated[int, typer.Option(help="Steps per simulated market.")] = 10_000,
    seed: Annotated[int, typer.Option(help="First market seed and the optimiser's seed.")] = 42,
    workers: Annotated[
        int | None,
        typer.Option(help="Local processes (default: every core).", show_default=False),
    ] = None,
    backend: Annotated[str, typer.Option(help="local | ray (pip install '.[ray]').")] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --backend ray: the cluster.", show_default=False)
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Fit the market's behavioural parameters to a real market's stylised facts (SMM)."""
    from marl_market.scale.calibrate import DEFAULT_PARAMS, PARAMETERS, minimum_budget

    names = tuple(param or DEFAULT_PARAMS)
    for name in names:
        if name not in PARAMETERS:
            fail(f"--param: unknown parameter {name!r}; choose from {', '.join(PARAMETERS)}")
    if len(set(names)) != len(names):
        fail("--param: a parameter is given twice")
    if target_csv is None and target != "sp500":
        fail(f"--target: unknown target {target!r}; use sp500, or --target-csv FILE")
    if seeds < 2:
        fail(f"--seeds must be at least 2 (a CI needs two markets), got {seeds}")
    if budget < minimum_budget(len(names)):
        fail(
            f"--budget must be at least {minimum_budget(len(names))} for {len(names)} parameter(s)"
        )
    if steps < 2_000:
        fail(f"--steps must be at least 2000 (facts need a few hundred returns), got {steps}")
    check_backend(backend, address, workers)
    if target_csv is not None:
        prices = read_prices(target_csv.expanduser())
        returns, target_name = np.diff(np.log(prices)), f"csv:{target_csv.name}"
    else:
        from marl_market.lab.analysis import sp500_returns

        returns, target_name = sp500_returns(), "sp500"
    store = open_store(db, for_writing=True)
    out = console(json_out)
    out.print(
        f"calibrating {', '.join(names)} to {target_name}: up to {budget} candidates x "
        f"{seeds} markets of {steps:,} steps"
    )
    from marl_market.scale.calibrate import calibrate as fit

    result = fit(
        returns, target_name, names, seeds=seeds, budget=budget, steps=steps, seed=seed,
        store=store, workers=workers, backend=backend, address=address,
    )  # fmt: skip
    out.print(facts_table(result.facts))
    fitted = ", ".join(f"{k} = {fmt(v, '{:.4g}')}" for k, v in result.params.items())
    out.print(f"fitted: {fitted}; moment distance {result.distance:.3f}")
    out.print(
        f"run {result.run_id} "
        + ("(already stored, not recomputed) " if result.cached else "")
        + f"in {store.path}"
    )
    if json_out:
        emit_json(
            {
                "run_id": result.run_id,
                "params": result.params,
                "distance": result.distance,
                "facts": result.facts,
                "evaluations": result.evaluations,
                "cached": result.cached,
                "db": str(store.path),
            }
        )


def facts_table(facts: dict) -> Table:
    """Each moment: the target's value and the fitted market's mean [95% CI] over seeds."""
    table = Table(title="target vs fitted market (mean [95% CI] over seeds)")
    for column in ("moment", "target", "fitted market"):
        table.add_column(column, justify="left" if column == "moment" else "right")
    from marl_market.scale.calibrate import moment_names

    # A stored calibration's JSON keys come back sorted: show the moments in their own order.
    order = [n for n in moment_names() if n in facts["target"]]
    for name in order + [n for n in facts["target"] if n not in order]:
        value, sim = facts["target"][name], facts["simulated"][name]
        interval = f"{fmt(sim['mean'], '{:.3f}')} [{fmt(sim['ci_low'], '{:.3f}')}, "
        interval += f"{fmt(sim['ci_high'], '{:.3f}')}]"
        table.add_row(name.replace("_", " "), fmt(value, "{:.3f}"), interval)
    return table
