"""``marlsim bench``: every speed and memory figure of issue 9 in one run, peers optional.

Our book (``submit(Order)``, ``submit_fast``) against the in-repo plain book on one seeded
stream, the default market's steps/s, the rmsc04-sized and zero-intelligence crowds' book
events/s, the multi-seed compare's wall time and a 1,000,000-step run's peak RSS; with
``--abides`` / ``--pymarketsim`` the same workloads on a peer checkout, run in its own process
in this run, and the ratios. ``--json`` prints one JSON object on stdout; progress goes to
stderr. The bench writes no database of the user's: ``--db`` is accepted (every command takes
it) but the compare runs into a temporary database that is deleted afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from marl_market.cli.common import DbOption, JsonOption, emit_json, fail

app = typer.Typer()


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Under a minute: fewer compare seeds, shorter peer runs, no 1M-step memory run.",
        ),
    ] = False,
    abides: Annotated[
        Path | None,
        typer.Option(
            help="An ABIDES checkout (the folder holding abides-core/ and abides-markets/) to "
            "run side by side."
        ),
    ] = None,
    abides_python: Annotated[
        str | None,
        typer.Option(
            help="The interpreter ABIDES runs under (default: this one); it needs numpy<2 and "
            "pandas<2."
        ),
    ] = None,
    pymarketsim: Annotated[
        Path | None,
        typer.Option(help="A PyMarketSim checkout (the folder holding marketsim/)."),
    ] = None,
    pymarketsim_python: Annotated[
        str | None,
        typer.Option(
            help="The interpreter PyMarketSim runs under (default: this one); it needs torch "
            "and fastcubicspline."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the order stream and the markets.")] = 42,
    scale: Annotated[float, typer.Option(hidden=True)] = 1.0,  # shrinks every workload (tests)
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Measure the book, the market, the crowds, the compare and memory (and peers, if given)."""
    from marl_market.bench.book import EnginesDisagree
    from marl_market.bench.peers import PeerOptionError
    from marl_market.bench.suite import BenchOptions, check_peers, peer_failures, run_bench
    from marl_market.bench.table import format_table

    del db  # accepted per the CLI contract; the bench never writes the user's database
    if not 0 < scale <= 1:
        fail(f"--scale must be in (0, 1], got {scale}")
    if seed < 0:
        fail(f"--seed must be non-negative, got {seed}")
    options = BenchOptions(
        quick=quick,
        scale=scale,
        seed=seed,
        abides=abides,
        abides_python=abides_python,
        pymarketsim=pymarketsim,
        pymarketsim_python=pymarketsim_python,
    )
    try:
        check_peers(options)
    except PeerOptionError as error:
        fail(str(error))

    def log(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    try:
        result = run_bench(options, log)
    except EnginesDisagree as error:
        fail(f"the book engines disagree: {error}", code=1)
    if json_out:
        emit_json(result)
    else:
        print(format_table(result))
    failures = peer_failures(result)
    if failures:
        fail("; ".join(failures), code=1)
