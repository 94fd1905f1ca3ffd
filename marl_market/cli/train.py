"""``marlsim train``: independent PPO on the liquidity game, stored and evaluated under one run ID.

Everything is checked before anything is trained or written: conflicting options, unknown types
or encoders, a run to resume that is not stored, a CSV path that cannot be written all end the
command with one line and exit 2. torch is imported only once the options are good.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marl_market.cli.common import DbOption, JsonOption, console, emit_json, fail, open_store
from marl_market.core.config import LEARNER_KINDS
from marl_market.core.numbers import fmt, is_number
from marl_market.store import StoreError, check_readable, default_db_path

app = typer.Typer()

PRESET_NAMES = ("single_maker", "maker_taker", "multi_asset_gnn")  # rl.runs.PRESETS' keys
ENCODER_NAMES = ("mlp", "sage", "gat")  # rl.nets.ENCODERS


@app.command()
def train(
    learners: Annotated[
        list[str] | None,
        typer.Option(
            "--learners",
            help=f"A learning type, repeatable ({', '.join(LEARNER_KINDS)}); the others stay "
            "fixed-rule. Default: maker.",
            show_default=False,
        ),
    ] = None,
    everyone: Annotated[
        bool,
        typer.Option(
            "--everyone",
            help="Every type learns (arb only with --assets 2 or more: it trades a pair).",
        ),
    ] = False,
    encoder: Annotated[
        str | None,
        typer.Option(help=f"Observation encoder: {' | '.join(ENCODER_NAMES)} (default: mlp)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=f"One of spec 000's experiments: {' | '.join(PRESET_NAMES)}."),
    ] = None,
    assets: Annotated[int | None, typer.Option(help="Assets (default: 1).")] = None,
    iterations: Annotated[
        int | None, typer.Option(help="PPO iterations (default: the trainer's).")
    ] = None,
    episode_steps: Annotated[
        int | None, typer.Option(help="Market steps per episode (default: the trainer's).")
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(help="Episodes per iteration (default: the trainer's)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed (default: 42).")] = None,
    eval_seeds: Annotated[
        int | None,
        typer.Option(help="Held-out seeds of the paired evaluation, 1..N (default: 40)."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue this stopped run from its latest checkpoint.", metavar="RUN_ID"
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(help="Also write the per-iteration log to this CSV file.", show_default=False),
    ] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Train learning agents with independent PPO, then evaluate them against the fixed-rule
    agents on held-out seeds (paired: mean MTM difference with its 95% CI, wins out of N)."""
    overrides = {
        "encoder": encoder,
        "n_assets": assets,
        "iterations": iterations,
        "episode_steps": episode_steps,
        "episodes_per_iteration": episodes,
        "seed": seed,
    }
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if resume is not None:
        given = [
            flag
            for flag, value in (
                ("--learners", learners),
                ("--everyone", everyone or None),
                ("--preset", preset),
                ("--encoder", encoder),
                ("--assets", assets),
                ("--iterations", iterations),
                ("--episode-steps", episode_steps),
                ("--episodes", episodes),
                ("--seed", seed),
                ("--eval-seeds", eval_seeds),
            )
            if value is not None
        ]
        if given:
            fail(f"--resume continues a run with its stored settings: drop {', '.join(given)}")
    if preset is not None and (learners or everyone):
        fail("--preset sets the learners itself: give --preset or --learners/--everyone")
    if everyone and learners:
        fail("--everyone already makes every type learn: give --everyone or --learners")
    if preset is not None and preset not in PRESET_NAMES:
        fail(f"unknown preset {preset!r}: choose from {', '.join(PRESET_NAMES)}")
    if encoder is not None and encoder not in ENCODER_NAMES:
        fail(f"unknown encoder {encoder!r}: choose from {', '.join(ENCODER_NAMES)}")
    for kind in learners or []:
        if kind not in LEARNER_KINDS:
            fail(f"--learners: unknown type {kind!r}; choose from {', '.join(LEARNER_KINDS)}")
    if csv is not None:
        csv = csv.expanduser()
        if not csv.parent.is_dir():
            fail(f"--csv {csv}: directory {csv.parent} does not exist")
        if csv.is_dir():
            fail(f"--csv {csv} is a directory")
    n_eval = 40 if eval_seeds is None else eval_seeds
    if n_eval < 2:
        fail(f"--eval-seeds must be at least 2 (a paired CI needs two seeds), got {n_eval}")

    from marl_market.rl import runs  # torch: only once the options are good

    note = None
    if resume is not None:
        path = db if db is not None else default_db_path()
        try:
            config, n_eval = runs.stored_config(check_readable(path), resume)
        except StoreError as error:
            fail(str(error))
        except ValueError as error:
            fail(f"run {resume}: {error}")
    else:
        try:
            if preset is not None:
                config = runs.preset_config(preset, **overrides)
            else:
                if everyone:
                    n_assets = overrides.get("n_assets", 1)
                    learners = [k for k in LEARNER_KINDS if k != "arb" or n_assets >= 2]
                    if n_assets < 2:
                        note = "--everyone with one asset: arb left out (it trades a pair)"
                if learners:
                    overrides["learners"] = tuple(learners)
                config = runs.TrainConfig(**overrides)
        except ValueError as error:
            fail(str(error))
    store = open_store(db, for_writing=True)
    out = console(json_out)
    if note:
        out.print(note)
    run_id = runs.training_run_id(config, n_eval)
    what = ", ".join(f"{t} x{config.learners.count(t)}" for t in config.types)
    out.print(
        f"run {run_id}: {what} learning, encoder {config.encoder}, {config.n_assets} asset(s), "
        f"{config.iterations} iterations of {config.episodes_per_iteration} x "
        f"{config.episode_steps} steps, seed {config.seed}"
    )
    outcome = _train(runs, store.path, config, n_eval, run_id, resume, json_out)
    evaluation = outcome.evaluation
    record = runs.load_training(store.path, run_id)
    if csv is not None:
        runs.export_training_csv(store.path, run_id, csv)
    if outcome.cached:
        out.print(f"run {run_id} is already trained and evaluated: not retrained")
    out.print(evaluation_table(evaluation))
    diff = evaluation["paired_diff"]
    verdict = (
        "the learned agent beats the fixed one: the paired 95% CI is above zero"
        if is_number(diff["ci_low"]) and diff["ci_low"] > 0
        else "no evidence that the learned agent beats the fixed one: the paired 95% CI is "
        "not above zero"
    )
    out.print(verdict)
    latest = record.checkpoints[-1]["path"] if record.checkpoints else None
    out.print(f"run {run_id} stored in {store.path}; latest checkpoint {latest}")
    if csv is not None:
        out.print(f"per-iteration log written to {csv}")
    if json_out:
        emit_json(
            {
                "run_id": run_id,
                "status": record.status,
                "cached": outcome.cached,
                "db": str(store.path),
                "config": record.config,
                "eval": evaluation,
                "iterations": len(record.logs["iteration"].unique()),
                "checkpoint": latest,
                "csv": None if csv is None else str(csv),
            }
        )


def _train(runs, db_path: Path, config, n_eval: int, run_id: str, resume, json_out: bool):
    """Run the training with a progress bar on stderr; Ctrl-C keeps what is done."""
    err = Console(stderr=True)
    with Progress(
        TextColumn("training"),
        BarColumn(),
        TextColumn("iteration {task.completed}/{task.total}"),
        TextColumn("{task.fields[rewards]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("train", total=config.iterations, rewards="", speed="")

        def progress(log: dict) -> None:
            rewards = ", ".join(
                f"{kind} {fmt(stats.get('episode_reward'), '{:+,.1f}')}"
                for kind, stats in (log.get("types") or {}).items()
            )
            speed = fmt(log.get("agent_steps_per_s"), "{:,.0f}") + " agent-steps/s"
            bar.update(task, completed=log["iteration"] + 1, rewards=rewards, speed=speed)
            if log["iteration"] + 1 == config.iterations:
                err.print(f"evaluating on {n_eval} held-out seeds (learned and fixed, paired)")

        try:
            return runs.run_training(
                db_path, config, eval_seeds=n_eval, resume_run_id=resume, on_iteration=progress
            )
        except runs.CheckpointError as error:  # a checkpoint changed or damaged on disk
            fail(str(error), code=1)
        except StoreError as error:
            fail(str(error))
        except KeyboardInterrupt:
            bar.stop()
            _stopped(runs, db_path, run_id, config, json_out)


def _stopped(runs, db_path: Path, run_id: str, config, json_out: bool) -> None:
    try:
        record = runs.load_training(db_path, run_id)
        done = record.checkpoints[-1]["iteration"] if record.checkpoints else 0
    except StoreError:
        done = 0
    command = f"marlsim train --resume {run_id} --db {db_path}"
    print(
        f"stopped after iteration {done}/{config.iterations}: run {run_id} kept (status "
        f"stopped) with its checkpoints; resume with: {command}",
        file=sys.stderr,
    )
    if json_out:
        emit_json(
            {"run_id": run_id, "status": "stopped", "iterations_done": done, "resume": command}
        )
    raise typer.Exit(130)


def evaluation_table(evaluation: dict) -> Table:
    """Learned against fixed on the held-out seeds: MTM, the paired difference, the market."""
    n = len(evaluation["eval_seeds"])
    table = Table(
        title=f"{evaluation.get('kind', 'learner')}: learned vs fixed on {n} held-out seeds "
        "(paired, 95% CI)"
    )
    for column in ("", "learned", "fixed", "learned - fixed"):
        table.add_column(column, justify="right" if column else "left")

    def interval(part: dict, spec: str = "{:,.0f}") -> str:
        low, high = fmt(part["ci_low"], spec), fmt(part["ci_high"], spec)
        return f"{fmt(part['mean'], spec)} [{low}, {high}]"

    types = evaluation.get("types") or {evaluation.get("kind", "learner"): evaluation}
    for kind, part in types.items():
        label = "MTM" if len(types) == 1 else f"MTM, {kind}"
        table.add_row(
            label,
            interval(part["learned_mtm"]),
            interval(part["fixed_mtm"]),
            interval(part["paired_diff"]),
        )
        wins = "wins (learned > fixed)" if len(types) == 1 else f"wins, {kind}"
        table.add_row(wins, "", "", f"{part['wins']}/{n}")
        if "vs_initial" in part:  # did training earn it, or the untrained policy's quotes?
            table.add_row(
                "untrained policy MTM" + ("" if len(types) == 1 else f", {kind}"),
                interval(part["initial_mtm"]),
                "",
                f"learned - untrained {interval(part['vs_initial'])}",
            )
    learned, fixed = evaluation.get("learned_market") or {}, evaluation.get("fixed_market") or {}
    market_diff = evaluation.get("market_diff") or {}
    for name in learned:
        diff = market_diff.get(name)
        table.add_row(
            name.replace("_", " "),
            fmt(learned[name]),
            fmt(fixed.get(name)),
            "" if diff is None else interval(diff, "{:,.2f}"),
        )
    return table
