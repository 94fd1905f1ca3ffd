"""Training runs in DuckDB: train, stop, resume, evaluate and read back, all under one run ID.

What ``marlsim train`` and the app's Train page call. ``run_training`` trains one
``TrainConfig`` as a run of kind ``train``: after every iteration it stores that iteration's
log (rewards, reward components, PPO statistics per learning type; the market monitor per
asset) and a checkpoint (its path and SHA-256 digest recorded beside the logs); when every
iteration is done it evaluates the learned policy against the fixed-rule agent on held-out
seeds (``evaluate.paired_evaluation``) and stores that under the same run ID, with summary
metrics ``marlsim runs list/show`` display.

The run ID hashes the config, the number of evaluation seeds and the code (the simulation's and
the trainer's source), like every other run's (``store.ids``): training the same thing again
returns the stored run instead of retraining it, and a stopped run with that ID is continued
from its latest checkpoint. Training is deterministic, so a run resumed from a checkpoint ends
identical (logs and evaluation) to one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from pydantic import TypeAdapter, ValidationError

from marl_market.core.config import Population
from marl_market.rl.checkpoint import CheckpointError, file_digest, load_checkpoint, save_checkpoint
from marl_market.rl.env import EnvConfig
from marl_market.rl.evaluate import paired_evaluation
from marl_market.rl.ippo import TrainConfig, TrainState, new_state, restore_state, train
from marl_market.rl.ppo import PPOConfig
from marl_market.store import StoreError, check_readable, check_writable, code_version
from marl_market.store.ids import make_run_id
from marl_market.store.schema import DONE
from marl_market.store.training import FAILED, STOPPED, TRAIN_KIND, TrainingStore

DEFAULT_EVAL_SEEDS = 40
RUN_WIDE = "all"
"""The ``agent_type`` of log rows about the whole iteration (throughput, timing)."""
TIMING_COLUMNS = ("seconds", "agent_steps_per_s", "rollout_share")
"""Log columns that measure the machine, not the run: they differ between identical runs."""

# A maker against a crowd of noise traders (spec 000's first experiment): one fixed maker,
# momentum and value trader each, so the book has a reference quote, and eight noise traders.
NOISE_CROWD = Population(makers=1, momentum=1, value=1, noise=8)

PRESETS: dict[str, dict] = {
    # spec 000 scripts/run_single_agent_maker.py: a maker against noise traders, one asset.
    "single_maker": {
        "learners": ("maker",),
        "n_assets": 1,
        "encoder": "mlp",
        "env": {"population": NOISE_CROWD},
    },
    # scripts/run_multi_agent_basic.py: a learning maker and a learning execution taker.
    "maker_taker": {"learners": ("maker", "taker"), "n_assets": 1, "encoder": "mlp"},
    # scripts/run_multi_asset_gnn.py: three assets, a maker and an arbitrageur, GraphSAGE.
    "multi_asset_gnn": {"learners": ("maker", "arb"), "n_assets": 3, "encoder": "sage"},
}
"""spec 000's three experiments as ``TrainConfig`` keyword overrides (the rest: its defaults)."""


def preset_config(name: str, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name``, with ``overrides`` (TrainConfig keywords) on top;
    an ``env`` override is merged into the preset's. Unknown name: ``ValueError``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    settings = {**PRESETS[name], **overrides}
    if "env" in overrides:
        settings["env"] = {**PRESETS[name].get("env", {}), **overrides["env"]}
    return TrainConfig(**settings)


@dataclass
class TrainOutcome:
    """What ``run_training`` did: the run, its final (or stopped) state and its evaluation."""

    run_id: str
    state: TrainState
    """The policies; ``state.logs`` holds the iterations played by this call only
    (``load_training`` has them all)."""
    evaluation: dict | None
    """``paired_evaluation``'s result; None when the run was stopped before it."""
    stopped: bool
    cached: bool = False
    """True when the run was already trained and evaluated: returned, not retrained."""


@dataclass
class TrainingRecord:
    """A stored training run, read back (``load_training``)."""

    run_id: str
    config: dict
    """The ``TrainConfig`` as a dict (``train_config()`` rebuilds it)."""
    status: str
    """``running``, ``stopped``, ``failed`` (all resumable) or ``done``."""
    logs: pd.DataFrame
    """One row per iteration x learning type: ``iteration``, ``type``, ``episode_reward``,
    ``component_<name>`` per reward component, the PPO statistics, and the iteration's
    run-wide numbers (``agent_steps_per_s``, ...) repeated on each type's row."""
    market: pd.DataFrame
    """One row per iteration x asset: ``mean_spread``, ``volatility``, ``excess_kurtosis``,
    ``tracking_error``."""
    evaluation: dict | None
    checkpoints: list[dict]
    """``iteration`` (iterations done), ``path``, ``sha256``, ``created_at``, oldest first."""
    eval_seeds: int = DEFAULT_EVAL_SEEDS

    def train_config(self) -> TrainConfig:
        return config_from_dict(self.config)


# ------------------------------------------------------------------------------ run IDs
RL_SOURCE = Path(__file__).resolve().parent
# Storage and front-door modules of rl: they do not change what training produces.
NOT_TRAINING_SOURCE = {"__init__.py", "runs.py", "presets.py", "episodes.py"}


@functools.cache
def training_code_version() -> str:
    """The store's code version plus 12 hex digits of the trainer's source (``rl``)."""
    digest = hashlib.sha256()
    for path in sorted(RL_SOURCE.glob("*.py")):
        if path.name in NOT_TRAINING_SOURCE:
            continue
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{code_version()}+rl{digest.hexdigest()[:12]}"


def stored_run_config(config: TrainConfig, eval_seeds: int) -> dict:
    """What a training run's ``runs.config`` holds (and its run ID hashes)."""
    population = config.make_env().market_config.population
    return {
        "train": config.to_dict(),
        "eval_seeds": int(eval_seeds),
        "training_code": training_code_version(),
        # For `runs list`'s agents column: the fixed agents and the learner slots.
        "market": {"population": dataclasses.asdict(population), "n_assets": config.n_assets},
    }


def training_run_id(config: TrainConfig, eval_seeds: int = DEFAULT_EVAL_SEEDS) -> str:
    """The run ID ``run_training(config, eval_seeds=...)`` stores under."""
    check_eval_seeds(eval_seeds)
    return make_run_id(
        TRAIN_KIND, stored_run_config(config, eval_seeds), config.seed, code_version()
    )


def eval_seed_list(n: int) -> list[int]:
    """The held-out evaluation seeds: 1..n (training seeds start at 10^9, ``ippo``)."""
    check_eval_seeds(n)
    return list(range(1, n + 1))


def check_eval_seeds(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"eval seeds must be an integer >= 2 (a paired CI needs 2), got {n!r}")


def config_from_dict(data: dict) -> TrainConfig:
    """A ``TrainConfig`` from ``TrainConfig.to_dict()`` (e.g. a stored run's); ``ValueError``
    if it is not one."""
    try:
        settings = dict(data)
        settings["learners"] = tuple(settings.get("learners", ()))
        settings["ppo"] = PPOConfig(**settings.get("ppo", {}))
        settings["env"] = _env_from_dict(settings.get("env", {}))
        return TrainConfig(**settings)
    except (TypeError, ValidationError) as error:
        raise ValueError(f"not a training config: {str(error).splitlines()[0]}") from None


def _env_from_dict(env: dict) -> dict:
    """``parallel_env`` keywords with their dataclass values (population, base) rebuilt."""
    hints = typing.get_type_hints(EnvConfig)
    out = {}
    for key, value in env.items():
        kind = hints.get(key)
        if isinstance(value, dict) and dataclasses.is_dataclass(kind):
            value = TypeAdapter(kind).validate_python(value)
        out[key] = value
    return out


def stored_config(db_path: str | os.PathLike[str], run_id: str) -> tuple[TrainConfig, int]:
    """The ``TrainConfig`` and evaluation seed count of a stored training run (any status),
    e.g. to resume it; ``StoreError`` if there is no such run."""
    row = _training_row(TrainingStore(check_readable(db_path)), run_id)
    return config_from_dict(row["config"]["train"]), int(row["config"]["eval_seeds"])


# ------------------------------------------------------------------------------ training
class _StopRequested(Exception):
    """``should_stop()`` said so after an iteration."""


def run_training(
    db_path: str | os.PathLike[str],
    config: TrainConfig,
    *,
    eval_seeds: int = DEFAULT_EVAL_SEEDS,
    resume_run_id: str | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    on_iteration: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train ``config`` as one stored run, checkpointing every iteration, then evaluate it.

    ``on_iteration(log)`` gets each iteration's log (``ippo``'s, plus ``run_id``,
    ``iterations`` and ``checkpoint``) once it is stored; ``should_stop()`` is asked after each
    iteration, and True leaves the run ``stopped`` (``TrainOutcome.stopped``), resumable. A
    ``KeyboardInterrupt`` also leaves it ``stopped`` (and propagates); any other error
    ``failed``. Finished iterations and their checkpoints always stay.

    Checkpoints go to ``checkpoint_dir`` (default ``<database folder>/checkpoints/<run_id>``)
    as ``iter_0007.pt`` (after 7 iterations). ``resume_run_id`` continues that stopped run from
    its latest checkpoint, whose digest must match the recorded one (``CheckpointError``
    otherwise); ``config`` and ``eval_seeds`` must be the run's (``stored_config``). A run of
    the same config already done is returned as it is (``cached``), not retrained; an
    unfinished one is continued.
    """
    run_id = training_run_id(config, eval_seeds)
    store = TrainingStore(check_writable(db_path))
    if resume_run_id is not None:
        _training_row(store, resume_run_id)  # an unknown run: one clear error
        if resume_run_id != run_id:
            raise StoreError(
                f"run {resume_run_id} was trained with another config, evaluation seed count or "
                "code: resume it with its stored config (rl.runs.stored_config)"
            )
    row = store.training_row(run_id)
    if row is not None and row["status"] == DONE:
        state = load_trained_state(store.path, run_id)
        evaluation = (row["summary"] or {}).get("evaluation")
        return TrainOutcome(run_id, state, evaluation, stopped=False, cached=True)

    resume = None
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if row is not None:
        latest = _latest_checkpoint(store, run_id)
        if latest is not None:
            resume = _verified_checkpoint(run_id, latest)
            if directory is None:
                directory = Path(latest["path"]).parent
    if directory is None:
        directory = store.path.parent / "checkpoints" / run_id
    n_steps = config.iterations * config.episodes_per_iteration * config.episode_steps
    store.start_training(
        run_id,
        config.seed,
        stored_run_config(config, eval_seeds),
        code_version(),
        n_steps=n_steps,
        n_assets=config.n_assets,
    )

    latest_state: list[TrainState] = []

    def after_iteration(state: TrainState, log: dict) -> None:
        latest_state[:] = [state]
        path = directory / f"iter_{state.iteration:04d}.pt"
        digest = save_checkpoint(path, state.checkpoint())
        store.record_iteration(
            run_id, int(log["iteration"]), log_rows(log), market_rows(log), str(path), digest
        )
        if on_iteration is not None:
            on_iteration(
                {**log, "run_id": run_id, "iterations": config.iterations, "checkpoint": str(path)}
            )
        if should_stop is not None and should_stop():
            raise _StopRequested

    try:
        try:
            state = train(config, resume=resume, on_iteration=after_iteration)
        except _StopRequested:
            store.set_training_status(run_id, STOPPED)
            return TrainOutcome(run_id, latest_state[0], None, stopped=True)
        with _one_thread():  # fixed thread count: the same floats, so the same evaluation
            evaluation = paired_evaluation(
                state, eval_seed_list(eval_seeds), initial=new_state(config)
            )
    except KeyboardInterrupt:
        with contextlib.suppress(StoreError):
            store.set_training_status(run_id, STOPPED)
        raise
    except BaseException:
        with contextlib.suppress(StoreError):
            store.set_training_status(run_id, FAILED)
        raise
    logs = _logs_frame(store.load_training_table("train_logs", run_id))
    store.finish_training(
        run_id,
        {"evaluation": evaluation, "iterations": config.iterations},
        summary_metrics(evaluation, logs),
    )
    return TrainOutcome(run_id, state, evaluation, stopped=False)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def log_rows(log: dict) -> list[tuple[str, str, float]]:
    """An iteration's log as (type, name, value) rows: each type's numbers, reward components
    as ``component_<name>``, and the run-wide numbers under type ``all``."""
    rows = [
        (kind, name, value)
        for kind, stats in (log.get("types") or {}).items()
        for name, value in _numbers(stats)
    ]
    run_wide = {k: v for k, v in log.items() if k not in ("iteration", "types", "market")}
    rows += [(RUN_WIDE, name, value) for name, value in _numbers(run_wide)]
    return rows


def _numbers(values: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in values.items():
        if isinstance(value, dict):
            inner = "component_" if key == "components" else f"{prefix}{key}_"
            yield from _numbers(value, inner)
        elif isinstance(value, int | float) or hasattr(value, "item"):
            try:
                yield f"{prefix}{key}", float(value)
            except (TypeError, ValueError):
                continue  # not a number (an array): not a log value


def market_rows(log: dict) -> list[tuple[int, str, float]]:
    """The market monitor's numbers as (asset, name, value) rows."""
    rows = []
    for name, values in (log.get("market") or {}).items():
        per_asset = values if isinstance(values, list | tuple) else [values]
        rows += [(asset, name, float(value)) for asset, value in enumerate(per_asset)]
    return rows


def summary_metrics(evaluation: dict, logs: pd.DataFrame) -> dict[str, float]:
    """The metrics a training run shows in ``marlsim runs show``: the evaluation's MTMs and
    paired difference with CIs, wins, the market under each, and the last iteration's
    reward per learning type."""
    metrics: dict[str, float] = {}
    for part in ("paired_diff", "learned_mtm", "fixed_mtm"):
        for key in ("mean", "ci_low", "ci_high"):
            metrics[f"eval_{part}_{key}"] = _number(evaluation[part][key])
    metrics["eval_wins"] = float(evaluation["wins"])
    for part in ("initial_mtm", "vs_initial"):
        for key in ("mean", "ci_low", "ci_high"):
            if part in evaluation:
                metrics[f"eval_{part}_{key}"] = _number(evaluation[part][key])
    metrics["eval_n"] = float(len(evaluation["eval_seeds"]))
    for side in ("learned", "fixed"):
        for name, value in (evaluation.get(f"{side}_market") or {}).items():
            metrics[f"eval_{side}_{name}"] = _number(value)
    for name, diff in (evaluation.get("market_diff") or {}).items():
        for key in ("mean", "ci_low", "ci_high"):
            metrics[f"eval_market_diff_{name}_{key}"] = _number(diff[key])
    types = evaluation.get("types") or {}
    if len(types) > 1:  # several learning types: each one's paired difference
        for kind, part in types.items():
            for key in ("mean", "ci_low", "ci_high"):
                metrics[f"eval_{kind}_paired_diff_{key}"] = _number(part["paired_diff"][key])
            metrics[f"eval_{kind}_wins"] = float(part["wins"])
    if not logs.empty:
        last = logs[logs["iteration"] == logs["iteration"].max()]
        for _, row in last.iterrows():
            metrics[f"final_reward_{row['type']}"] = _number(row.get("episode_reward"))
        if "agent_steps_per_s" in logs:
            metrics["train_agent_steps_per_s"] = _number(
                logs.drop_duplicates("iteration")["agent_steps_per_s"].mean()
            )
    return metrics


def _number(value) -> float:
    return math.nan if value is None else float(value)


# ------------------------------------------------------------------------------ reading
def load_training(db_path: str | os.PathLike[str], run_id: str) -> TrainingRecord:
    """A training run in any status: config, per-iteration logs, market, checkpoints, eval."""
    store = TrainingStore(check_readable(db_path))
    row = _training_row(store, run_id)
    checkpoints = _checkpoint_rows(store, run_id)
    market = store.load_training_table("train_market", run_id)
    market_frame = _pivot(pd.DataFrame(market), ["iteration", "asset"])
    return TrainingRecord(
        run_id=run_id,
        config=row["config"]["train"],
        status=row["status"],
        logs=_logs_frame(store.load_training_table("train_logs", run_id)),
        market=market_frame,
        evaluation=(row["summary"] or {}).get("evaluation"),
        checkpoints=checkpoints,
        eval_seeds=int(row["config"]["eval_seeds"]),
    )


def load_trained_state(db_path: str | os.PathLike[str], run_id: str) -> TrainState:
    """The run's policies as of its latest checkpoint, its digest checked (a stopped run's
    too), e.g. to play the learned maker elsewhere."""
    store = TrainingStore(check_readable(db_path))
    row = _training_row(store, run_id)
    latest = _latest_checkpoint(store, run_id)
    if latest is None:
        raise StoreError(f"training run {run_id} has no checkpoint yet (no iteration finished)")
    config = config_from_dict(row["config"]["train"])
    return restore_state(config, _verified_checkpoint(run_id, latest))


def export_training_csv(
    db_path: str | os.PathLike[str], run_id: str, path: str | os.PathLike[str]
) -> Path:
    """Write the run's per-iteration log as CSV: one row per iteration x learning type, with
    the market monitor's numbers per asset as ``<name>_asset<k>`` columns. Returns the path."""
    record = load_training(db_path, run_id)
    table = record.logs
    if not record.market.empty:
        market = record.market.pivot(index="iteration", columns="asset")
        market.columns = [f"{name}_asset{asset}" for name, asset in market.columns]
        table = table.merge(market.reset_index(), on="iteration", how="left")
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise StoreError(f"cannot write {target}: directory {target.parent} does not exist")
    temporary = target.with_name(f".{target.name}.partial")
    try:
        table.to_csv(temporary, index=False)
        os.replace(temporary, target)
    except OSError as error:
        raise StoreError(f"cannot write {target}: {error.strerror or error}") from error
    return target


def _training_row(store: TrainingStore, run_id: str) -> dict:
    row = store.training_row(run_id)
    if row is None:
        raise StoreError(f"no training run {run_id!r} in {store.path}")
    return row


def _checkpoint_rows(store: TrainingStore, run_id: str) -> list[dict]:
    table = store.load_training_table("train_checkpoints", run_id)
    return [
        {
            "iteration": int(table["iteration"][i]),
            "path": str(table["path"][i]),
            "sha256": str(table["sha256"][i]),
            "created_at": pd.Timestamp(table["created_at"][i]).isoformat(),
        }
        for i in range(len(table["iteration"]))
    ]


def _latest_checkpoint(store: TrainingStore, run_id: str) -> dict | None:
    rows = _checkpoint_rows(store, run_id)
    return max(rows, key=lambda r: r["iteration"]) if rows else None


def _verified_checkpoint(run_id: str, row: dict) -> dict:
    """The checkpoint of ``row``, after checking its file is the one that was recorded."""
    path = Path(row["path"])
    where = f"the checkpoint of run {run_id} after iteration {row['iteration']}"
    if not path.is_file():
        raise CheckpointError(f"{where} is missing: no file at {path}")
    if file_digest(path) != row["sha256"]:
        raise CheckpointError(
            f"{where} ({path}) does not match the SHA-256 recorded when it was written: "
            "it was changed or damaged since"
        )
    return load_checkpoint(path)


def _logs_frame(table: dict) -> pd.DataFrame:
    long = pd.DataFrame(table)
    if long.empty:
        return pd.DataFrame(columns=["iteration", "type"])
    long = long.rename(columns={"agent_type": "type"})
    per_type = _pivot(long[long["type"] != RUN_WIDE], ["iteration", "type"])
    run_wide = _pivot(long[long["type"] == RUN_WIDE].drop(columns="type"), ["iteration"])
    return per_type.merge(run_wide, on="iteration", how="left")


def _pivot(long: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Long (index..., name, value) rows as one row per index, names as columns in the order
    they were first written (rows ordered by the index)."""
    if long.empty:
        return pd.DataFrame(columns=index)
    names = list(dict.fromkeys(long["name"]))
    wide = long.pivot(index=index, columns="name", values="value")
    wide = wide[names].reset_index()
    wide.columns.name = None
    return wide
