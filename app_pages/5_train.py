"""Train: learning agents trained with independent PPO, followed live, then judged against the
fixed-rule agent they replace.

The training itself runs as ``marlsim train`` in a subprocess (``_trainers``): this page starts
it, stops it (SIGINT: the run is left ``stopped``, resumable), resumes it, and follows it by
reading what the trainer stores after every iteration (``rl.runs.load_training``). While a
process of this server trains the open run, the progress panel re-reads the database every
``TICK_SECONDS``; otherwise no timer is registered at all (``st.fragment``'s ``run_every`` is
set by a full script run, so the panel reruns the whole page the moment the process ends).

The form (what to train, and the ``marlsim train`` options that give the same run ID) is in
``_train_form``, the figures and the evaluation table in ``marl_market.plots_train``. This is
the only page that imports ``marl_market.rl`` (and torch, ~6 s the first time).
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from app_pages import _common as ui
from app_pages import _learned as learned
from app_pages import _trainers
from marl_market import plots_train
from marl_market.core.numbers import fmt
from marl_market.store import RunStore, StoreError, check_writable
from marl_market.store.schema import DONE
from marl_market.store.training import FAILED, RUNNING, STOPPED, TRAIN_KIND, TrainingStore

with st.spinner("Loading the trainer (torch)..."):
    from app_pages import _train_form as form
    from marl_market.rl import ippo, runs

TICK_SECONDS = 2.0  # how often the progress panel re-reads the database while a run trains
ATTENTION_SEED = 1  # the evaluation seed the attention map is read on
ATTENTION_STEPS = 100  # steps of it averaged (enough for the books to tell the assets apart)
OPEN = "train_open_run"  # the selectbox of stored training runs
LINK_SEEN = "_train_link_seen"  # the ?run_id= value already opened
LAUNCH_ERROR = "_train_launch_error"  # (button, message) of a launch that failed
LAST_RECORD = "_train_last_record"  # (db, run_id) -> the last record read, while the file is busy


# ------------------------------------------------------------------------------ launching
def launch(db: str, run_id: str, options: list[str], where: str) -> None:
    """Button callback (it runs before the page, so it may open the run in the selector):
    start ``marlsim train`` for ``run_id`` and open it, or keep why not for ``launch_error``
    to show beside the button ``where``."""
    try:
        check_writable(db)
        _trainers.registry().start(db, run_id, options)
    except (StoreError, _trainers.AlreadyTraining, OSError) as error:
        st.session_state[LAUNCH_ERROR] = (where, f"Could not start the training: {error}")
        return
    st.session_state[OPEN] = run_id


def open_in_selector(run_id: str) -> None:
    """Button callback: show ``run_id`` below (before the selector is drawn)."""
    st.session_state[OPEN] = run_id


def launch_error(where: str) -> None:
    """The error of the last launch from the button ``where``, once."""
    failed = st.session_state.get(LAUNCH_ERROR)
    if failed is not None and failed[0] == where:
        del st.session_state[LAUNCH_ERROR]
        st.error(failed[1])


def stored_status(db: str, run_id: str) -> str | None:
    """The stored status of a training run (None: not stored)."""
    row = TrainingStore(db).training_row(run_id)
    return None if row is None else str(row["status"])


# ------------------------------------------------------------------------------ stored runs
def training_runs(db: str) -> list[dict]:
    """Every training run of the database in any status (``list_runs`` shows finished runs
    only), newest first: run_id, status, created_at and the training config."""
    columns, rows = RunStore(db).query(
        "SELECT run_id, status, created_at, config FROM runs "
        f"WHERE kind = '{TRAIN_KIND}' ORDER BY created_at DESC, run_id LIMIT 500"
    )
    listed = []
    for row in rows:
        run = dict(zip(columns, row, strict=True))
        run["train"] = json.loads(run["config"]).get("train", {})
        listed.append(run)
    return listed


def describe(run: dict | None, run_id: str) -> str:
    """A run's line in the selector: ID, status, learners, encoder, size, date."""
    if run is None:
        return f"{run_id} - training (just started)"
    train = run["train"]
    learners = "+".join(dict.fromkeys(train.get("learners", [])))
    return (
        f"{run_id} - {run['status']} - {learners}, {train.get('encoder')}, "
        f"{train.get('n_assets')} asset(s), {train.get('iterations')} iterations - "
        f"{str(run['created_at'])[:16]}"
    )


def read_record(db: str, run_id: str) -> tuple[runs.TrainingRecord | None, str | None]:
    """The run as stored now, or the last one read and why it could not be read again.

    The trainer holds the database file while it writes an iteration, and DuckDB then lets
    nobody else open it: the store retries, and anything still failing shows the last record
    with a "waiting" note instead of an exception.
    """
    cache = st.session_state.setdefault(LAST_RECORD, {})
    try:
        record = runs.load_training(db, run_id)
    except StoreError as error:
        return cache.get((db, run_id)), str(error)
    cache[(db, run_id)] = record
    return record, None


# ------------------------------------------------------------------------------ one run
def progress_panel(db: str, run_id: str, timed: bool) -> None:
    """Status, progress and the per-iteration charts of one run (a fragment: while ``timed``
    it reruns every ``TICK_SECONDS`` on its own, re-reading the database)."""
    trainer = _trainers.registry().get(db, run_id)
    alive = trainer is not None and trainer.alive
    if timed and not alive:
        st.rerun(scope="app")  # the trainer is gone: redraw the page, without the timer
    record, problem = read_record(db, run_id)
    if record is None:
        if alive:
            st.info("Starting (importing torch)...")
        elif trainer is not None:
            st.error(f"The trainer exited with code {trainer.returncode} before storing the run:")
            show_log(db, run_id)
        else:
            st.warning(problem or f"No training run {run_id} in this database.")
        return

    total = int(record.config["iterations"])
    logs = record.logs
    done = int(logs["iteration"].nunique()) if not logs.empty else 0
    status = record.status
    if alive and trainer.stop_requested and status == RUNNING:
        status = "stopping"
    per_iteration = logs.drop_duplicates("iteration")  # run-wide numbers repeat on each type
    cols = st.columns(4)
    cols[0].metric("Status", status)
    cols[1].metric("Iteration", f"{done} / {total}")
    speed = per_iteration["agent_steps_per_s"].iloc[-1] if "agent_steps_per_s" in logs else None
    cols[2].metric("Agent-steps/s", fmt(speed, "{:,.0f}"))
    seconds = per_iteration["seconds"].sum() if "seconds" in logs else None
    cols[3].metric("Training time", fmt(seconds, "{:,.1f} s"), help="Summed over iterations.")
    text = f"iteration {done} of {total}"
    if status == RUNNING and done == total:
        text = f"all {total} iterations done: evaluating on {record.eval_seeds} held-out seeds"
    st.progress(min(1.0, done / total), text=text)
    if problem is not None:
        st.caption(f"Waiting for the trainer (the database is busy): {problem}")
    if alive:
        st.caption(f"The trainer's output goes to `{trainer.log_path}`.")
    crashed = trainer is not None and not alive and trainer.returncode not in (0, 130)
    if status != DONE and (crashed or status == FAILED):
        code = f"exited with code {trainer.returncode}" if crashed else "failed"
        st.error(f"The trainer {code} (the run is stored as {status}); the end of its output:")
        show_log(db, run_id)

    if logs.empty:
        return
    st.markdown("**Episode reward per learning type**")
    st.plotly_chart(plots_train.reward_figure(logs), key="train_reward_chart")
    st.markdown("**Reward terms** (reward = MTM + inventory penalty + the type's own term)")
    st.plotly_chart(plots_train.components_figure(logs), key="train_components_chart")
    st.markdown("**Market monitor**: is the market degrading while the rewards rise?")
    st.plotly_chart(plots_train.market_monitor_figure(record.market), key="train_market_chart")
    with st.expander("PPO diagnostics"):
        st.plotly_chart(plots_train.ppo_figure(logs), key="train_ppo_chart")


def show_log(db: str, run_id: str) -> None:
    """The end of the run's ``marlsim train`` output, if this app started it."""
    tail = _trainers.log_tail(_trainers.log_path(db, run_id))
    if tail:
        st.code(tail, language="text", wrap_lines=True)


def show_evaluation(evaluation: dict) -> None:
    """Learned against fixed on the held-out seeds: the table, the verdicts, every seed."""
    kind, n = evaluation["kind"], int(evaluation["n"])
    several = len(plots_train.evaluated_types(evaluation)) > 1
    who = "each learning type" if several else f"the {kind}"
    st.subheader("Learned vs fixed agents" if several else f"Learned vs fixed {kind}")
    st.caption(
        f"Each of the {n} held-out seeds (never trained on) is played twice with the same "
        f"random numbers: once with the learners (their policies' mean actions), once with "
        f"fixed-rule agents in their places. MTM: {who}'s mark-to-market at the end, in ticks "
        "x shares; mean [95% CI]."
    )
    st.dataframe(plots_train.evaluation_frame(evaluation), hide_index=True, key="train_eval")
    show = {"better": st.success, "worse": st.warning, "unclear": st.info}
    for outcome, sentence in plots_train.verdicts(evaluation):
        show[outcome](sentence)
    st.plotly_chart(
        plots_train.per_seed_figure(evaluation["per_seed"], kind, title=f"{kind}, per seed"),
        key="train_per_seed_chart",
    )


@st.cache_data(show_spinner="Playing the policies to read their attention...", max_entries=8)
def attention_weights(
    db: str, run_id: str, checkpoint_sha256: str
) -> tuple[dict[str, np.ndarray], int]:
    """Each learning type's graph-attention weights (source x target asset), averaged over the
    first ``ATTENTION_STEPS`` steps of evaluation seed ``ATTENTION_SEED`` played by the run's
    latest checkpoint (mean actions, as the evaluation plays them); and the steps averaged.

    Why play and not read the first observation alone: at the reset every asset looks the
    same (same price, no history), so any attention layer is uniform there. Cached by the
    checkpoint's digest: a new checkpoint is a new map.
    """
    import torch

    state = runs.load_trained_state(db, run_id)
    config = state.config
    env = config.make_env()
    observations, _ = env.reset(seed=ATTENTION_SEED)
    n = config.n_assets
    totals = {kind: np.zeros((n, n)) for kind in state.policies}
    steps = 0
    while env.agents and steps < ATTENTION_STEPS:
        actions = {}
        for kind, policy in state.policies.items():
            batch = ippo.observation_batch(policy, observations, config.norm_obs, update=False)
            with torch.no_grad():  # the forward pass leaves its weights in encoder.attention
                mean = policy.net.deterministic(ippo.as_tensors(batch)).numpy()
            edge_index, weights = policy.net.encoder.attention
            totals[kind] += plots_train.attention_matrix(edge_index.numpy(), weights.numpy(), n)
            actions.update(zip(policy.agents, mean, strict=True))
        observations, *_ = env.step(actions)
        steps += 1
    return {kind: total / max(steps, 1) for kind, total in totals.items()}, steps


def show_attention(db: str, record: runs.TrainingRecord) -> None:
    """The attention maps of a ``gat`` run's latest checkpoint, one per learning type."""
    latest = record.checkpoints[-1]
    st.subheader("Graph attention between assets")
    try:
        maps, steps = attention_weights(db, record.run_id, latest["sha256"])
    except (StoreError, runs.CheckpointError) as error:
        st.warning(f"Cannot read the policy: {error}")
        return
    one_asset = record.config["n_assets"] == 1
    st.caption(
        f"The second attention layer of each policy after {latest['iteration']} iteration(s), "
        f"averaged over the first {steps} steps of evaluation seed {ATTENTION_SEED}: how much "
        "each asset (column) weighs each asset's features (row) when the encoder mixes them; "
        "every column sums to 1, self-loops included."
        + (" With one asset the only edge is its self-loop." if one_asset else "")
    )
    for col, (kind, weights) in zip(st.columns(len(maps)), maps.items(), strict=True):
        col.plotly_chart(
            plots_train.attention_figure(weights, title=f"{kind} policy"),
            key=f"train_attention_{kind}",
        )


def training_csv(db: str, run_id: str) -> bytes:
    """The per-iteration log as ``marlsim train --csv`` writes it (built when clicked)."""
    with tempfile.TemporaryDirectory() as folder:
        return runs.export_training_csv(db, run_id, Path(folder) / "log.csv").read_bytes()


def show_run(db: str, run_id: str) -> None:
    """Everything about one training run: its controls, progress, evaluation and policy."""
    registry = _trainers.registry()
    trainer = registry.get(db, run_id)
    alive = trainer is not None and trainer.alive
    record, _ = read_record(db, run_id)  # the panel below says why, if it cannot be read
    status = record.status if record is not None else None
    link = f"[`{run_id}`]({ui.train_link(run_id)})"
    if status == DONE:
        link += f" (on the [Runs page]({ui.run_link(run_id)}): metrics, export)"
    st.markdown(f"Run {link}")

    orphan = status == RUNNING and not alive
    if orphan:
        st.caption(
            "The database says this run is training, but no process of this app is: a `marlsim "
            "train` elsewhere, or a process that died. Resume it only if none is running."
        )
    slots = iter(st.columns([1, 1.6, 1.6, 1.8]))  # the buttons that apply, side by side
    if alive:
        next(slots).button(
            "Stop",
            key="train_stop",
            on_click=registry.stop,
            args=(db, run_id),
            disabled=trainer.stop_requested,
            help="Interrupts the trainer (Ctrl-C): finished iterations and their checkpoints "
            "stay, the run is left stopped, and Resume continues it.",
        )
    elif status in (STOPPED, FAILED) or orphan:
        next(slots).button(
            "Resume",
            key="train_resume",
            type="primary",
            on_click=launch,
            args=(db, run_id, ["--resume", run_id], "resume"),
            help="Continue from its latest checkpoint.",
        )
    if orphan:
        next(slots).button("Refresh", key="train_refresh")
    if record is not None and not record.logs.empty:
        next(slots).download_button(
            "Download CSV",
            data=functools.partial(training_csv, db, run_id),  # built when clicked
            file_name=f"train_{run_id}.csv",
            mime="text/csv",
            key="train_csv",
            on_click="ignore",
            help="One row per iteration and learning type, the market monitor per asset.",
        )
    if status == DONE and next(slots).button(
        "Play in the Market page",
        key="train_play",
        help="Open the Market page with this run's learners in their slots beside the "
        "sidebar's traders (set to as many assets as they were trained on).",
    ):
        st.session_state[learned.LEARNED] = run_id
        st.session_state["assets"] = int(record.config.get("n_assets", 1))
        st.session_state["venues"] = 1
        st.switch_page("app_pages/1_market.py")
    launch_error("resume")

    if status == DONE and record.evaluation:
        show_evaluation(record.evaluation)
        st.subheader("Training")
    # The timer only while a process of this server trains the run: an idle page does nothing.
    interval = TICK_SECONDS if alive else None
    st.fragment(progress_panel, run_every=interval, key="train_progress")(db, run_id, alive)
    if record is not None and record.config.get("encoder") == "gat" and record.checkpoints:
        show_attention(db, record)


# ------------------------------------------------------------------------------ the page
st.title("Train")
st.caption(
    "Independent PPO: each learning type gets one policy, the other agents keep their fixed "
    "rules. Training runs in the background (`marlsim train`), stores every iteration under "
    "one run ID and ends with a paired evaluation against the fixed-rule agent."
)
db = ui.db_path()

st.header("New training run")
form.settings_form()
try:
    chosen = form.chosen_run()
except ValueError as error:
    st.error(f"These settings cannot be trained: {error}")
else:
    config, run_id = chosen.config, chosen.run_id
    try:
        status = stored_status(db, run_id)
    except StoreError as error:
        st.error(str(error))
        st.stop()
    trainer = _trainers.registry().get(db, run_id)
    st.markdown(
        f"These settings are run `{run_id}`: {', '.join(config.types)} learning, encoder "
        f"{config.encoder}, {config.n_assets} asset(s), {config.iterations} iterations of "
        f"{config.episodes_per_iteration} x {config.episode_steps} steps, seed {config.seed}, "
        f"{chosen.eval_seeds} evaluation seeds."
    )
    if status == DONE:
        st.caption("Already trained and evaluated: training it again would give the same run.")
        st.button("Open it", key="train_open_existing", on_click=open_in_selector, args=(run_id,))
    elif trainer is not None and trainer.alive:
        st.caption("Training now: it is opened below.")
    else:
        if status == RUNNING:
            st.caption(
                "Stored as running, but by no process of this app (a `marlsim train` elsewhere, "
                "or one that died): continue it only if none is running."
            )
        elif status is not None:
            st.caption(f"Stored as {status}: training continues it from its latest checkpoint.")
        st.button(
            "Train" if status is None else "Continue training",
            key="train_launch",
            type="primary",
            on_click=launch,
            args=(db, run_id, chosen.options, "new"),
        )
        launch_error("new")

st.header("Training runs")
st.caption(f"Database: `{db}`")
try:
    listed = {run["run_id"]: run for run in training_runs(db)}
except StoreError as error:
    st.error(str(error))
    st.stop()
# A run just started has no row until the trainer has imported torch: list it anyway.
ids = [i for i in _trainers.registry().running(db) if i not in listed] + list(listed)
link = st.query_params.get("run_id")
if link and st.session_state.get(LINK_SEEN) != link:
    st.session_state[LINK_SEEN] = link  # a shared link opens its run once; the box then rules
    if link in ids:
        st.session_state[OPEN] = link
    else:
        st.warning(
            f"`{link}` is not a training run in this database: the [Runs page]"
            f"({ui.run_link(link)}) opens any stored run."
        )
if not ids:
    st.info("No training runs yet: start one above, or `marlsim train`.")
    st.stop()
if st.session_state.get(OPEN) not in ids:
    st.session_state[OPEN] = ids[0]
shown = st.selectbox(
    "Training run", ids, key=OPEN, format_func=lambda i: describe(listed.get(i), i)
)
st.query_params["run_id"] = shown  # the address bar is now a link to this run
st.session_state[LINK_SEEN] = shown
show_run(db, shown)
