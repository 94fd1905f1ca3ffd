"""``marlsim``: the command line for scripted and batch work.

Every command takes ``--db PATH`` (default ``data/marl_market.duckdb``, env ``MARL_MARKET_DB``)
and ``--json``; with ``--json`` exactly one JSON object goes to stdout and everything else
(progress, tables) to stderr. Bad options exit with code 2 and one line on stderr, before
anything is simulated or written. One module per command group: ``simulate`` (simulate,
scenario), ``sweep`` (scenarios over a parameter grid and seeds), ``train`` (independent PPO,
evaluated against the fixed agents), ``runs``,
``dashboard`` (dashboard, report), ``bench``.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 ships its own copy of click; its exceptions live there
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors

from marl_market.cli import bench, calibrate, dashboard, runs, simulate, sweep, train
from marl_market.store import StoreError

app = typer.Typer(
    name="marlsim",
    help="marl-market: simulate markets of heterogeneous agents and study what emerges.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for group in (simulate, sweep, calibrate, train, dashboard, bench):
    app.registered_commands += group.app.registered_commands
app.add_typer(runs.app, name="runs", no_args_is_help=True)


def main() -> None:
    """Entry point: usage and store errors become one line on stderr with exit code 2."""
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
    except click_errors.ClickException as error:
        print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except StoreError as error:  # a database that cannot be used as asked
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, EOFError):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
