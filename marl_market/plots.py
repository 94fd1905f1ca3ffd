"""Plotly figures of a run, from its columnar arrays (numpy + plotly only: the browser build
uses this module too, with plotly 5.24 there and 6+ on the server, so only long-stable API)."""

from __future__ import annotations

from statistics import NormalDist

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
    if title:  # plotly.js 2.x prints "undefined" for an explicit empty title
        fig.update_layout(title=title)
    fig.update_layout(
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
    if title:  # plotly.js 2.35 shows a None title as "undefined"
        fig.update_layout(title=title)
    fig.update_layout(
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
    if title:
        fig.update_layout(title=title)
    fig.update_layout(
        height=320,
        margin={"l": 50, "r": 20, "t": 50 if title else 30, "b": 40},
        legend={"orientation": "h", "y": 1.12},
        bargap=0.2,
    )
    fig.update_xaxes(title_text="lag (steps)")
    return fig


# ---------------------------------------------------------------------------------- the lab app
# Figures of the multipage app and the HTML report. Inputs are plain numpy arrays and dicts, so
# the browser build can use them too; only graph_objects and make_subplots (plotly >= 5.24).

KIND_COLORS = {
    "maker": "#1f77b4",
    "momentum": "#d62728",
    "value": "#2ca02c",
    "noise": "#7f7f7f",
}
_BID_COLOR = "#1f77b4"
_ASK_COLOR = "#d62728"


def _finish(fig: go.Figure, title: str, height: int, top: int = 40) -> go.Figure:
    """Common layout; the title only when given (plotly.js 2.35 shows None as "undefined")."""
    if title:
        fig.update_layout(title=title)
    fig.update_layout(
        height=height,
        margin={"l": 55, "r": 20, "t": top + (30 if title else 0), "b": 45},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def add_events(fig: go.Figure, events: list[tuple[int, str]]) -> go.Figure:
    """Dashed vertical lines at interventions (e.g. the makers' pull), labelled at the top.

    On a figure with subplots the line crosses every subplot, so cause and effect line up.
    """
    for step, text in events:
        fig.add_vline(x=step, line={"width": 1, "dash": "dash", "color": "crimson"})
        fig.add_annotation(
            x=step,
            y=1,
            yref="paper",
            text=text,
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font={"color": "crimson", "size": 11},
        )
    return fig


def book_heatmap_figure(
    steps: np.ndarray,
    prices: np.ndarray,
    bids: np.ndarray,
    asks: np.ndarray,
    mid_steps: np.ndarray | None = None,
    mid: np.ndarray | None = None,
    title: str = "",
) -> go.Figure:
    """The order book over time: resting quantity by price (rows) and step (columns).

    ``bids[j, i]`` / ``asks[j, i]`` is the quantity of that side in price row ``j`` at step
    ``steps[i]`` (blue / red); NaN cells (nothing resting) stay blank. Each colour range is
    capped at the 95th percentile so a few huge noise orders do not wash out the rest. The mid
    is drawn on top: the makers' thin layer hugs it, the noise traders' deep layer sits 20+
    ticks away.
    """
    fig = go.Figure()
    sides = (
        ("bids", bids, [[0.0, "#deebf7"], [1.0, _BID_COLOR]], 1.0),
        ("asks", asks, [[0.0, "#fee0d2"], [1.0, _ASK_COLOR]], 1.09),
    )
    for name, depth, colorscale, bar_x in sides:
        finite = depth[np.isfinite(depth)]
        fig.add_trace(
            go.Heatmap(
                x=steps,
                y=prices,
                z=np.asarray(depth, dtype=np.float32),  # half the JSON of float64, same picture
                zmin=0,
                zmax=float(np.percentile(finite, 95)) if finite.size else 1.0,
                colorscale=colorscale,
                colorbar={"title": {"text": name}, "thickness": 10, "x": bar_x, "len": 0.8},
                hovertemplate=f"step %{{x}}<br>price %{{y}}<br>{name} %{{z}}<extra></extra>",
                name=f"{name} depth",
            )
        )
    if mid is not None and mid_steps is not None:
        fig.add_trace(
            go.Scatter(
                x=mid_steps, y=mid, name="mid", mode="lines", line={"width": 1, "color": "black"}
            )
        )
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="price (ticks)")
    return _finish(fig, title, 420)


def ladder_figure(
    bid_price: np.ndarray,
    bid_qty: np.ndarray,
    ask_price: np.ndarray,
    ask_qty: np.ndarray,
    mid: float | None = None,
    title: str = "",
) -> go.Figure:
    """The depth ladder at one moment: quantity at each price level, bids left, asks right."""
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=np.asarray(bid_price, dtype=float),
            x=-np.asarray(bid_qty, dtype=float),
            orientation="h",
            name="bids",
            marker={"color": _BID_COLOR},
            customdata=np.asarray(bid_qty),
            hovertemplate="bid %{y}: %{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=np.asarray(ask_price, dtype=float),
            x=np.asarray(ask_qty, dtype=float),
            orientation="h",
            name="asks",
            marker={"color": _ASK_COLOR},
            hovertemplate="ask %{y}: %{x}<extra></extra>",
        )
    )
    if mid is not None and np.isfinite(mid):
        fig.add_hline(y=mid, line={"width": 1, "dash": "dot", "color": "black"})
    fig.update_layout(barmode="overlay", bargap=0.1)
    fig.update_xaxes(title_text="quantity (bids left, asks right)", zeroline=True)
    fig.update_yaxes(title_text="price (ticks)")
    return _finish(fig, title, 420)


def agents_figure(
    agent_steps: dict[str, np.ndarray],
    kinds: np.ndarray | list[str],
    title: str = "",
    asset: int = 0,
) -> go.Figure:
    """Every agent's mark-to-market PnL and its inventory in ``asset`` over time, coloured by
    agent type.

    ``kinds[agent_id]`` is the agent's type. The legend has one entry per type and toggles all
    agents of that type at once. The PnL is the whole account's (every asset), the same
    whichever asset is shown.
    """
    if "asset" in agent_steps:  # one row per agent and asset: keep the asset shown
        on_asset = agent_steps["asset"] == asset
        agent_steps = {name: column[on_asset] for name, column in agent_steps.items()}
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=(
            "PnL (ticks x shares, whole account)",
            f"Inventory in asset {asset} (shares, relative to endowment)",
        ),
    )
    ids = agent_steps["agent_id"]
    shown: set[str] = set()
    for agent in np.unique(ids):
        kind = str(kinds[int(agent)])
        rows = ids == agent
        step = agent_steps["step"][rows]
        first = kind not in shown
        shown.add(kind)
        color = KIND_COLORS.get(kind, "#9467bd")
        for row, column in ((1, "pnl"), (2, "inventory")):
            fig.add_trace(
                go.Scatter(
                    x=step,
                    y=agent_steps[column][rows],
                    name=kind,
                    legendgroup=kind,
                    showlegend=first and row == 1,
                    mode="lines",
                    line={"width": 1, "color": color},
                    hovertemplate=f"agent {int(agent)} ({kind})<br>step %{{x}}: %{{y}}"
                    "<extra></extra>",
                ),
                row,
                1,
            )
    fig.update_xaxes(title_text="step", row=2, col=1)
    return _finish(fig, title, 520, top=50)


def normal_quantiles(p: np.ndarray) -> np.ndarray:
    """Standard normal quantiles of probabilities ``p`` in (0, 1): the standard library's
    ``NormalDist().inv_cdf`` (the browser build has no scipy)."""
    inv_cdf = NormalDist().inv_cdf
    return np.array([inv_cdf(x) for x in np.asarray(p, dtype=float).ravel().tolist()])


def _standardise(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    sd = float(r.std()) if r.size else 0.0
    return (r - r.mean()) / sd if sd > 0 else r * 0.0


def return_distribution_figure(
    returns: np.ndarray, bins: int | None = None, title: str = ""
) -> go.Figure:
    """Density of standardised returns against the standard Gaussian, on a log scale.

    A log scale is where fat tails show: far from the centre the empirical density stays orders
    of magnitude above the Gaussian's, which falls like exp(-x^2 / 2). ``bins`` defaults to
    about 1.5 sqrt(n), odd so that one bin is centred on zero.
    """
    z = _standardise(returns)
    fig = go.Figure()
    if z.size:
        bins = bins or int(np.clip(1.5 * np.sqrt(z.size), 15, 81)) // 2 * 2 + 1
        edge = max(5.0, float(np.max(np.abs(z))))
        counts, edges = np.histogram(z, bins=bins, range=(-edge, edge), density=True)
        centres = 0.5 * (edges[1:] + edges[:-1])
        seen = counts > 0  # empty bins have no place on a log axis
        fig.add_trace(
            go.Scatter(
                x=centres[seen],
                y=counts[seen],
                mode="markers",
                name="simulated",
                marker={"size": 6},
            )
        )
        x = np.linspace(-edge, edge, 401)
        gauss = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        keep = gauss > 0.1 * counts[seen].min()  # do not plunge the axis to 1e-300
        fig.add_trace(
            go.Scatter(
                x=x[keep],
                y=gauss[keep],
                mode="lines",
                name="Gaussian",
                line={"width": 1, "color": "grey"},
            )
        )
    fig.update_yaxes(type="log", dtick=1, title_text="density")  # labels at powers of 10
    fig.update_xaxes(title_text="return (standard deviations)")
    return _finish(fig, title, 360)


def qq_figure(returns: np.ndarray, max_points: int = 2_000, title: str = "") -> go.Figure:
    """Quantiles of standardised returns against Gaussian quantiles, with the 45-degree line.

    Fat tails bend the ends of the curve away from the line (S-shape). At most ``max_points``
    evenly spaced order statistics are drawn (all the extremes are among them).
    """
    z = np.sort(_standardise(returns))
    fig = go.Figure()
    n = z.size
    if n:
        idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int))
        theory = normal_quantiles((idx + 0.5) / n)
        fig.add_trace(
            go.Scatter(x=theory, y=z[idx], mode="markers", name="returns", marker={"size": 4})
        )
        lim = float(max(np.max(np.abs(theory)), 1.0))
        fig.add_trace(
            go.Scatter(
                x=[-lim, lim],
                y=[-lim, lim],
                mode="lines",
                name="Gaussian",
                line={"width": 1, "dash": "dot", "color": "grey"},
            )
        )
    fig.update_xaxes(title_text="Gaussian quantile")
    fig.update_yaxes(title_text="return quantile (standard deviations)")
    return _finish(fig, title, 360)


def spread_vs_makers_figure(
    makers: np.ndarray,
    mean_spread: np.ndarray,
    ci_low: np.ndarray | None = None,
    ci_high: np.ndarray | None = None,
    title: str = "",
) -> go.Figure:
    """Mean spread against the number of market makers (with CIs over seeds when given).

    More makers mean tighter best quotes (the tightest of more independent draws) and fewer
    moments when all of them skip their requote at once.
    """
    mean_spread = np.asarray(mean_spread, dtype=float)
    error = None
    if ci_low is not None and ci_high is not None:
        high = np.asarray(ci_high, dtype=float) - mean_spread
        low = mean_spread - np.asarray(ci_low, dtype=float)
        if np.isfinite(high).any():
            error = {
                "type": "data",
                "array": np.nan_to_num(high),
                "arrayminus": np.nan_to_num(low),
                "visible": True,
            }
    fig = go.Figure(
        go.Scatter(
            x=np.asarray(makers),
            y=mean_spread,
            mode="lines+markers",
            name="mean spread",
            error_y=error,
        )
    )
    fig.update_xaxes(title_text="market makers", dtick=1)
    fig.update_yaxes(title_text="mean spread (ticks)", rangemode="tozero")
    return _finish(fig, title, 320)


COMPARE_METRIC_LABELS = {
    "spread_blowup": "Spread blow-up (x pre-event)",
    "depth_ratio": "Depth near the mid (x pre-event)",
    "max_drawdown_pct": "Max drawdown (%)",
    "recovery_steps": "Spread recovery (steps)",
    "price_recovery_steps": "Price recovery (steps)",
    "volume_change_pct": "Volume vs baseline (%)",
    "tracking_error": "Mid - fair value, RMS (ticks)",
    "mean_spread": "Mean spread (ticks)",
}


def compare_figure(summaries: dict[str, dict], title: str = "") -> go.Figure:
    """Scenario minus baseline for every metric, with its confidence interval over seeds.

    ``summaries`` maps scenario kind -> metric -> ``{diff_mean, ci_low, ci_high, ...}`` (the
    compare JSON). One panel per metric; a bar per scenario; whiskers are the CI, which is
    missing with a single seed.
    """
    kinds = list(summaries)
    metrics = [m for m in COMPARE_METRIC_LABELS if any(m in summaries[k] for k in kinds)]
    cols = 4
    rows = max(1, -(-len(metrics) // cols))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[COMPARE_METRIC_LABELS[m] for m in metrics],
        vertical_spacing=0.18,
        horizontal_spacing=0.07,
    )
    for i, metric in enumerate(metrics):
        diff, up, down = [], [], []
        for kind in kinds:
            entry = summaries[kind].get(metric) or {}
            mean = entry.get("diff_mean")
            low, high = entry.get("ci_low"), entry.get("ci_high")
            diff.append(np.nan if mean is None else mean)
            up.append(0.0 if mean is None or high is None else high - mean)
            down.append(0.0 if mean is None or low is None else mean - low)
        fig.add_trace(
            go.Bar(
                x=[k.replace("_", " ") for k in kinds],
                y=diff,
                error_y={"type": "data", "array": up, "arrayminus": down, "visible": True},
                marker={"color": [_ASK_COLOR if (d or 0) > 0 else _BID_COLOR for d in diff]},
                showlegend=False,
                name=metric,
                hovertemplate="%{x}: %{y:.3g}<extra>" + metric + "</extra>",
            ),
            i // cols + 1,
            i % cols + 1,
        )
    fig.update_annotations(font={"size": 11})
    return _finish(fig, title, 260 * rows + 60)
