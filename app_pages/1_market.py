"""Market: run the fixed-rule ecology and watch price, liquidity, the order book and the agents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import _common as ui
from marl_market import plots

st.title("Market")
st.caption(
    "Market makers, momentum, value and noise traders on one continuous double-auction book. "
    "Change the population in the sidebar: every run is stored under a deterministic run ID."
)

request = ui.market_settings()
run = ui.market_run(request)
result = run.result
steps = result.steps

st.markdown(
    f"Run [`{run.run_id}`]({ui.run_link(run.run_id)}) - seed {run.seed}, "
    f"{request.steps:,} steps simulated in {run.seconds:.2f} s; "
    + ("new in" if run.newly_stored else "already in")
    + f" the database `{ui.db_path()}`."
)
gauges = st.columns(5)
gauges[0].metric("Mean spread (ticks)", ui.fmt(run.facts.mean_spread_ticks))
gauges[1].metric("Excess kurtosis", ui.fmt(run.facts.excess_kurtosis, "{:.1f}"))
gauges[2].metric("Trades", f"{len(result.trades['step']):,}")
gauges[3].metric("Volume per step", ui.fmt(run.facts.mean_volume, "{:.1f}"))
gauges[4].metric("Last mid (ticks)", ui.fmt(float(result.asset_series("mid")[-1]), "{:,.1f}"))

st.subheader("Price, spread and volume")
st.plotly_chart(plots.market_figure(steps), key="market_chart")

st.subheader("Order book")
st.caption(
    f"The best {run.snapshots.levels} price levels of each side, recorded every "
    f"{run.snapshots.every} steps: the makers' thin quotes hug the mid, the noise traders' deep "
    "layer rests 20+ ticks away."
)
book_steps, prices, bids, asks = run.snapshots.grid()
st.plotly_chart(
    plots.book_heatmap_figure(
        book_steps, prices, bids, asks, run.snapshots.step, run.snapshots.mid
    ),
    key="book_heatmap",
)
last = int(run.snapshots.step[-1])
if not 0 <= st.session_state.get("ladder_step", last) <= last:
    del st.session_state["ladder_step"]  # left over from a longer run
ui.default("ladder_step", last)
left, right = st.columns([1, 2])
with left:
    chosen = st.slider("Ladder at step", 0, last, step=1, key="ladder_step")
    ladder = run.snapshots.ladder(chosen)
    best_bid = ladder["bid_price"][0] if len(ladder["bid_price"]) else np.nan
    best_ask = ladder["ask_price"][0] if len(ladder["ask_price"]) else np.nan
    st.metric("Snapshot step", f"{ladder['step']:,}")
    st.metric("Best bid / ask", f"{ui.fmt(best_bid, '{:.0f}')} / {ui.fmt(best_ask, '{:.0f}')}")
with right:
    st.plotly_chart(
        plots.ladder_figure(
            ladder["bid_price"],
            ladder["bid_qty"],
            ladder["ask_price"],
            ladder["ask_qty"],
            ladder["mid"],
            title=f"Depth ladder at step {ladder['step']:,}",
        ),
        key="ladder_chart",
    )
st.plotly_chart(plots.depth_figure(steps), key="depth_chart")

st.subheader("Agents")
st.plotly_chart(plots.agents_figure(result.agent_steps, run.kinds), key="agents_chart")
agents = pd.DataFrame(result.agents)
st.dataframe(
    agents.groupby("kind", sort=False)
    .agg(
        agents=("agent_id", "size"),
        mean_pnl=("pnl", "mean"),
        mean_inventory=("inventory", "mean"),
        trades=("n_trades", "sum"),
        rejected=("rejected_orders", "sum"),
    )
    .round(1),
    key="agents_table",
)
