"""marl-market: the lab's front page (`streamlit run app.py`).

For now one page: run the fixed-rule ecology and look at price, fair value and spread, with the
stylised facts beside the S&P 500's. The multipage lab (markets, facts, scenarios, runs) comes
with its own issue.
"""

from __future__ import annotations

import streamlit as st

from marl_market.analysis import facts_table, sp500_reference
from marl_market.experiments import DEFAULT_RETURN_INTERVAL, run_simulation
from marl_market.plots import market_figure
from marl_market.records import InputError, validate_simulate
from marl_market.store import RunStore, StoreError, check_writable, default_db_path

st.set_page_config(page_title="marl-market", layout="wide")
st.title("marl-market")
st.caption(
    "Market makers, momentum, value and noise traders on a continuous double-auction book. "
    "Fat tails and volatility clustering emerge from their interaction."
)

with st.sidebar:
    st.header("Market")
    steps = st.slider("Steps", 1_000, 50_000, 10_000, step=1_000, key="steps")
    seed = st.number_input("Seed", 0, 2**31 - 1, 42, key="seed")
    makers = st.slider("Market makers", 0, 8, 2, key="makers")
    momentum = st.slider("Momentum traders", 0, 20, 4, key="momentum")
    value = st.slider("Value traders", 0, 20, 3, key="value")
    noise = st.slider("Noise traders", 0, 20, 4, key="noise")
    interval = st.slider(
        "Return interval (steps)", 1, 50, DEFAULT_RETURN_INTERVAL, key="return_interval"
    )
    save = st.checkbox("Store the run in the database", value=True, key="save")


@st.cache_data(show_spinner=False, max_entries=16)
def simulate_cached(options: dict, save: bool):
    """Simulate once per set of options (and store it); Streamlit reruns hit the cache."""
    request = validate_simulate(**options)
    store = RunStore(check_writable(default_db_path())) if save else None
    outcome = run_simulation(request.to_config(), request.seed, request.return_interval, store)
    steps = outcome.result.steps if outcome.result is not None else store.load_steps(outcome.run_id)
    return outcome.run_id, outcome.facts, steps


options = {
    "steps": steps,
    "seed": int(seed),
    "makers": makers,
    "momentum": momentum,
    "value": value,
    "noise": noise,
    "return_interval": interval,
}
try:
    with st.spinner("Simulating..."):
        run_id, facts, steps_table = simulate_cached(options, save)
except (InputError, StoreError) as error:
    st.error(str(error))
    st.stop()

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(market_figure(steps_table, title=f"run {run_id}"), use_container_width=True)
with right:
    st.subheader("Stylised facts")
    st.metric("Excess kurtosis", f"{facts.excess_kurtosis:.1f}")
    st.metric("Mean spread (ticks)", f"{facts.mean_spread_ticks:.2f}")
    rows = facts_table(facts, sp500_reference())
    st.table(
        {
            "fact": [r[0] for r in rows],
            "simulated": [r[1] for r in rows],
            "S&P 500": [r[2] for r in rows],
        }
    )
    if save:
        st.caption(f"Stored as run `{run_id}` in `{default_db_path()}`.")
