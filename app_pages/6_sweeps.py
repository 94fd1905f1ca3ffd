"""Sweeps: a stored parameter sweep (``marlsim sweep``, one run of kind ``sweep``) as a heatmap
of any metric over two swept parameters (a chart with error bars for one), a table of every
grid point with each metric's mean and 95% CI over seeds (and its CSV), and the runs behind it,
each linked to the Runs page. Opened from the list or by a link (``?run_id=SWEEP_ID``).

This page only reads: sweeps are run by ``marlsim sweep``. The tables and figures are
``marl_market.plots_sweep``'s; it reads the stored summary defensively, and what it could not
read (failed tasks, metrics missing for some runs) is said here, above the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from app_pages import _common as ui
from marl_market import plots_sweep
from marl_market.scale.sweep import SWEEP_KIND
from marl_market.store import StoreError

OPEN = "sweep_open"  # the selectbox of stored sweeps
LINK_SEEN = "_sweep_link_seen"  # the ?run_id= value already opened
LIST_LIMIT = 200  # newest sweeps listed (an older one still opens by its link)
HOW_TO = "marlsim sweep --scenario baseline --makers 1,2,4 --noise 4,8 --seeds 5"
# The metric the chart opens on, when the scenario has it (else its first): the spread is what
# most sweeps (makers, fees, taxes) are about.
PREFERRED_METRICS = ("mean_spread_ticks", "mean_spread", "excess_kurtosis")


@st.cache_data(show_spinner=False, max_entries=8)
def read(db: str, run_id: str, created: str, _row: dict) -> plots_sweep.Sweep:
    """The sweep stored as ``_row``, read (a CI per point and metric: worth keeping across
    reruns). Keyed by database, ID and time stored: running the same sweep again stores it
    again under the same ID, maybe with more runs."""
    return plots_sweep.read_sweep(_row.get("config"), _row.get("summary"))


def choose(label: str, options: Sequence, key: str, first: Any = None, **kwargs: Any) -> Any:
    """A selectbox over ``options``. A remembered value that is not one of them (another
    sweep's parameter, another scenario's metric) is replaced by ``first`` if it is an option,
    else by the first option, before the widget is drawn (Streamlit refuses it otherwise)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = first if first in options else options[0]
    return st.selectbox(label, options, key=key, **kwargs)


def describe(row: dict) -> str:
    """A sweep in the selectbox: what it swept, its steps, when it was stored and its ID."""
    steps = ui.fmt((row.get("config") or {}).get("steps"), "{:,}", "?")
    created = str(row.get("created_at", ""))[:16]
    what = plots_sweep.describe_sweep(row.get("config"))
    return f"{what}, {steps} steps - {created} - {row['run_id']}"


def show_sweep(db: str, row: dict) -> None:
    """Everything about one stored sweep."""
    run_id = row["run_id"]
    sweep = read(db, run_id, str(row.get("created_at")), row)
    config = row.get("config") or {}
    steps = ui.fmt(config.get("steps"), "{:,}", "?")
    st.markdown(
        f"Sweep [`{run_id}`]({ui.run_link(run_id)}): **{plots_sweep.describe_sweep(config)}**, "
        f"{steps} steps per run, {len(sweep.runs)} runs, stored "
        f"{str(row.get('created_at'))[:19]} UTC by code version {row.get('code_version')}."
    )
    if sweep.notes:
        st.warning("\n".join(f"- {note}" for note in sweep.notes))
    if sweep.failed:
        with st.expander(f"Failed tasks ({len(sweep.failed)})"):
            st.dataframe(plots_sweep.failed_frame(sweep), hide_index=True, key="sweep_failed")
    if not sweep.runs:
        return

    controls = st.columns(4)
    with controls[0]:
        scenario = choose("Scenario", sweep.scenarios, "sweep_scenario")
    metrics = sweep.metrics(scenario)
    metric = None
    if not metrics:
        st.info(f"No run of {scenario} has metrics to show.")
    else:
        preferred = next((m for m in PREFERRED_METRICS if m in metrics), None)
        with controls[1]:
            metric = choose("Metric", metrics, "sweep_metric", first=preferred)
        show_chart(sweep, scenario, metric, controls[2:])

    st.subheader("Every grid point: mean over seeds [95% CI]")
    points = plots_sweep.points_table(sweep, scenario)
    if metric is not None:  # the chart's metric first, beside the parameters
        first = [*points.columns[: len(sweep.params) + 2], metric]
        points = points[[*first, *(c for c in points.columns if c not in first)]]
    st.dataframe(points, hide_index=True, key="sweep_points_table")
    st.caption(
        f"One row per point of the grid for {scenario}. Each cell is the metric's mean over "
        "the seeds with its 95% Student-t confidence interval; a single seed has no interval, "
        "and (n=k of m) marks a mean over fewer seeds than the point has runs (the others lack "
        "the metric)."
    )
    st.download_button(
        "Download the per-point table (CSV, every scenario)",
        data=plots_sweep.points_frame(sweep).to_csv(index=False),
        file_name=f"sweep_{run_id}_points.csv",
        mime="text/csv",
        key="sweep_download_points",
        on_click="ignore",
        help="Per metric: its mean, CI bounds and n (seeds with a value); runs: the runs there.",
    )

    st.subheader("The runs")
    runs = plots_sweep.runs_frame(sweep, scenario)
    runs["run_id"] = runs["run_id"].map(ui.run_link)
    st.dataframe(
        runs,
        hide_index=True,
        key="sweep_runs_table",
        column_config={
            # The cell is the Runs page's link to the run; it shows the ID.
            "run_id": st.column_config.LinkColumn("run ID", display_text=r"run_id=(\w+)$")
        },
    )
    st.caption("Click a run ID to open that run on the Runs page.")


def show_chart(sweep: plots_sweep.Sweep, scenario: str, metric: str, slots: list) -> None:
    """The heatmap of ``metric`` over two swept parameters (the others fixed by selectboxes),
    or its CI chart against the one swept parameter, or across scenarios without a grid."""
    params = sweep.params
    if len(params) >= 2:
        with slots[0]:
            x = choose("x axis", params, "sweep_x")
        with slots[1]:
            y = choose("y axis", [p for p in params if p != x], "sweep_y")
        others = [p for p in params if p not in (x, y)]
        fixed = {}
        # The grid has one point per combination: every parameter off the axes is held at one
        # of its values, chosen here.
        for slot, name in zip(st.columns(max(len(others), 4)), others, strict=False):
            with slot:
                fixed[name] = choose(f"{name} (fixed)", sweep.grid[name], f"sweep_fix_{name}")
        points = sweep.select(scenario, fixed)
        where = f" at {plots_sweep.point_label(fixed)}" if fixed else ""
        title = f"{metric} - {scenario}{where}: mean over seeds"
        figure = plots_sweep.heatmap_figure(
            points, metric, x, y, sweep.grid[x], sweep.grid[y], title=title
        )
        caption = (
            "Each cell: the mean over seeds with its 95% CI beneath it (hover for n). A blank "
            "cell has no value."
        )
    elif len(params) == 1:
        points = sweep.select(scenario)
        figure = plots_sweep.ci_figure(
            points, metric, params[0], title=f"{metric} - {scenario}: mean over seeds"
        )
        caption = "Mean over seeds; the bars are its 95% CI (none with a single seed)."
    else:  # scenarios x seeds, no grid: one mean per scenario
        points = sweep.points
        figure = plots_sweep.ci_figure(
            points, metric, "scenario", title=f"{metric}: mean over seeds"
        )
        caption = "Mean over seeds per scenario; the bars are its 95% CI."
    if not any(metric in p.stats and p.stats[metric].n for p in points):
        st.info(f"No run here has a value of {metric}.")
        return
    st.plotly_chart(figure, key="sweep_chart")
    st.caption(caption)


st.title("Sweeps")
db = ui.db_path()
store = ui.get_store()
st.caption(f"Database: `{db}`")
try:
    listed = {run["run_id"]: run for run in store.list_runs(limit=LIST_LIMIT, kind=SWEEP_KIND)}
    link = st.query_params.get("run_id")
    linked = listed.get(link) or (store.get_run(link) if link else None)
except StoreError as error:
    st.error(str(error))
    st.stop()
if linked is not None and linked["kind"] == SWEEP_KIND:
    listed.setdefault(link, linked)  # older than the list: open it all the same
if link and st.session_state.get(LINK_SEEN) != link:
    st.session_state[LINK_SEEN] = link  # a shared link opens its sweep once; the box then rules
    if link in listed:
        st.session_state[OPEN] = link
    elif linked is not None:
        st.warning(
            f"`{link}` is a {linked['kind']} run, not a sweep: the [Runs page]"
            f"({ui.run_link(link)}) opens it."
        )
    else:
        st.warning(f"No run `{link}` in this database.")
if not listed:
    st.info("No sweeps stored yet. A sweep is run from the command line, for example:")
    st.code(HOW_TO, language="bash")
    st.caption(
        "It runs every scenario on every point of the grid with each seed, stores every run "
        "and then the sweep, which this page shows once it is done."
    )
    st.stop()
ids = list(listed)
if st.session_state.get(OPEN) not in ids:
    st.session_state[OPEN] = ids[0]
shown = st.selectbox("Sweep", ids, key=OPEN, format_func=lambda i: describe(listed[i]))
st.query_params["run_id"] = shown  # the address bar is now a link to this sweep
st.session_state[LINK_SEEN] = shown
show_sweep(db, listed[shown])
