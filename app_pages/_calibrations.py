"""The Stylised facts page's calibrations: a stored ``marlsim calibrate`` run's fitted market
beside its target, and that market simulated with the sidebar's seed and length."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import _common as ui
from marl_market.core.numbers import fmt
from marl_market.lab.experiments import run_simulation
from marl_market.scale.calibrate import moment_names, with_params
from marl_market.store import RunStore, StoreError
from marl_market.store.records import SimulateRequest

CHOSEN = "calibration_run"  # the selectbox's key
SHOWN = "_fitted_shown"  # the calibration whose fitted market was simulated


def calibration_runs(db: str) -> list[dict]:
    """Stored calibrations, newest first (none when the database does not exist yet)."""
    try:
        return RunStore(db).list_runs(limit=100, kind="calibrate")
    except StoreError:
        return []


def facts_frame(facts: dict) -> pd.DataFrame:
    """Each moment: the target's value and the fitted market's mean [95% CI] over its seeds."""
    rows = []
    # The database keeps JSON keys sorted: show the moments in the calibration's own order.
    order = [n for n in moment_names() if n in facts["target"]]
    order += [n for n in facts["target"] if n not in order]
    for name in order:
        target, sim = facts["target"][name], facts["simulated"][name]
        low, high = fmt(sim["ci_low"], "{:.3f}"), fmt(sim["ci_high"], "{:.3f}")
        rows.append(
            {
                "moment": name.replace("_", " "),
                "target": fmt(target, "{:.3f}"),
                "fitted market (mean [95% CI])": f"{fmt(sim['mean'], '{:.3f}')} [{low}, {high}]",
            }
        )
    return pd.DataFrame(rows)


def show(request: SimulateRequest) -> None:
    """The section: pick a calibration, see its fit, simulate the fitted market."""
    st.subheader("Calibrations")
    runs = calibration_runs(ui.db_path())
    if not runs:
        st.caption(
            "No calibration in this database yet. `marlsim calibrate` fits the market's "
            "behavioural parameters to the S&P 500's stylised facts (or to a CSV of prices); "
            "the fit then shows here, and you can simulate the fitted market."
        )
        return
    by_id = {run["run_id"]: run for run in runs}
    ui.default(CHOSEN, runs[0]["run_id"])
    if st.session_state[CHOSEN] not in by_id:
        st.session_state[CHOSEN] = runs[0]["run_id"]

    def describe(run_id: str) -> str:
        config = by_id[run_id]["config"]
        return (
            f"{run_id}: {', '.join(config['params'])} to {config['target']} "
            f"({config['budget']} candidates x {config['seeds']} seeds)"
        )

    run_id = st.selectbox("Calibration", list(by_id), key=CHOSEN, format_func=describe)
    summary = by_id[run_id]["summary"]
    fitted = summary["params"]
    st.markdown(
        f"Run [`{run_id}`]({ui.run_link(run_id)}): "
        + ", ".join(f"**{k}** = {fmt(v, '{:.4g}')}" for k, v in fitted.items())
        + f"; moment distance {summary['distance']:.2f} after {summary['evaluations']} "
        "candidates."
    )
    st.dataframe(facts_frame(summary["facts"]), hide_index=True, key="calibration_facts")
    if st.button(
        "Simulate the fitted market",
        key="simulate_fitted",
        help="The sidebar's market with the fitted parameters, for the sidebar's seed and "
        f"steps (the same run as `marlsim simulate --calibration {run_id}`).",
    ):
        st.session_state[SHOWN] = run_id  # kept shown on later reruns, until another is chosen
    if st.session_state.get(SHOWN) == run_id:
        config = with_params(request.to_config(), fitted)
        outcome = ui.cached_work(
            ("fitted", run_id, request.model_dump_json(), ui.db_path()),
            f"Simulating the fitted market ({request.steps:,} steps)",
            lambda progress: run_simulation(
                config,
                request.seed,
                request.return_interval,
                store=ui.get_store(writable=True),
                progress=progress,
            ),
        )
        st.markdown(
            f"Fitted market: run [`{outcome.run_id}`]({ui.run_link(outcome.run_id)}), seed "
            f"{request.seed}, {request.steps:,} steps."
        )
        st.dataframe(ui.facts_frame(outcome.facts), hide_index=True, key="fitted_facts")
