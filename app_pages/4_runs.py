"""Runs: every stored run, opened by its ID or a shared link (``?run_id=ID``), verified by
re-running it, exported (DuckDB file, Parquet, HTML report), imported from a colleague's
export, and queried with read-only SQL."""

from __future__ import annotations

import functools

import pandas as pd
import streamlit as st

from app_pages import _common as ui
from marl_market import plots
from marl_market.core.facts import StylisedFacts, acf_confidence_band
from marl_market.lab import report, workbench
from marl_market.lab.verify import verify_run
from marl_market.store import QueryRefused, RunStore, StoreError, code_version

KINDS = ["all", "simulate", "scenario", "baseline", "compare", "sweep", "env", "train"]
DEFAULT_SQL = "SELECT kind, count(*) AS runs, max(created_at) AS newest FROM runs GROUP BY kind"
OPEN = "open_run_id"  # the Run ID text box
LINK_SEEN = "_run_link_seen"  # the ?run_id= value already copied into the box


def open_selected() -> None:
    """Table row clicked: open that run (callbacks run before the box is drawn)."""
    rows = st.session_state["runs_table"].selection.rows
    listed = st.session_state.get("_listed_ids", [])
    if rows and rows[0] < len(listed):
        st.session_state[OPEN] = listed[rows[0]]


@st.cache_data(show_spinner=False, max_entries=4)
def report_html(db: str, run_id: str) -> str:
    return report.build_report(RunStore(db), run_id)


@st.cache_data(show_spinner=False, max_entries=4)
def parquet_zip(db: str, run_id: str) -> bytes:
    return workbench.export_zip(RunStore(db), run_id)


@st.cache_data(show_spinner=False, max_entries=4)
def duckdb_file(db: str, run_id: str) -> bytes:
    return workbench.export_duckdb(RunStore(db), [run_id])


@st.cache_data(show_spinner=False, max_entries=4)
def replayed_book(db: str, run_id: str) -> workbench.BookSnapshots:
    return workbench.replay_book(ui.open_run(db, run_id))


def show_run(db: str, run_id: str) -> None:
    """Everything about one stored run."""
    try:
        run = ui.open_run(db, run_id)
    except StoreError as error:
        st.error(f"{error}. Check the ID (16 hex digits) or pick a run from the list.")
        return
    row = run.row
    st.subheader(f"Run {run_id}")
    steps = "-" if row["n_steps"] is None else f"{row['n_steps']:,}"
    seed = "-" if row["seed"] is None else row["seed"]
    parent = row.get("parent_run_id")
    st.markdown(
        f"**{row['kind']}** - seed {seed}, {steps} steps, stored {str(row['created_at'])[:19]} "
        f"UTC by code version {row['code_version']}."
        + (f" Scenario: {row['scenario']}." if row.get("scenario") else "")
        + (f" Baseline: [`{parent}`]({ui.run_link(parent)})." if parent else "")
    )
    if row["code_version"] != code_version():
        st.warning(
            f"This run was made by different code ({row['code_version']}; this app runs "
            f"{code_version()}). **Verify** re-runs it to see whether it still reproduces."
        )
    if st.button("Verify: re-run it and compare every row", key="verify_run"):
        try:
            with st.spinner("Re-running the run from its stored config and seed..."):
                verdict = verify_run(RunStore(db), run_id)
        except StoreError as error:
            st.error(str(error))
        else:
            (st.success if verdict.identical else st.error)(verdict.verdict())

    shared = workbench.share(run_id)
    st.markdown(
        f"**Share it** - anyone with the database reopens exactly this run: "
        f"[link to this run]({ui.run_link(run_id)}) (`{shared['query_string']}` on this app), "
        "SQL, or the command line:"
    )
    st.code(shared["sql"], language="sql")
    st.code(f"{shared['cli']}\n{shared['report']}", language="bash")
    downloads = st.columns([1, 1, 1, 2])
    downloads[2].download_button(
        "Download DuckDB file",
        data=functools.partial(duckdb_file, db, run_id),
        file_name=f"run_{run_id}.duckdb",
        mime="application/octet-stream",
        key="download_duckdb",
        on_click="ignore",
        help="The run with all its rows; a colleague imports it with `marlsim runs import` "
        "or on this page.",
    )
    downloads[0].download_button(
        "Download Parquet (zip)",
        data=functools.partial(parquet_zip, db, run_id),  # built when clicked
        file_name=f"run_{run_id}_parquet.zip",
        mime="application/zip",
        key="download_parquet",
        on_click="ignore",
    )
    downloads[1].download_button(
        "Download HTML report",
        data=functools.partial(report_html, db, run_id),
        file_name=f"run_{run_id}.html",
        mime="text/html",
        key="download_report",
        on_click="ignore",
    )

    if run.kind == "compare":
        show_compare(row)
    facts = ui.stored_facts(db, run_id) if run.has_steps else None
    tables = st.columns(2)
    if facts is not None:
        tables[0].markdown("**Stylised facts**")
        tables[0].dataframe(ui.facts_frame(facts), hide_index=True, key="run_facts_table")
    if run.metrics:
        tables[1].markdown("**Metrics**")
        tables[1].dataframe(
            pd.DataFrame(sorted(run.metrics.items()), columns=["metric", "value"]),
            hide_index=True,
            key="run_metrics_table",
        )
    with st.expander("Config"):
        st.json(row["config"])
    if run.has_steps:
        show_charts(db, run, facts)


def show_compare(row: dict) -> None:
    summary = row.get("summary") or {}
    summaries = summary.get("summaries") or {}
    if not summaries:
        return
    st.plotly_chart(plots.compare_figure(summaries), key="run_compare_chart")
    for kind, stats in summaries.items():
        st.markdown(f"**{kind.replace('_', ' ')}** vs baseline")
        st.dataframe(ui.summary_frame(stats), hide_index=True, key=f"run_compare_{kind}")


def show_charts(db: str, run: workbench.StoredRun, facts: StylisedFacts | None) -> None:
    """The run's charts, with a scenario's intervention marked on them."""
    scenario = (run.row.get("config") or {}).get("scenario") or {}
    events = []
    if scenario.get("start_at") is not None:
        events.append((scenario["start_at"], scenario.get("kind", "event").replace("_", " ")))
    if scenario.get("kind") == "flash_crash" and scenario.get("end_at"):
        events.append((scenario["end_at"], "makers back"))
    st.plotly_chart(
        plots.add_events(plots.market_figure(run.steps), events), key="run_market_chart"
    )
    st.plotly_chart(plots.add_events(plots.depth_figure(run.steps), events), key="run_depth_chart")
    if len(run.agent_steps["step"]):
        st.plotly_chart(
            plots.agents_figure(run.agent_steps, run.agents["kind"]), key="run_agents_chart"
        )
    if facts is not None:
        returns = workbench.returns_of(run.asset_series("mid"), run.return_interval)
        cols = st.columns(2)
        cols[0].plotly_chart(plots.return_distribution_figure(returns), key="run_dist_chart")
        cols[1].plotly_chart(plots.qq_figure(returns), key="run_qq_chart")
        st.plotly_chart(
            plots.acf_figure(
                facts.acf_abs,
                facts.acf_raw,
                acf_confidence_band(facts.n_returns),
                run.return_interval,
            ),
            key="run_acf_chart",
        )
    st.markdown("**Order book**")
    if st.toggle(
        "Replay the run to rebuild its order book",
        key="replay_book",
        help="Depth by price level is not stored; the run is replayed (same config and seed "
        "give the same run) and checked against the stored prices.",
    ):
        try:
            with st.spinner("Replaying..."):
                book = replayed_book(db, run.run_id)
        except ValueError as error:
            st.warning(str(error))
        else:
            book_steps, prices, bids, asks = book.grid()
            st.plotly_chart(
                plots.book_heatmap_figure(book_steps, prices, bids, asks, book.step, book.mid),
                key="run_book_chart",
            )


st.title("Runs")
db = ui.db_path()
store = ui.get_store()
st.caption(f"Database: `{db}`")

# ------------------------------------------------------------------------------ the list
kind = st.selectbox("Kind", KINDS, key="runs_kind")
try:
    listed = store.list_runs(limit=500, kind=None if kind == "all" else kind)
except StoreError as error:
    st.error(str(error))
    listed = []
st.session_state["_listed_ids"] = [r["run_id"] for r in listed]
if listed:
    table = pd.DataFrame(
        [
            {
                "run_id": r["run_id"],
                "kind": r["kind"],
                "seed": r["seeds"],
                "scenario": r["scenario"],
                "agents (makers/momentum/value/noise)": r["population"],
                "steps": r["n_steps"],
                "created (UTC)": str(r["created_at"])[:19],
                "code version": r["code_version"],
                "parent": r["parent_run_id"],
            }
            for r in listed
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        key="runs_table",
        on_select=open_selected,
        selection_mode="single-row",
        height=min(400, 38 + 35 * len(table)),
    )
    st.caption("Click a row to open that run.")
else:
    st.info("No runs stored yet: run a market on the Market page or `marlsim simulate`.")

# ------------------------------------------------------------------------------ one run
link = st.query_params.get("run_id")
if link and st.session_state.get(LINK_SEEN) != link:
    st.session_state[OPEN] = link  # a shared link opens its run once; the box then rules
    st.session_state[LINK_SEEN] = link
ui.default(OPEN, "")
run_id = st.text_input("Run ID", key=OPEN, placeholder="e.g. 3f2a9c0d1e4b5a67").strip()
if run_id:
    st.query_params["run_id"] = run_id  # the address bar is now a link to this run
    st.session_state[LINK_SEEN] = run_id
    show_run(db, run_id)
elif "run_id" in st.query_params:
    del st.query_params["run_id"]

# ------------------------------------------------------------------------------ import
with st.expander("Import runs from a colleague's export"):
    upload = st.file_uploader(
        "A DuckDB file from `marlsim runs export` or the download above",
        type=["duckdb"],
        key="import_file",
    )
    if upload is not None and st.button("Import", key="import_runs"):
        try:
            outcome = workbench.import_duckdb(store, upload.getvalue())
        except StoreError as error:
            st.error(str(error))
        else:
            st.success(
                f"Imported {len(outcome['imported'])} run(s); skipped "
                f"{len(outcome['skipped'])} already stored with the same contents."
            )

# ------------------------------------------------------------------------------ SQL
st.header("SQL")
st.caption(
    "One read-only SELECT over the tables `runs`, `steps`, `trades`, `metrics`, `agents` and "
    "`agent_steps`. Writes, DDL and reading files are refused by the database itself."
)
ui.default("sql_query", DEFAULT_SQL)
sql = st.text_area("Query", key="sql_query", height=100)
if st.button("Run query", key="run_sql"):
    try:
        columns, rows = store.query(sql)
    except QueryRefused as error:
        st.session_state["sql_result"] = None
        st.error(
            f"{error}. The SQL box only reads: one SELECT over the run tables, no writes and "
            "no access to files."
        )
    except StoreError as error:
        st.session_state["sql_result"] = None
        st.error(str(error))
    else:
        st.session_state["sql_result"] = (sql, columns, rows)
result = st.session_state.get("sql_result")
if result is not None:
    query, columns, rows = result
    st.dataframe(pd.DataFrame(rows, columns=columns), hide_index=True, key="sql_table")
    st.caption(f"{len(rows):,} row(s) for `{query.strip()[:120]}`")
