"""Market: run the fixed-rule ecology and watch price, liquidity, the order book and the agents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import _common as ui
from app_pages import _learned as learned
from marl_market import plots, plots_assets
from marl_market.lab import workbench

st.title("Market")
st.caption(
    "Market makers, momentum, value and noise traders on continuous double-auction books, "
    "with execution takers and pair arbitrageurs if you add them. Change the market in the "
    "sidebar: every run is stored under a deterministic run ID."
)

request = ui.market_settings(multi_asset=True)
learned_from = learned.learned_setting(request)
run = ui.market_run(request) if learned_from is None else learned.played_run(request, learned_from)
result = run.result
steps = result.steps
n_assets = result.config.n_assets
# Every asset's facts and the regime's statistics; a one-asset, never-stressed run needs neither.
overview = ui.market_overview(request, run) if n_assets > 1 or steps["regime"].any() else None

if learned_from is None:
    st.markdown(
        f"Run [`{run.run_id}`]({ui.run_link(run.run_id)}) - seed {run.seed}, "
        f"{request.steps:,} steps simulated in {run.seconds:.2f} s; "
        + ("new in" if run.newly_stored else "already in")
        + f" the database `{ui.db_path()}`."
    )
else:
    slots = ", ".join(
        f"{kind} {int(agent)}"
        for agent, (kind, policy) in enumerate(
            zip(result.agents["kind"], result.agents["policy"], strict=True)
        )
        if policy == "learner"
    )
    st.markdown(
        f"Run [`{run.run_id}`]({ui.run_link(run.run_id)}) (kind env) - seed {run.seed}, "
        f"{request.steps:,} steps played in {run.seconds:.2f} s with the policies of training "
        f"run [`{learned_from}`]({ui.train_link(learned_from)}) in their slots ({slots}, "
        f"beside the sidebar's traders); stored in the database `{ui.db_path()}`."
    )
asset = ui.asset_choice(n_assets)
facts = run.facts if overview is None else ui.asset_facts(overview, asset)
regime = result.asset_series("regime", asset)
gauges = st.columns(5)
gauges[0].metric("Mean spread (ticks)", ui.fmt(facts.mean_spread_ticks))
gauges[1].metric("Excess kurtosis", ui.fmt(facts.excess_kurtosis, "{:.1f}"))
gauges[2].metric("Trades", f"{int(np.count_nonzero(result.trades['asset'] == asset)):,}")
gauges[3].metric("Volume per step", ui.fmt(facts.mean_volume, "{:.1f}"))
gauges[4].metric(
    "Last mid (ticks)", ui.fmt(float(result.asset_series("mid", asset)[-1]), "{:,.1f}")
)

st.subheader("Price, spread and volume" + (f" of asset {asset}" if n_assets > 1 else ""))
st.plotly_chart(plots_assets.asset_market_figure(steps, asset), key="market_chart")
if overview is not None and regime.any():
    st.caption(
        f"Shaded: the stress regime ({overview['regime_stress_share']:.0%} of the steps, "
        f"{overview['regime_switches']:,} switches): the fundamental is "
        f"{result.config.regimes.stress_factor:g}x as volatile and the noise traders send more, "
        "farther and larger orders."
    )

if overview is not None and n_assets > 1:
    st.subheader("Correlation of fundamental returns")
    measured = np.array(overview["fundamental_correlation"])
    configured = request.fundamental_correlation()
    left, right = st.columns([2, 3])
    with left:
        st.dataframe(
            pd.DataFrame(plots_assets.correlation_pairs(measured, configured)).round(3),
            hide_index=True,
            key="correlation_table",
        )
    with right:
        st.plotly_chart(
            plots_assets.correlation_figure(measured, configured), key="correlation_chart"
        )
    st.caption(
        f"Measured: the correlation of the fundamentals' one-step log returns over "
        f"{request.steps:,} steps; configured: the sidebar's (0 = independent). With enough "
        "steps they agree to within sampling noise."
    )

st.subheader("Order book" + (f" of asset {asset}" if n_assets > 1 else ""))
book = run.snapshots.of_asset(asset)
st.caption(
    f"The best {book.levels} price levels of each side, recorded every "
    f"{book.every} steps: the makers' thin quotes hug the mid, the noise traders' deep "
    "layer rests 20+ ticks away."
)
book_steps, prices, bids, asks = book.grid()
st.plotly_chart(
    plots.book_heatmap_figure(book_steps, prices, bids, asks, book.step, book.mid),
    key="book_heatmap",
)
last = int(book.step[-1])
if not 0 <= st.session_state.get("ladder_step", last) <= last:
    del st.session_state["ladder_step"]  # left over from a longer run
ui.default("ladder_step", last)
left, right = st.columns([1, 2])
with left:
    chosen = st.slider("Ladder at step", 0, last, step=1, key="ladder_step")
    ladder = book.ladder(chosen)
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
st.plotly_chart(plots.depth_figure(steps, asset), key="depth_chart")

execution = workbench.execution(result)
if execution:
    st.subheader("Execution takers")
    taker = result.config.taker
    st.caption(
        f"Each taker must {'buy or sell' if len(execution) > 1 else execution[0]['side']} "
        f"{taker.target:,} shares of its asset by step {execution[0]['horizon']:,} "
        f"({taker.style.upper()}), with market orders of at most {taker.max_child:,} shares "
        "before a final sweep. Shortfall: how much worse than the mid at arrival (step 0) the "
        "average fill was, fees included, in basis points (negative: better)."
    )
    fills = [workbench.execution_fills(result, order) for order in execution]
    st.plotly_chart(plots_assets.execution_figure(execution, fills), key="execution_chart")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "agent": order["agent"],
                    "asset": order["asset"],
                    "style": order["style"],
                    "side": order["side"],
                    "target": order["target"],
                    "filled": order["filled"],
                    "fills": len(fill["step"]),
                    "arrival mid": order["arrival_mid"],
                    "shortfall (bp)": order["shortfall_bp"],
                }
                for order, fill in zip(execution, fills, strict=True)
            ]
        ).round(2),
        hide_index=True,
        key="execution_table",
    )

st.subheader("Agents")
if n_assets > 1:
    st.caption(f"Inventory in asset {asset}; PnL is each agent's whole account (every asset).")
st.plotly_chart(plots.agents_figure(result.agent_steps, run.kinds, asset=asset), key="agents_chart")
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

st.subheader("Rewards")
rules = result.config.rules
charges = workbench.fees(result)
st.caption(
    "Why each agent earned what it earned (spec 000): reward = pnl (mark-to-market change) + "
    "inventory penalty (- lambda x inventory^2 summed over the steps) + liquidity bonus "
    "(makers, for quoting both sides near the mid) + delay (takers, - lambda x remaining "
    "target) + unhedged (arbitrageurs, - lambda x sum |inventory|). Fees, rebates and taxes "
    "are already inside the pnl; all in ticks x shares. "
    + (
        f"Venue charges: taker fees {charges['taker_fees']:,.0f}, maker rebates "
        f"{charges['maker_rebates']:,.0f}, taxes {charges['taxes']:,.0f} "
        f"(fee {rules.taker_fee * 1e4:g} bp, rebate {rules.maker_rebate * 1e4:g} bp)."
        if any(charges.values())
        else "No fees or rebates in this run."
    )
)
st.dataframe(
    pd.DataFrame(workbench.reward_rows(result)).round(1),
    hide_index=True,
    key="rewards_table",
)
if n_assets > 1:
    st.subheader("Positions per asset")
    st.caption("Each agent's end-of-run inventory of every asset (shares beyond its endowment).")
    st.dataframe(
        pd.DataFrame(workbench.position_rows(result)), hide_index=True, key="positions_table"
    )
