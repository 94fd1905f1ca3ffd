"""The Train page's form: what to train (a preset or custom learners), the advanced settings,
and the ``marlsim train`` options that give the same config.

Imported by the Train page only: it imports ``marl_market.rl`` (torch), which no other page
pays for.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_pages import _common as ui
from marl_market.core.config import LEARNER_KINDS
from marl_market.rl import runs
from marl_market.rl.nets import ENCODERS

PRESET_NOTES = {
    "single_maker": "One learning market maker against a crowd of noise traders (plus one fixed "
    "maker, momentum and value trader), one asset, MLP encoder.",
    "maker_taker": "A learning market maker and a learning execution taker in the default "
    "ecology, one asset, MLP encoder.",
    "multi_asset_gnn": "A learning maker and a learning pair arbitrageur on three assets, reading "
    "the asset graph with GraphSAGE.",
}
ENCODER_NOTES = {
    "mlp": "mlp: the agent's own features only",
    "sage": "sage: GraphSAGE over the asset graph",
    "gat": "gat: graph attention over the asset graph (its weights are shown)",
}
_TRAINER = runs.TrainConfig()  # the trainer's defaults are the form's
DEFAULTS = {
    "train_mode": "Preset",
    "train_preset": next(iter(runs.PRESETS)),
    "train_learners": list(_TRAINER.learners),
    "train_encoder": _TRAINER.encoder,
    "train_assets": _TRAINER.n_assets,
    "train_iterations": _TRAINER.iterations,
    "train_episode_steps": _TRAINER.episode_steps,
    "train_episodes": _TRAINER.episodes_per_iteration,
    "train_seed": _TRAINER.seed,
    "train_eval_seeds": runs.DEFAULT_EVAL_SEEDS,
}


@dataclass(frozen=True)
class ChosenRun:
    """What the form says to train."""

    config: runs.TrainConfig
    eval_seeds: int
    run_id: str
    options: list[str]
    """``marlsim train`` options giving the same config, so the subprocess stores ``run_id``."""


def settings_form() -> None:
    """What to train: a preset or a custom set of learners, and the advanced settings."""
    for key, value in DEFAULTS.items():
        ui.default(key, value)
    mode = st.radio("What to train", ["Preset", "Custom"], key="train_mode", horizontal=True)
    if mode == "Preset":
        name = st.selectbox("Preset", list(runs.PRESETS), key="train_preset")
        st.caption(PRESET_NOTES.get(name, f"Learners {', '.join(runs.PRESETS[name]['learners'])}."))
    else:
        left, middle, right = st.columns([3, 2, 1])
        left.multiselect(
            "Learning types",
            LEARNER_KINDS,
            key="train_learners",
            help="One learner slot per type, trained with its own policy; every other agent "
            "follows its fixed rule. An arbitrageur trades a pair: it needs 2 assets or more.",
        )
        middle.selectbox(
            "Encoder", ENCODERS, key="train_encoder", format_func=lambda e: ENCODER_NOTES.get(e, e)
        )
        right.number_input("Assets", 1, ui.MAX_ASSETS, key="train_assets")
    with st.expander("Advanced settings"):
        cols = st.columns(5)
        cols[0].number_input("Iterations", 1, 100_000, key="train_iterations")
        cols[1].number_input("Episode steps", 1, 100_000, step=50, key="train_episode_steps")
        cols[2].number_input("Episodes per iteration", 1, 1_024, key="train_episodes")
        cols[3].number_input("Seed", 0, 2**31 - 1, key="train_seed")
        cols[4].number_input(
            "Evaluation seeds",
            2,
            10_000,
            key="train_eval_seeds",
            help="Held-out market seeds (1..N, never trained on) on which the learned agent "
            "and the fixed-rule one are compared, paired; a CI needs at least 2.",
        )


def chosen_run() -> ChosenRun:
    """The form's run. A bad combination (an arbitrageur with one asset, no learner) raises
    ``ValueError`` with the trainer's own message, before anything is started or written."""
    state = st.session_state
    shared = {
        "iterations": int(state["train_iterations"]),
        "episode_steps": int(state["train_episode_steps"]),
        "episodes_per_iteration": int(state["train_episodes"]),
        "seed": int(state["train_seed"]),
    }
    eval_seeds = int(state["train_eval_seeds"])
    options = ["--iterations", str(shared["iterations"])]
    options += ["--episode-steps", str(shared["episode_steps"])]
    options += ["--episodes", str(shared["episodes_per_iteration"])]
    options += ["--seed", str(shared["seed"]), "--eval-seeds", str(eval_seeds)]
    if state["train_mode"] == "Preset":
        name = str(state["train_preset"])
        config = runs.preset_config(name, **shared)
        options = ["--preset", name, *options]
    else:
        # In LEARNER_KINDS order, not click order: the same choice gives the same run ID.
        learners = tuple(k for k in LEARNER_KINDS if k in state["train_learners"])
        encoder, assets = str(state["train_encoder"]), int(state["train_assets"])
        config = runs.TrainConfig(learners=learners, encoder=encoder, n_assets=assets, **shared)
        learner_options = [f"--learners={kind}" for kind in learners]
        options = [*learner_options, "--encoder", encoder, "--assets", str(assets), *options]
    run_id = runs.training_run_id(config, eval_seeds)  # also checks the seed count (>= 2)
    return ChosenRun(config, eval_seeds, run_id, options)
