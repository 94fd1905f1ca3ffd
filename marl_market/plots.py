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
