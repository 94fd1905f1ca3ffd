"""The Market page's learned agents: a finished training run's policies playing in the
sidebar's market, beside its fixed-rule traders.

Listing the training runs needs no torch; playing one imports ``marl_market.rl`` (torch, a few
seconds the first time) only once the user has picked it. The played market is stored as a
run of kind ``env`` (``rl.playback``), so its run ID opens it anywhere, like any run.
"""

from __future__ import annotations

import streamlit as st

from app_pages import _common as ui
from marl_market.core.numbers import fmt, is_number
from marl_market.lab import workbench
from marl_market.lab.experiments import facts_of
from marl_market.store import RunStore, StoreError
from marl_market.store.records import SimulateRequest

LEARNED = "learned_run"  # the sidebar's selectbox: a training run ID, or "" for none
NONE = ""


def trained_runs(db: str) -> list[dict]:
    """Finished training runs, newest first: run ID, learners, assets, encoder and the
    evaluation's paired MTM difference (None if absent)."""
    try:
        rows = RunStore(db).list_runs(limit=200, kind="train")
    except StoreError:
        return []  # no database yet: nothing trained
    listed = []
    for row in rows:
        train = (row.get("config") or {}).get("train") or {}
        evaluation = (row.get("summary") or {}).get("evaluation") or {}
        listed.append(
            {
                "run_id": row["run_id"],
                "learners": list(dict.fromkeys(train.get("learners", []))),
                "n_assets": int(train.get("n_assets", 1)),
                "encoder": train.get("encoder", "mlp"),
                "paired_diff": (evaluation.get("paired_diff") or {}).get("mean"),
            }
        )
    return listed


def describe(run: dict) -> str:
    diff = run["paired_diff"]
    versus = f", {fmt(diff, '{:+,.0f}')} MTM vs fixed" if is_number(diff) else ""
    return f"{run['run_id']}: {'+'.join(run['learners'])}, {run['encoder']}{versus}"


def learned_setting(request: SimulateRequest) -> str | None:
    """The sidebar's choice of a training run whose learners join the market (None: fixed
    rules only). Only runs trained on as many assets as the market has, without venues, fit."""
    ui.default(LEARNED, NONE)
    config = request.to_config()
    runs = [r for r in trained_runs(ui.db_path()) if r["n_assets"] == config.n_assets]
    by_id = {r["run_id"]: r for r in runs}
    chosen = st.session_state.get(LEARNED) or NONE
    if chosen and chosen not in by_id:
        by_id[chosen] = None  # kept selectable, so the page can say why it cannot play
    with st.sidebar:
        st.subheader("Learned agents")
        st.selectbox(
            "Trained policies",
            [NONE, *by_id],
            key=LEARNED,
            format_func=lambda run_id: (
                "none (fixed rules only)"
                if run_id == NONE
                else (describe(by_id[run_id]) if by_id[run_id] else f"{run_id} (not usable here)")
            ),
            help="A finished training run (Train page): its learners - e.g. the learned maker - "
            "join this market in their own slots, each acting by its policy's mean action.",
        )
        if not runs:
            st.caption(
                f"No run trained on {config.n_assets} asset(s) yet: train one on the Train page."
            )
    chosen = st.session_state.get(LEARNED) or NONE
    if chosen == NONE:
        return None
    if config.listings is not None:
        st.error("Trained policies play on a market without venues: set Venues to 1.")
        st.stop()
    if by_id.get(chosen) is None:
        st.error(
            f"Training run {chosen} is not a finished run trained on {config.n_assets} "
            "asset(s) in this database: choose another, or none."
        )
        st.stop()
    return chosen


def played_run(request: SimulateRequest, train_run_id: str) -> workbench.MarketRun:
    """The sidebar's market with ``train_run_id``'s learners playing in it, stored (cached)."""
    db = ui.db_path()

    def play(progress: workbench.Progress) -> workbench.MarketRun:
        from marl_market.rl.playback import play_trained  # torch: only for a learned agent

        played = play_trained(
            db,
            train_run_id,
            request.to_config(),
            request.seed,
            store=ui.get_store(writable=True),
            return_interval=request.return_interval,
            progress=progress,
        )
        facts = facts_of(played.result, request.return_interval)
        return workbench.MarketRun(
            played.run_id,
            request.seed,
            request.return_interval,
            facts,
            played.result,
            played.snapshots,
            True,
            played.seconds,
        )

    try:
        return ui.cached_work(
            ("played", request.model_dump_json(), train_run_id, db),
            f"Playing {request.steps:,} steps with the policies of run {train_run_id}",
            play,
        )
    except (StoreError, ValueError) as error:
        st.error(str(error))
        st.stop()
