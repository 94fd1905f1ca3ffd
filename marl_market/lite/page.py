"""marl-market in the browser: the fixed-rule market, live, with no Python installed.

This is the Streamlit script that ``dashboard.html`` runs under stlite (Streamlit 1.40 on
Pyodide, plotly 5.24, numpy 2.0); it runs unchanged on the server's Streamlit too
(``streamlit run marl_market/lite/page.py``). It imports only streamlit, plotly, numpy and the
project's numpy-only core plus ``marl_market.plots``: the builder embeds exactly those sources,
so there is no second copy of the model. Tables are markdown, not ``st.dataframe``/``st.table``,
which need pyarrow, and stlite ships only a stub of it.

The live run has no timers (Pyodide has no background threads to drive one): the ``Market``
lives in ``st.session_state`` and every rerun plays the next ``CHUNK`` steps. "Pull market
makers" pulls them in its ``on_click`` callback, before the rerun's chunk is played, so the
crash shows in the spread metric on that same rerun.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from marl_market.core.config import MarketConfig, Population, Rules
from marl_market.core.facts import acf_confidence_band, compute_facts
from marl_market.core.market import Market
from marl_market.core.scenarios import (
    Scenario,
    baseline_metrics,
    measure,
    run_with_baseline,
    summarise,
)
from marl_market.plots import acf_figure, depth_figure, market_figure

CHUNK = 200  # steps each rerun adds to the live run
HEADROOM = 20_000  # steps the live run may go on after the initial run (100 reruns)
PRE_PULL_WINDOW = 500  # steps before the pull whose mean spread is the "before"
RETURN_INTERVAL = 5  # steps between the returns of the stylised facts (as in the full app)
MAX_LAG = 50
COMPARE_SEEDS = 3
COMPARE_KINDS = ("flash_crash", "short_ban", "tobin_tax")
COMPARE_METRICS = (
    ("spread_blowup", "Spread blow-up (x pre-event)", "{:.2f}"),
    ("depth_ratio", "Depth near the mid (x pre-event)", "{:.2f}"),
    ("max_drawdown_pct", "Max drawdown (%)", "{:.2f}"),
    ("volume_change_pct", "Volume vs baseline (%)", "{:+.1f}"),
    ("tracking_error", "Mid - fair value, RMS (ticks)", "{:.1f}"),
)


@dataclass
class LiveRun:
    """The market the page keeps across reruns, and what was done to it when."""

    key: tuple
    market: Market
    initial_steps: int
    initial_seconds: float
    pulled_at: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)
    last_chunk_seconds: float = 0.0


def advance(market: Market, n: int) -> float:
    """Play up to ``n`` more steps (fewer if the run is full); return the seconds it took."""
    start = time.perf_counter()
    market.advance(market.t + n)
    return time.perf_counter() - start


def start_live(key: tuple, config: MarketConfig, seed: int, steps: int) -> LiveRun:
    """A new live market with ``steps`` steps already played (room for ``HEADROOM`` more)."""
    market = Market(config.replace(steps=steps + HEADROOM), seed)
    seconds = advance(market, steps)
    return LiveRun(key=key, market=market, initial_steps=steps, initial_seconds=seconds)


def pull_market_makers() -> None:
    """Button callback: every maker leaves now; later clicks change nothing."""
    live = st.session_state.get("live")
    if live is None or live.pulled_at is not None:
        return
    live.market.pull_market_makers()
    live.pulled_at = live.market.t
    live.events.append((live.market.t, "makers pulled"))


def request_restart() -> None:
    """Button callback: the next rerun starts a fresh live run."""
    st.session_state["live"] = None


def apply_rules(live: LiveRun, rules: Rules) -> None:
    """Switch the live market to ``rules`` from the current step, if they changed."""
    old = live.market.config.rules
    if old == rules:
        return
    live.market.set_rules(rules)
    if old.short_ban != rules.short_ban:
        live.events.append((live.market.t, "short ban " + ("on" if rules.short_ban else "off")))
    if old.tobin_tax != rules.tobin_tax:
        live.events.append((live.market.t, f"Tobin tax {rules.tobin_tax * 1e4:g} bp"))


def nanmean(x: np.ndarray) -> float:
    """Mean ignoring NaN (a one-sided book has no spread); NaN if nothing is left."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    """A number for display; missing or non-finite values show as a dash."""
    if value is None or not math.isfinite(value):
        return "-"
    return pattern.format(value)


def spread_metrics(live: LiveRun, spread: np.ndarray, now_slot, before_slot) -> None:
    """The spread of the latest chunk (in ``now_slot``) and, once the makers are gone, the
    pre-pull mean it is compared with (in ``before_slot``)."""
    now = nanmean(spread[-CHUNK:])
    if live.pulled_at is not None:
        ref = nanmean(spread[max(0, live.pulled_at - PRE_PULL_WINDOW) : live.pulled_at])
        label = "vs pre-pull"
    else:
        ref = nanmean(spread[:-CHUNK]) if len(spread) > CHUNK else now
        label = "vs run mean"
    delta = f"{now - ref:+.1f} {label}" if math.isfinite(now - ref) else None
    now_slot.metric(
        "Spread (ticks)",
        fmt(now, "{:.1f}"),
        delta,
        delta_color="inverse",
        help=f"Mean best ask - best bid over the last {CHUNK} steps.",
    )
    if live.pulled_at is not None:
        before_slot.metric(
            "Pre-pull spread (ticks)",
            fmt(ref, "{:.1f}"),
            help=f"Mean spread over the {PRE_PULL_WINDOW} steps before the pull.",
        )


def mark_events(fig: go.Figure, events: list[tuple[int, str]]) -> None:
    """Vertical lines at the interventions, so cause and effect line up on the charts."""
    for step, text in events:
        fig.add_vline(x=step, line={"width": 1, "dash": "dash", "color": "crimson"})
        fig.add_annotation(
            x=step, y=1, yref="paper", text=text, showarrow=False, xanchor="left", yanchor="top"
        )


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
rules = Rules(short_ban=short_ban, tobin_tax=tax_bp * 1e-4 if tobin else 0.0)
config = MarketConfig(steps=steps, population=population, rules=rules)
key = (population, steps, seed)

live = st.session_state.get("live")
if live is None or live.key != key:
    with st.spinner(f"Simulating {steps:,} steps..."):
        live = start_live(key, config, seed, steps)
    st.session_state["live"] = live
else:
    apply_rules(live, rules)
    live.last_chunk_seconds = advance(live.market, CHUNK)

market = live.market
result = market.result()
spread = result.asset_series("spread")
depth = result.asset_series("bid_depth") + result.asset_series("ask_depth")

st.caption(
    f"simulated {live.initial_steps:,} steps in {live.initial_seconds:.2f} s"
    + (
        f"; the last {CHUNK} live steps took {live.last_chunk_seconds:.2f} s"
        if market.t > steps
        else ""
    )
)

buttons = st.columns([1, 1, 1, 3])
buttons[0].button(
    "Pull market makers",
    key="pull",
    on_click=pull_market_makers,
    type="primary",
    help="Every market maker cancels its quotes and stops quoting (once per run).",
)
buttons[1].button(f"Advance {CHUNK} steps", key="advance", help="Any interaction plays on.")
buttons[2].button("Restart the run", key="restart", on_click=request_restart)
if live.pulled_at is not None:
    buttons[3].markdown(f"Makers pulled at step **{live.pulled_at:,}**.")
if market.t >= market.config.steps:
    st.warning("The live run is full: restart it to go on.")
gauges = st.columns(5)
gauges[0].metric("Step", f"{market.t:,}")
spread_metrics(live, spread, gauges[1], gauges[2])
gauges[3].metric("Depth near the mid", f"{nanmean(depth[-CHUNK:].astype(float)):.0f}")
gauges[4].metric("Mid (ticks)", f"{result.asset_series('mid')[-1]:,.1f}")

price_fig = market_figure(result.steps, title="Price, spread and volume")
mark_events(price_fig, live.events)
st.plotly_chart(price_fig, key="price_chart")
depth_fig = depth_figure(result.steps, title="Liquidity")
mark_events(depth_fig, live.events)
st.plotly_chart(depth_fig, key="depth_chart")

st.subheader("Stylised facts")
try:
    facts = compute_facts(
        result.asset_series("mid"), spread, result.asset_series("volume"), RETURN_INTERVAL, MAX_LAG
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
