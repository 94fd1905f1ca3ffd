"""Scenarios: pull the market makers from a live market, switch rules on, and compare
interventions against paired baselines over many seeds.

The live market (``marl_market.core.live``, the same one dashboard.html plays) advances one
chunk per timer tick while "Live" is on, and on every click while it is on, so the crash after
"Pull market makers" shows on the rerun the click causes. Paused, or once the run has played
its configured length, the page registers no timer at all: ``st.fragment``'s ``run_every`` is
set only by a full script run, so the panel reruns the whole page the moment the run finishes,
and that run draws the fragment without a timer. An idle page then does nothing until a click.
"""

from __future__ import annotations

import os

import streamlit as st

from app_pages import _common as ui
from marl_market import plots
from marl_market.core.config import MarketConfig
from marl_market.core.live import CHART_WINDOW, CHUNK, GAUGE_WIDTHS, LiveMarket
from marl_market.core.scenarios import SCENARIO_KINDS
from marl_market.lab import workbench
from marl_market.store import StoreError
from marl_market.store.records import InputError, validate_scenario

TICK_SECONDS = 1.0  # timer interval of the live panel while it plays (a tick plays one chunk)
LIVE = "live_run"  # session-state key of the LiveMarket
TIMED = "live_timer"  # session-state key: the tick interval the last full run registered
COMPARE = "compare_result"  # session-state key of the last comparison
COMPARE_LISTINGS = "compare_listings"  # and the venues of its market's books (None: no venues)


def pull_market_makers() -> None:
    """Button callback, run before the rerun it causes: the makers leave at the current step.

    Idempotent, because clicks can be replayed or merged with timer ticks."""
    live: LiveMarket | None = st.session_state.get(LIVE)
    if live is not None:
        live.pull()


def bring_makers_back() -> None:
    live: LiveMarket | None = st.session_state.get(LIVE)
    if live is not None:
        live.bring_back()


def play_chunk() -> None:
    """Button callback while paused: one chunk, then the page is idle again."""
    live: LiveMarket | None = st.session_state.get(LIVE)
    if live is not None:
        live.advance()


def start_live(key: tuple, config: MarketConfig, seed: int, warmup: int, length: int) -> None:
    """A fresh live run in session state (also the Restart button's callback: that click
    reruns only the fragment, so the callback itself must leave a run there)."""
    st.session_state[LIVE] = LiveMarket.start(
        key, config, seed, warmup, length, return_after=return_after_setting()
    )


def return_after_setting() -> int | None:
    """Steps the makers stay away (None: until "Bring makers back")."""
    steps = int(st.session_state.get("live_return_after", 0))
    return steps or None


st.title("Scenarios")
request = ui.market_settings(multi_asset=True)
config = request.to_config()
n_books = config.n_assets

# ------------------------------------------------------------------------------ live market
st.header("Live market")
st.caption(
    "The sidebar's population and seed, played live: warm-up steps first, then "
    f"{CHUNK} steps every {TICK_SECONDS:g} s while Live is on. Pull the market makers and "
    "watch the spread blow up and, once they are back, recover."
)
ui.default("live_warmup", 1_000)
ui.default("live_length", 100_000)
ui.default("live_return_after", 2_000)
ui.default("live_playing", True)
settings = st.columns([2, 2, 2, 1])
warmup = settings[0].slider("Warm-up steps", 200, 5_000, step=100, key="live_warmup")
length = settings[1].number_input(
    "Run length (steps)",
    10_000,  # above the longest warm-up
    1_000_000,
    step=10_000,
    key="live_length",
    help="The live run stops here (warm-up included); changing it starts a new run. The "
    f"charts show the latest {CHART_WINDOW:,} steps.",
)
settings[2].number_input(
    "Makers return after N steps",
    0,
    1_000_000,
    step=500,
    key="live_return_after",
    help='Steps the makers stay away after the pull; 0 = only when you click "Bring makers '
    'back". A change applies to the running market.',
)
playing = settings[3].toggle(
    "Live", key="live_playing", help=f"Play {CHUNK} steps every {TICK_SECONDS:g} s."
)
if n_books > 1:
    # The live market measures one book (``LiveMarket`` keeps asset 0's series and gauges).
    st.caption(
        f"This market has {n_books} books: the live panel shows "
        f"{ui.book_name(0, config.listings)} (its gauges and charts). The other books trade "
        "alongside it and every intervention reaches them too; the comparison below measures "
        "every book."
    )

# The whole market but the run length of the sidebar (the live run has its own): a change of
# assets, fees or traders starts a new live run.
market_key = request.model_dump_json(exclude={"steps", "return_interval"})
key = (market_key, warmup, int(length))
live_args = (key, config, request.seed, warmup, int(length))
live: LiveMarket | None = st.session_state.get(LIVE)
if live is None or live.key != key:
    with st.spinner(f"Warming up {warmup:,} steps..."):
        start_live(*live_args)
    live = st.session_state[LIVE]
live.return_after = return_after_setting()
# The timer exists only while there is something to play.
st.session_state[TIMED] = TICK_SECONDS if playing and not live.full else None


@st.fragment(run_every=st.session_state[TIMED])
def live_panel() -> None:
    """Controls, gauges and charts of the live run; it advances one chunk per call while
    playing, and not at all while paused."""
    live: LiveMarket = st.session_state[LIVE]
    ui.default("short_ban", False)
    ui.default("tobin_tax", False)
    ui.default("tobin_tax_bp", 10)
    buttons = st.columns([1.3, 1.3, 1.3, 1, 2])
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
        f"Play {CHUNK} steps",
        key="play_chunk",
        on_click=play_chunk,
        disabled=live.full or bool(st.session_state.get("live_playing")),
        help="Step the paused run by hand.",
        width="stretch",
    )
    buttons[3].button(
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
    if st.session_state.get("live_playing") and not live.full:
        live.advance()
    if live.full:
        if st.session_state.get(TIMED):
            st.rerun(scope="app")  # re-registers this fragment without its timer
        st.info(f"The live run has played all its {live.length:,} steps: restart it to go on.")

    for column, gauge in zip(st.columns(GAUGE_WIDTHS), live.gauges(), strict=True):
        column.metric(**gauge.kwargs())
    st.caption(
        live.status()
        or f"Warm-up of {live.warmup:,} steps took {live.warmup_seconds:.2f} s; "
        f"each chunk of {live.chunk} steps takes about {live.last_chunk_seconds * 1000:.0f} ms."
    )
    window, events = live.recent_steps(), live.recent_events()
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
ui.default("compare_kinds", list(SCENARIO_KINDS[:3]))  # the crash and the two rules
ui.default("compare_seeds", 5)
ui.default("compare_steps", 2_000)
ui.default("compare_tax_bp", 10.0)
options = st.columns([3, 1, 1, 1])
kinds = options[0].multiselect(
    "Scenarios",
    SCENARIO_KINDS,
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
                outcome = workbench.compare_scenarios(
                    compare_request,
                    list(kinds),
                    store=store,
                    workers=min(os.cpu_count() or 1, compare_request.seeds),
                    progress=lambda done, total: bar.progress(
                        done / total, text=f"{done}/{total} seeds"
                    ),
                    market=request,  # the sidebar's assets, venues, fees and traders
                )
            except (ValueError, StoreError) as error:
                status.update(label="Comparison failed", state="error")
                st.error(f"Cannot compare: {error}")
            else:
                status.update(label=f"Compared {n_runs} markets", state="complete")
                st.session_state[COMPARE] = outcome.as_dict()
                st.session_state[COMPARE_LISTINGS] = config.listings

compared = st.session_state.get(COMPARE)
if compared is not None:
    summaries = {kind: compared[kind] for kind in compared["kinds"]}
    books = compared.get("assets") or []  # every book's statistics, in a market of several
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
    if books:
        listings = st.session_state.get(COMPARE_LISTINGS)
        st.caption(
            f"Measured on each of the {len(books)} books: choose one. Every intervention reaches "
            "the whole market, except the fundamental shock, which moves asset 0 (on every "
            "venue it is listed on)."
        )
        book = ui.asset_choice(len(books), listings, key="compare_asset")
        summaries = books[book]["summaries"]
    st.plotly_chart(plots.compare_figure(summaries), key="compare_chart")
    for kind, summary in summaries.items():
        st.markdown(f"**{kind.replace('_', ' ')}** vs baseline")
        st.dataframe(ui.summary_frame(summary), hide_index=True, key=f"compare_table_{kind}")
