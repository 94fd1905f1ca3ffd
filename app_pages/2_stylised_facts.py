"""Stylised facts: fat tails, volatility clustering and a spread that tightens with competition,
for the market of the sidebar's settings, beside the S&P 500's."""

from __future__ import annotations

import streamlit as st

from app_pages import _calibrations as calibrations
from app_pages import _common as ui
from marl_market import plots
from marl_market.core.facts import acf_confidence_band
from marl_market.lab import workbench

st.title("Stylised facts")
request = ui.market_settings(multi_asset=True)
run = ui.market_run(request)
n_assets = run.result.config.n_assets
asset = ui.asset_choice(n_assets)
facts = run.facts if n_assets == 1 else ui.asset_facts(ui.market_overview(request, run), asset)
returns = workbench.returns_of(run.result.asset_series("mid", asset), run.return_interval)
st.caption(
    f"Run [`{run.run_id}`]({ui.run_link(run.run_id)}): {facts.n_returns:,} log returns of the "
    + (f"mid of asset {asset}" if n_assets > 1 else "mid")
    + f", one every {run.return_interval} steps."
)

left, right = st.columns(2)
with left:
    st.subheader("Return distribution")
    st.plotly_chart(plots.return_distribution_figure(returns), key="distribution_chart")
    st.caption(
        "Standardised returns against the standard Gaussian, log scale: fat tails lie far above "
        "the parabola."
    )
with right:
    st.subheader("QQ plot")
    st.plotly_chart(plots.qq_figure(returns), key="qq_chart")
    st.caption("Gaussian returns would sit on the dotted line; fat tails bend its ends away.")

st.subheader("Autocorrelation")
st.plotly_chart(
    plots.acf_figure(
        facts.acf_abs,
        facts.acf_raw,
        acf_confidence_band(facts.n_returns),
        run.return_interval,
    ),
    key="acf_chart",
)
st.caption(
    "Volatility clusters: the ACF of |r| stays above the dotted 95% noise band for many lags, "
    "while the ACF of r stays inside it (no linear predictability)."
)

left, right = st.columns([3, 2])
with left:
    st.subheader("Spread vs number of market makers")
    ui.default("spread_seeds", 1)
    n_seeds = int(st.number_input("Seeds per point", 1, 5, key="spread_seeds"))
    base = request.model_copy(update={"makers": 0})  # the key must not depend on the makers
    curve = ui.cached_work(
        ("spread_vs_makers", base.model_dump_json(), n_seeds, ui.db_path()),
        f"Simulating 1-{max(workbench.SPREAD_MAKERS)} makers x {n_seeds} seed(s)",
        lambda progress: workbench.spread_vs_makers(
            request, n_seeds=n_seeds, store=ui.get_store(writable=True), progress=progress
        ),
    )
    st.plotly_chart(
        plots.spread_vs_makers_figure(curve.makers, curve.mean, curve.ci_low, curve.ci_high),
        key="spread_makers_chart",
    )
    st.caption(
        f"Mean spread of {request.steps:,}-step runs with the other agents unchanged"
        + (" (asset 0's)" if n_assets > 1 else "")
        + (", with 95% CIs over seeds." if n_seeds > 1 else "; add seeds for confidence intervals.")
    )
with right:
    st.subheader("Facts beside the S&P 500" + (f" (asset {asset})" if n_assets > 1 else ""))
    st.dataframe(ui.facts_frame(facts), hide_index=True, key="facts_table")
    st.caption(
        "S&P 500: daily log returns 1999-2018 (shipped with `arch`); lags are days there and "
        f"{run.return_interval}-step intervals here."
    )

calibrations.show(request)
