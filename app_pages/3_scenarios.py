"""Scenarios: pull the market makers from a live market, switch rules on, and compare
interventions against paired baselines over many seeds.

The live market plays a chunk of steps on every rerun - a timer tick while "Live" is on, or
any click - so the crash after "Pull market makers" shows on the rerun the click causes.
Everything that changes with the run is drawn inside the fragment that ticks.
"""

from __future__ import annotations

import math
import os

import streamlit as st

from app_pages import _common as ui
from marl_market import lab, plots
from marl_market.core.config import MarketConfig
from marl_market.live import CHUNK, PRE_PULL_WINDOW, LiveRun
from marl_market.records import InputError, validate_scenario
from marl_market.store import StoreError

TICK_SECONDS = 1.0  # timer interval of the live panel (a tick plays one chunk)
# Steps the live charts show (the latest ones). The browser redraws them on every tick, and
# market_figure's per-step volume bars cost ~0.15 ms each to draw, so the window stays short.
LIVE_WINDOW = 2_000
LIVE = "live_run"  # session-state key of the LiveRun
COMPARE = "compare_result"  # session-state key of the last comparison


def pull_market_makers() -> None:
    """Button callback, run before the rerun it causes: the makers leave at the current step.

    Idempotent, because clicks can be replayed or merged with timer ticks."""
    live: LiveRun | None = st.session_state.get(LIVE)
    if live is not None:
        live.pull()


def bring_makers_back() -> None:
    live: LiveRun | None = st.session_state.get(LIVE)
    if live is not None:
        live.bring_back()


def start_live(key: tuple, config: MarketConfig, seed: int, warmup: int, return_after: int) -> None:
    """A fresh live run in session state (also the Restart button's callback: that click
    reruns only the fragment, so the callback itself must leave a run there)."""
    st.session_state[LIVE] = LiveRun.start(
        key, config, seed, warmup, return_after=return_after or None
    )


st.title("Scenarios")
request = ui.market_settings()

# ------------------------------------------------------------------------------ live market
st.header("Live market")
st.caption(
    "The sidebar's population and seed, played live: warm-up steps first, then "
    f"{CHUNK} steps per tick. Pull the market makers and watch the spread blow up and, once "
    "they are back, recover."
)
ui.default("live_warmup", 1_000)
ui.default("live_return_after", 500)
ui.default("live_playing", True)
settings = st.columns([2, 2, 1])
warmup = settings[0].slider("Warm-up steps", 200, 5_000, step=100, key="live_warmup")
return_after = settings[1].number_input(
    "Makers return after (steps, 0 = only on request)", 0, 10_000, step=100, key="live_return_after"
)
playing = settings[2].toggle(
    "Live", key="live_playing", help=f"Play {CHUNK} steps every {TICK_SECONDS:g} s."
)

population = (request.makers, request.momentum, request.value, request.noise)
key = (population, request.seed, warmup, return_after)
live_args = (key, request.to_config(), request.seed, warmup, int(return_after))
live: LiveRun | None = st.session_state.get(LIVE)
if live is None or live.key != key:
    with st.spinner(f"Warming up {warmup:,} steps..."):
        start_live(*live_args)


@st.fragment(run_every=TICK_SECONDS if playing else None)
def live_panel() -> None:
    """Controls, gauges and charts of the live run; the run advances one chunk per call."""
    live: LiveRun = st.session_state[LIVE]
    ui.default("short_ban", False)
    ui.default("tobin_tax", False)
    ui.default("tobin_tax_bp", 10)
    buttons = st.columns([1.3, 1.3, 1, 3])
    buttons[0].button(
        "Pull market makers",
        key="pull_market_makers",
        on_click=pull_market_makers,
        type="primary",
        disabled=live.pulled_at is not None,
        help="Every market maker cancels its quotes and stops quoting (once per run).",
        width="stretch",
    )
    buttons[1].button(
        "Bring makers back",
        key="return_market_makers",
        on_click=bring_makers_back,
        disabled=live.pulled_at is None or live.returned_at is not None,
        width="stretch",
    )
    buttons[2].button(
        "Restart", key="restart_live", on_click=start_live, args=live_args, width="stretch"
    )
    rules = st.columns([1, 1, 2])
    short_ban = rules[0].toggle(
        "Short-selling ban", key="short_ban", help="No agent may sell more shares than it owns."
    )
    tobin = rules[1].toggle(
        "Tobin tax", key="tobin_tax", help="Both sides of every trade pay the tax rate."
    )
    tax_bp = rules[2].slider("Tax rate (bp of notional)", 1, 100, key="tobin_tax_bp")
    live.apply_rules(short_ban, tax_bp if tobin else 0.0)
    if not live.full:
        live.advance()
    else:
        st.warning("The live run is full: restart it to go on.")

    now, before = live.spread_now(), live.spread_before()
    pulled = live.pulled_at is not None
    ratio = now / before if math.isfinite(now) and math.isfinite(before) and before > 0 else None
    recovery = live.recovery_steps()
    gauges = st.columns(5)
    gauges[0].metric("Step", f"{live.t:,}")
    gauges[1].metric(
        "Spread (ticks)",
        ui.fmt(now, "{:.1f}"),
        delta=None if ratio is None else f"x{ratio:.1f} vs " + ("pre-pull" if pulled else "so far"),
        delta_color="inverse",
        help=f"Mean best ask - best bid over the last {live.chunk} steps.",
    )
    gauges[2].metric(
        "Pre-pull spread (ticks)" if pulled else "Spread so far (ticks)",
        ui.fmt(before, "{:.1f}"),
        help=f"Mean spread over the {PRE_PULL_WINDOW} steps before the pull."
        if pulled
        else "Mean spread of the run before the last chunk.",
    )
    result = live.result()
    depth = result.asset_series("bid_depth") + result.asset_series("ask_depth")
    gauges[3].metric("Depth near the mid", ui.fmt(float(depth[-live.chunk :].mean()), "{:.0f}"))
    gauges[4].metric(
        "Spread recovered after",
        "-" if recovery is None else f"{recovery:,} steps",
        help="Steps from the makers' return until the spread stays within 1.5x its pre-pull "
        "mean for 50 steps.",
    )
    status = []
    if live.pulled_at is not None:
        status.append(f"makers pulled at step **{live.pulled_at:,}**")
    if live.returned_at is not None:
        status.append(f"back at step **{live.returned_at:,}**")
    elif live.pulled_at is not None and live.return_after:
        status.append(f"returning at step {live.pulled_at + live.return_after:,}")
    st.caption(
        "; ".join(status)
        or f"Warm-up of {live.warmup:,} steps took {live.warmup_seconds:.2f} s; "
        f"each chunk of {live.chunk} steps takes about {live.last_chunk_seconds * 1000:.0f} ms."
    )

    first = live.t - LIVE_WINDOW
    recent = result.steps["step"] >= first
    window = {name: column[recent] for name, column in result.steps.items()}
    events = [(step, text) for step, text in live.events if step >= first]  # keep the x range
    st.plotly_chart(plots.add_events(plots.market_figure(window), events), key="live_price_chart")
    st.plotly_chart(plots.add_events(plots.depth_figure(window), events), key="live_depth_chart")


live_panel()

# ------------------------------------------------------------------------------ compare
st.header("Compare over seeds")
st.caption(
    "Each scenario starts half-way through a run of the sidebar's population and is measured "
    "against a baseline with the same seed (common random numbers); the CI is over seeds of the "
    "paired difference. Everything is stored."
)
ui.default("compare_kinds", ["flash_crash", "short_ban", "tobin_tax"])
ui.default("compare_seeds", 5)
ui.default("compare_steps", 2_000)
ui.default("compare_tax_bp", 10.0)
options = st.columns([3, 1, 1, 1])
kinds = options[0].multiselect(
    "Scenarios",
    ["flash_crash", "short_ban", "tobin_tax", "stress", "drought", "shock"],
    key="compare_kinds",
)
n_seeds = options[1].number_input("Seeds", 1, 100, key="compare_seeds")
steps = options[2].number_input("Steps per run", 100, 50_000, step=500, key="compare_steps")
tax_bp = options[3].number_input("Tobin tax (bp)", 0.0, 10_000.0, key="compare_tax_bp")

if st.button("Compare scenarios", key="run_compare", type="primary"):
    try:
        if not kinds:
            raise InputError("choose at least one scenario")
        compare_request = validate_scenario(
            kind="compare",
            seed=request.seed,
            seeds=int(n_seeds),
            steps=int(steps),
            tax_bp=float(tax_bp),
            makers=request.makers,
            momentum=request.momentum,
            value=request.value,
            noise=request.noise,
        )
        store = ui.get_store(writable=True)
    except (InputError, StoreError) as error:
        st.error(f"Cannot compare: {error}")
    else:
        n_runs = compare_request.seeds * (len(kinds) + 1)
        with st.status(f"Running {n_runs} markets over {n_seeds} seed(s)...") as status:
            bar = st.progress(0.0)
            try:
                outcome = lab.compare_scenarios(
                    compare_request,
                    list(kinds),
                    store=store,
                    workers=min(os.cpu_count() or 1, compare_request.seeds),
                    progress=lambda done, total: bar.progress(
                        done / total, text=f"{done}/{total} seeds"
                    ),
                )
            except (ValueError, StoreError) as error:
                status.update(label="Comparison failed", state="error")
                st.error(f"Cannot compare: {error}")
            else:
                status.update(label=f"Compared {n_runs} markets", state="complete")
                st.session_state[COMPARE] = outcome.as_dict()

compared = st.session_state.get(COMPARE)
if compared is not None:
    summaries = {kind: compared[kind] for kind in compared["kinds"]}
    where = (
        f"stored as run [`{compared['run_id']}`]({ui.run_link(compared['run_id'])})"
        if compared.get("run_id")
        else "scenario runs stored"
    )
    st.markdown(
        f"{len(compared['seeds'])} seed(s) from {compared['seeds'][0]}, "
        f"{compared['steps']:,} steps per run; {where}"
        + (" (read back from the database)." if compared.get("cached") else ".")
    )
    st.plotly_chart(plots.compare_figure(summaries), key="compare_chart")
    for kind, summary in summaries.items():
        st.markdown(f"**{kind.replace('_', ' ')}** vs baseline")
        st.dataframe(ui.summary_frame(summary), hide_index=True, key=f"compare_table_{kind}")
