"""Plotly figures of multi-asset and regime-switching runs (numpy + plotly only, like plots.py).

Kept apart from ``plots.py`` because the browser build embeds that module: these figures are
the lab app's alone, and adding them there would force a rebuild of dashboard.html.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from marl_market import plots

STRESS_COLOR = "rgba(255, 160, 0, 0.15)"  # pale amber: unlike the spread's red, lines read through
STRESS_NAME = "stress regime"
MAX_BANDS = 200  # more shapes than this make a browser slow to pan a long run


def stress_intervals(
    step: np.ndarray, regime: np.ndarray, max_bands: int = MAX_BANDS
) -> list[tuple[float, float]]:
    """The ``(start, end)`` steps of every stretch of stress (``regime == 1``), in order.

    A stretch covers its steps' full width (``start - 0.5`` to ``end + 0.5``), so a single
    stressed step still shows. When there are more than ``max_bands`` stretches, the run is cut
    into ``max_bands`` equal windows and a window counts as stressed when at least half of its
    steps are: a regime that flips nearly every step shows as the blur it is, not as thousands
    of shapes.
    """
    step = np.asarray(step)
    stressed = np.asarray(regime) == 1
    if step.size == 0 or not stressed.any():
        return []
    if max_bands < 1:
        raise ValueError(f"max_bands must be at least 1, got {max_bands}")
    edges = np.diff(np.concatenate([[0], stressed.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    if len(starts) > max_bands:
        windows = np.array_split(np.arange(step.size), max_bands)
        share = np.array([stressed[w].mean() for w in windows])
        coarse = np.concatenate([[0], (share >= 0.5).astype(np.int8), [0]])
        edges = np.diff(coarse)
        first = np.array([w[0] for w in windows])
        last = np.array([w[-1] for w in windows])
        starts = first[np.flatnonzero(edges == 1)]
        ends = last[np.flatnonzero(edges == -1) - 1]
    return [(float(step[a]) - 0.5, float(step[b]) + 0.5) for a, b in zip(starts, ends, strict=True)]


def add_regime_band(fig: go.Figure, step: np.ndarray, regime: np.ndarray) -> go.Figure:
    """Shade the stress steps of ``regime`` across the whole height of ``fig``.

    One rectangle per stress stretch, spanning every subplot (x in data units of the shared
    step axis, y in paper units), behind the traces; and one legend entry naming the band.
    Nothing is added when the run was never stressed.
    """
    intervals = stress_intervals(step, regime)
    if not intervals:
        return fig
    for start, end in intervals:
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=start,
            x1=end,
            y0=0,
            y1=1,
            fillcolor=STRESS_COLOR,
            line={"width": 0},
            layer="below",
            name=STRESS_NAME,
        )
    # Shapes have no legend entry: an empty trace in the band's colour gives it one.
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="markers",
            marker={"symbol": "square", "size": 12, "color": "rgba(255, 160, 0, 0.45)"},
            name=STRESS_NAME,
            hoverinfo="skip",
        )
    )
    return fig


def asset_market_figure(steps: dict[str, np.ndarray], asset: int = 0, title: str = "") -> go.Figure:
    """``plots.market_figure`` of one asset, with the stress regime shaded when there is one."""
    fig = plots.market_figure(steps, asset=asset, title=title)
    rows = steps["asset"] == asset
    if "regime" in steps and np.any(steps["regime"][rows] == 1):
        add_regime_band(fig, steps["step"][rows], steps["regime"][rows])
        # The band's legend entry makes the legend reach the first subplot's title: lift it.
        fig.update_layout(legend={"y": 1.1}, margin={"t": 80})
    return fig


def correlation_pairs(
    measured: np.ndarray, configured: np.ndarray | None
) -> list[dict[str, float | str]]:
    """One row per pair of assets: the configured and the measured correlation.

    ``configured`` None means independent fundamentals (0 off the diagonal).
    """
    measured = np.atleast_2d(np.asarray(measured, dtype=float))
    n = measured.shape[0]
    target = np.eye(n) if configured is None else np.asarray(configured, dtype=float)
    if target.shape != measured.shape:
        raise ValueError(
            f"configured correlation is {target.shape[0]}x{target.shape[1]}, measured {n}x{n}"
        )
    return [
        {
            "pair": f"asset {i} - asset {j}",
            "configured": float(target[i, j]),
            "measured": float(measured[i, j]),
        }
        for i in range(n)
        for j in range(i + 1, n)
    ]


def correlation_figure(
    measured: np.ndarray, configured: np.ndarray | None, title: str = ""
) -> go.Figure:
    """The configured and the measured correlation matrices side by side, on one colour scale.

    Measured is the correlation of the simulated fundamentals' log returns; with enough steps it
    sits close to the configured matrix, and a difference larger than sampling noise would mean
    the shocks are mixed wrongly.
    """
    measured = np.atleast_2d(np.asarray(measured, dtype=float))
    n = measured.shape[0]
    target = np.eye(n) if configured is None else np.asarray(configured, dtype=float)
    labels = [f"asset {a}" for a in range(n)]
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Configured", "Measured"), horizontal_spacing=0.06
    )
    for col, (name, matrix) in enumerate((("configured", target), ("measured", measured)), 1):
        fig.add_trace(
            go.Heatmap(
                x=labels,
                y=labels,
                z=matrix,
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
                reversescale=True,  # red for positive correlation, blue for negative
                showscale=col == 2,
                text=np.round(matrix, 2),
                texttemplate="%{text}",
                hovertemplate=f"%{{y}} / %{{x}}<br>{name} %{{z:.3f}}<extra></extra>",
                name=name,
            ),
            1,
            col,
        )
        # The matrices share their labels: the right one needs none (they would overlap).
        fig.update_yaxes(autorange="reversed", showticklabels=col == 1, row=1, col=col)
    if title:  # plotly.js 2.x prints "undefined" for an explicit empty title
        fig.update_layout(title=title)
    fig.update_layout(height=320, margin={"l": 60, "r": 20, "t": 60 if title else 40, "b": 40})
    return fig


TAKER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def execution_figure(execution: list[dict], fills: list[dict], title: str = "") -> go.Figure:
    """Each execution taker's schedule: cumulative shares filled against the TWAP line to its
    target (top), and the shares it filled at each step it traded (bottom).

    ``execution`` holds the takers' parent orders (agent, side, target, horizon, ...; as
    ``Market.execution_report`` gives them) and ``fills`` each one's ``step``, ``qty`` and
    ``cumulative`` arrays, in the same order. The TWAP line is where a TWAP taker's fills stand
    after every step (target x (step + 1) / horizon); a POV taker follows the volume instead.
    """
    if len(execution) != len(fills):
        raise ValueError(f"{len(execution)} parent orders but {len(fills)} fill records")
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.06,
        subplot_titles=("Cumulative shares filled", "Shares filled per step"),
    )
    lines: dict[tuple[int, int], float] = {}  # (target, horizon) -> last step drawn
    for i, (order, fill) in enumerate(zip(execution, fills, strict=True)):
        color = TAKER_COLORS[i % len(TAKER_COLORS)]
        name = f"taker {order['agent']} ({order['side']}, asset {order['asset']})"
        steps = np.asarray(fill["step"], dtype=float)
        cumulative = np.asarray(fill["cumulative"], dtype=float)
        horizon = int(order["horizon"])
        end = max(horizon - 1, float(steps[-1]) if len(steps) else 0.0)
        # A step line from nothing filled at the start to the last fill, held to the horizon.
        last = float(cumulative[-1]) if len(cumulative) else 0.0
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([[0.0], steps, [end]]),
                y=np.concatenate([[0.0], cumulative, [last]]),
                mode="lines",
                line={"color": color, "shape": "hv"},
                name=name,
                legendgroup=name,
                hovertemplate="step %{x}<br>filled %{y:,}<extra>" + name + "</extra>",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Bar(
                x=steps,
                y=np.asarray(fill["qty"]),
                marker={"color": color},
                name=f"{name} fills",
                legendgroup=name,
                showlegend=False,
                hovertemplate="step %{x}<br>%{y:,} shares<extra>" + name + "</extra>",
            ),
            2,
            1,
        )
        lines.setdefault((int(order["target"]), horizon), end)
    # The reference lines last, so they are drawn over takers that follow them exactly.
    for (target, horizon), end in lines.items():
        label = "" if len(lines) == 1 else f" ({target:,} by step {horizon:,})"
        fig.add_trace(
            go.Scatter(
                x=[0.0, horizon - 1.0],
                y=[target / horizon, float(target)],
                mode="lines",
                line={"color": "#555", "dash": "dash"},
                name=f"TWAP line{label}",
                hoverinfo="skip",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=[0.0, end],
                y=[float(target), float(target)],
                mode="lines",
                line={"color": "#999", "dash": "dot"},
                name=f"target{label}",
                hoverinfo="skip",
            ),
            1,
            1,
        )
    fig.update_yaxes(title_text="shares", row=1, col=1)
    fig.update_yaxes(title_text="shares", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(barmode="overlay", bargap=0)
    if title:  # plotly.js 2.x prints "undefined" for an explicit empty title
        fig.update_layout(title=title)
    fig.update_layout(height=480, margin={"l": 60, "r": 20, "t": 60 if title else 40, "b": 40})
    return fig
