"""Plotly figures of a run, from its columnar arrays (numpy + plotly only: the browser build
uses this module too, with plotly 5.24 there and 6+ on the server, so only long-stable API)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def market_figure(steps: dict[str, np.ndarray], asset: int = 0, title: str = "") -> go.Figure:
    """Mid price against fair value, the spread and the volume of one asset, over time."""
    rows = steps["asset"] == asset
    step = steps["step"][rows]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.55, 0.25, 0.20],
        subplot_titles=("Mid price vs fair value (ticks)", "Spread (ticks)", "Volume"),
    )
    fig.add_trace(go.Scatter(x=step, y=steps["mid"][rows], name="mid", line={"width": 1}), 1, 1)
    fig.add_trace(
        go.Scatter(
            x=step,
            y=steps["fair_value"][rows],
            name="fair value",
            line={"width": 1, "dash": "dot"},
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(x=step, y=steps["spread"][rows], name="spread", line={"width": 1}), 2, 1
    )
    fig.add_trace(go.Bar(x=step, y=steps["volume"][rows], name="volume"), 3, 1)
    fig.update_layout(
        title=title or None,
        height=640,
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "y": 1.06},
        bargap=0,
    )
    fig.update_xaxes(title_text="step", row=3, col=1)
    return fig


def depth_figure(steps: dict[str, np.ndarray], asset: int = 0, title: str = "") -> go.Figure:
    """Resting quantity near the mid (bid and ask side) and the market makers present, over time.

    Depth is what a crash drains first: when the makers leave, the quantity within a few ticks
    of the mid falls to the noise traders' thin far layer while the spread widens.
    """
    rows = steps["asset"] == asset
    step = steps["step"][rows]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.75, 0.25],
        subplot_titles=("Depth within 5 ticks of the mid (shares)", "Market makers active"),
    )
    fig.add_trace(
        go.Scatter(x=step, y=steps["bid_depth"][rows], name="bid depth", line={"width": 1}), 1, 1
    )
    fig.add_trace(
        go.Scatter(x=step, y=steps["ask_depth"][rows], name="ask depth", line={"width": 1}), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=step,
            y=steps["makers_active"][rows],
            name="makers active",
            line={"width": 1, "shape": "hv"},
        ),
        2,
        1,
    )
    fig.update_layout(
        title=title or None,
        height=360,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": 1.12},
    )
    fig.update_xaxes(title_text="step", row=2, col=1)
    return fig


def acf_figure(
    acf_abs: list[float] | np.ndarray,
    acf_raw: list[float] | np.ndarray,
    band: float,
    return_interval: int = 1,
    title: str = "",
) -> go.Figure:
    """Autocorrelation of |r| and of r by lag, with the +-``band`` noise band around zero.

    Volatility clustering shows as a slowly decaying ACF of |r| well above the band, while the
    ACF of raw returns stays inside it (no linear predictability).
    """
    lags = np.arange(1, len(acf_abs) + 1) * return_interval
    fig = go.Figure()
    fig.add_trace(go.Bar(x=lags, y=np.asarray(acf_abs, dtype=float), name="ACF of |r|"))
    fig.add_trace(
        go.Scatter(
            x=lags,
            y=np.asarray(acf_raw, dtype=float),
            name="ACF of r",
            mode="lines+markers",
            marker={"size": 4},
            line={"width": 1},
        )
    )
    for level in (band, -band):
        fig.add_hline(y=level, line={"width": 1, "dash": "dot", "color": "grey"})
    fig.update_layout(
        title=title or None,
        height=320,
        margin={"l": 50, "r": 20, "t": 50 if title else 30, "b": 40},
        legend={"orientation": "h", "y": 1.12},
        bargap=0.2,
    )
    fig.update_xaxes(title_text="lag (steps)")
    return fig
