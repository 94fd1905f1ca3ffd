"""marl-market in the browser: the fixed-rule market, live, with no Python installed.

This is the Streamlit script that ``dashboard.html`` runs under stlite (Streamlit 1.40 on
Pyodide, plotly 5.24, numpy 2.0); it runs unchanged on the server's Streamlit too
(``streamlit run marl_market/lite/page.py``). It imports only streamlit, plotly, numpy and the
project's numpy-only core plus ``marl_market.plots``: the builder embeds exactly those sources,
so there is no second copy of the model. The live market is ``core.live.LiveMarket``, the one
the app's Scenarios page plays, and the charts mark its events with ``plots.add_events``.
Tables are markdown, not ``st.dataframe``/``st.table``, which need pyarrow, and stlite ships
only a stub of it.

The live run has no timers (Pyodide has no background threads to drive one), so an untouched
page does nothing: the ``LiveMarket`` lives in ``st.session_state`` and every rerun plays the
next ``CHUNK`` steps. "Pull market makers" pulls them in its ``on_click`` callback, before the
rerun's chunk is played, so the crash shows in the spread metric on that same rerun.
"""

from __future__ import annotations

import time

import streamlit as st

from marl_market.core.config import MarketConfig, Population
from marl_market.core.facts import acf_confidence_band, compute_facts
from marl_market.core.live import CHART_WINDOW, CHUNK, GAUGE_WIDTHS, LiveMarket
from marl_market.core.numbers import fmt
from marl_market.core.scenarios import (
    SCENARIO_KINDS,
    Scenario,
    baseline_metrics,
    measure,
    run_with_baseline,
    summarise,
)
from marl_market.plots import acf_figure, add_events, depth_figure, market_figure

RETURN_INTERVAL = 5  # steps between the returns of the stylised facts (as in the full app)
MAX_LAG = 50
COMPARE_SEEDS = 3
COMPARE_KINDS = SCENARIO_KINDS[:3]  # the makers' pull and the two rules
COMPARE_METRICS = (
    ("spread_blowup", "Spread blow-up (x pre-event)", "{:.2f}"),
    ("depth_ratio", "Depth near the mid (x pre-event)", "{:.2f}"),
    ("max_drawdown_pct", "Max drawdown (%)", "{:.2f}"),
    ("volume_change_pct", "Volume vs baseline (%)", "{:+.1f}"),
    ("tracking_error", "Mid - fair value, RMS (ticks)", "{:.1f}"),
)


def pull_market_makers() -> None:
    """Button callback: every maker leaves now; later clicks change nothing."""
    live = st.session_state.get("live")
    if live is not None:
        live.pull()


def bring_makers_back() -> None:
    live = st.session_state.get("live")
    if live is not None:
        live.bring_back()


def request_restart() -> None:
    """Button callback: the next rerun starts a fresh live run."""
    st.session_state["live"] = None


def compare(config: MarketConfig, seed: int, tax_bp: float) -> dict[str, dict]:
    """Each scenario against its paired baseline over ``COMPARE_SEEDS`` seeds (summarised)."""
    scenarios = [Scenario(kind, tax_bp=tax_bp).resolved(config.steps) for kind in COMPARE_KINDS]
    pairs: dict[str, list[tuple[dict, dict]]] = {kind: [] for kind in COMPARE_KINDS}
    for s in range(seed, seed + COMPARE_SEEDS):
        # One baseline per seed; each scenario forks off it at the intervention.
        baseline, results = run_with_baseline(config, scenarios, s)
        for scenario, result in zip(scenarios, results, strict=True):
            pairs[scenario.kind].append(
                (measure(result, scenario, baseline), baseline_metrics(baseline, scenario))
            )
    return {kind: summarise(kind, pairs[kind]) for kind in COMPARE_KINDS}


def comparison_markdown(summaries: dict[str, dict]) -> str:
    """A markdown table: one row per metric, "scenario (baseline)" means per scenario."""
    header = "| metric | " + " | ".join(k.replace("_", " ") for k in summaries) + " |"
    lines = [header, "|---" * (len(summaries) + 1) + "|"]
    for metric, label, pattern in COMPARE_METRICS:
        cells = []
        for summary in summaries.values():
            entry = summary[metric]
            cells.append(f"{fmt(entry['mean'], pattern)} ({fmt(entry['baseline_mean'], pattern)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the page
st.set_page_config(page_title="marl-market dashboard", layout="wide")
st.title("marl-market: a live market in your browser")
st.caption(
    "Market makers, momentum, value and noise traders on a continuous double-auction book, "
    "simulated by the project's own engine in this browser tab (Pyodide). Pull the market "
    "makers and watch liquidity vanish."
)

with st.sidebar:
    st.header("Market")
    makers = st.slider("Market makers", 0, 8, 2, key="makers")
    momentum = st.slider("Momentum traders", 0, 20, 4, key="momentum")
    value = st.slider("Value traders", 0, 20, 3, key="value")
    noise = st.slider("Noise traders", 0, 20, 4, key="noise")
    steps = st.slider("Steps", 1_000, 10_000, 2_000, step=500, key="steps")
    seed = int(st.number_input("Seed", 0, 2**31 - 1, 42, key="seed"))
    length = int(
        st.number_input(
            "Live run length (steps)",
            15_000,
            1_000_000,
            100_000,
            step=10_000,
            key="live_length",
            help="The live run stops here (the first steps included); a change starts a new "
            f"run. The charts show the latest {CHART_WINDOW:,} steps.",
        )
    )
    return_after = int(
        st.number_input(
            "Makers return after N steps",
            0,
            1_000_000,
            2_000,
            step=500,
            key="return_after",
            help='Steps the makers stay away after the pull; 0 = only when you click "Bring '
            'makers back". A change applies to the running market.',
        )
    )
    st.header("Rules (live)")
    live_help = "Applies to the live run from its current step, until switched off."
    short_ban = st.toggle("Short-selling ban", value=False, key="short_ban", help=live_help)
    tobin = st.toggle("Tobin tax", value=False, key="tobin", help=live_help)
    tax_bp = st.slider(
        "Tax rate (bp of notional)", 1, 100, 10, key="tax_bp", help="Paid by both sides."
    )

population = Population(makers=makers, momentum=momentum, value=value, noise=noise)
if population.total == 0:
    st.error("The population is empty: add at least one trader.")
    st.stop()
config = MarketConfig(steps=steps, population=population)
key = (population, steps, seed, length)

live = st.session_state.get("live")
fresh = live is None or live.key != key
if fresh:
    with st.spinner(f"Simulating {steps:,} steps..."):
        live = LiveMarket.start(key, config, seed, warmup=steps, length=length)
    st.session_state["live"] = live
# Settings and rules apply from the step the run has reached; then this rerun's chunk.
live.return_after = return_after or None
live.apply_rules(short_ban, tax_bp if tobin else 0.0)
if not fresh:
    live.advance()

st.caption(
    f"simulated {live.warmup:,} steps in {live.warmup_seconds:.2f} s"
    + (
        f"; the last {CHUNK} live steps took {live.last_chunk_seconds:.2f} s"
        if live.t > live.warmup
        else ""
    )
)

buttons = st.columns([1, 1, 1, 1, 2])
buttons[0].button(
    "Pull market makers",
    key="pull",
    on_click=pull_market_makers,
    type="primary",
    help="Every market maker cancels its quotes and stops quoting (once per run).",
)
buttons[1].button(
    "Bring makers back",
    key="bring_back",
    on_click=bring_makers_back,
    disabled=live.pulled_at is None or live.returned_at is not None,
)
buttons[2].button(f"Advance {CHUNK} steps", key="advance", help="Any interaction plays on.")
buttons[3].button("Restart the run", key="restart", on_click=request_restart)
buttons[4].markdown(live.status())
if live.full:
    st.warning(f"The live run has played all its {live.length:,} steps: restart it to go on.")
for column, gauge in zip(st.columns(GAUGE_WIDTHS), live.gauges(), strict=True):
    column.metric(**gauge.kwargs())

window, events = live.recent_steps(), live.recent_events()
price_fig = market_figure(window, title="Price, spread and volume")
st.plotly_chart(add_events(price_fig, events), key="price_chart")
st.plotly_chart(add_events(depth_figure(window, title="Liquidity"), events), key="depth_chart")

st.subheader("Stylised facts")
spread = live.series("spread")
try:
    facts = compute_facts(
        live.series("mid"), spread, live.series("volume"), RETURN_INTERVAL, MAX_LAG
    )
except ValueError as error:  # too few returns for facts
    st.info(str(error))
else:
    cols = st.columns(4)
    cols[0].metric("Excess kurtosis", fmt(facts.excess_kurtosis, "{:.1f}"), help="0 for a Gaussian")
    cols[1].metric("ACF of |r|, lag 1", fmt(facts.acf_abs[0]))
    cols[2].metric(f"ACF of |r|, lag {facts.max_lag}", fmt(facts.acf_abs[-1]))
    cols[3].metric("ACF of r, lag 1", fmt(facts.acf_raw[0]))
    st.plotly_chart(
        acf_figure(
            facts.acf_abs, facts.acf_raw, acf_confidence_band(facts.n_returns), RETURN_INTERVAL
        ),
        key="acf_chart",
    )
    st.caption(
        f"{facts.n_returns} returns every {RETURN_INTERVAL} steps over the whole live run "
        "(interventions included). Fat tails: kurtosis well above 0; volatility clustering: "
        "the ACF of |r| stays above the dotted noise band while the ACF of r does not."
    )

st.subheader(f"Scenarios over {COMPARE_SEEDS} seeds")
st.markdown(
    f"Each scenario starts half-way through a {steps:,}-step run of the population above and "
    f"is measured against a baseline run with the same seed (seeds {seed}-"
    f"{seed + COMPARE_SEEDS - 1}; Tobin tax {tax_bp} bp). Cells: scenario mean (baseline mean)."
)
compare_key = (population, steps, seed, tax_bp)
if st.button("Compare scenarios", key="compare"):
    started = time.perf_counter()
    with st.spinner(f"Running {COMPARE_SEEDS * (1 + len(COMPARE_KINDS))} markets..."):
        summaries = compare(MarketConfig(steps=steps, population=population), seed, tax_bp)
    st.session_state["comparison"] = (compare_key, summaries, time.perf_counter() - started)
stored = st.session_state.get("comparison")
if stored is not None and stored[0] == compare_key:
    st.markdown(comparison_markdown(stored[1]))
    st.caption(f"compared in {stored[2]:.1f} s")
elif stored is not None:
    st.caption("The settings changed since the last comparison: run it again.")
