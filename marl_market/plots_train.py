"""Figures and tables of a training run (the app's Train page): numpy, pandas and plotly only.

They read what ``rl.runs.load_training`` returns - ``logs`` (one row per iteration x learning
type), ``market`` (one row per iteration x asset) and the evaluation dict - without importing
``rl`` itself, so drawing a stored run never imports torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from marl_market.core.numbers import fmt, is_number
from marl_market.core.results import REWARD_COMPONENTS
from marl_market.plots import KIND_COLORS

# Learning types beyond the four-type ecology's colours.
TYPE_COLORS = {**KIND_COLORS, "taker": "#ff7f0e", "arb": "#9467bd"}
MARKET_MONITOR = {
    "mean_spread": "Mean spread (ticks)",
    "volatility": "Volatility (std of log returns)",
    "excess_kurtosis": "Excess kurtosis",
    "tracking_error": "Tracking error (ticks, mid vs fair value)",
}
PPO_DIAGNOSTICS = {
    "policy_loss": "Policy loss",
    "value_loss": "Value loss",
    "entropy": "Entropy",
    "approx_kl": "Approx. KL",
    "clipfrac": "Clip fraction",
    "explained_variance": "Explained variance",
}
# The evaluation's market facts, in the order its table shows them.
EVALUATION_FACTS = {
    "mean_spread": "mean spread (ticks)",
    "excess_kurtosis": "excess kurtosis",
    "tracking_error": "tracking error (ticks)",
}
_LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
_FIXED_COLOR = "#7f7f7f"
_WIN_COLOR, _LOSS_COLOR = "#2ca02c", "#d62728"


def _finish(
    fig: go.Figure, title: str, height: int, top: int = 40, legend_gap: int = 6
) -> go.Figure:
    """The layout every figure here shares (``plots``' look: legend on top, tight margins).

    The legend sits ``legend_gap`` pixels above the plotting area (plotly places it in
    fractions of that area, so the gap is converted): clear of subplot titles when those
    figures give a larger gap, and below the figure's title when it has one.
    """
    margin_top = top + (30 if title else 0)
    plot_height = max(height - margin_top - 45, 1)
    if title:  # plotly.js 2.x prints "undefined" for an explicit empty title
        fig.update_layout(title={"text": title, "y": 1 - 8 / height, "yanchor": "top"})
    fig.update_layout(
        height=height,
        margin={"l": 55, "r": 20, "t": margin_top, "b": 45},
        legend={"orientation": "h", "y": 1 + legend_gap / plot_height, "yanchor": "bottom"},
    )
    return fig


def _iteration_axis(fig: go.Figure, logs: pd.DataFrame) -> None:
    """Whole iterations on the x axis: one tick each for a short run (plotly would put ticks
    at 1.2, 1.4, ...), integer labels otherwise."""
    n = int(logs["iteration"].max()) + 1 if len(logs) else 0
    fig.update_xaxes(tickformat="d", dtick=1 if n <= 12 else None)


def _type_color(kind: str) -> str:
    return TYPE_COLORS.get(kind, "#8c564b")


def _types(logs: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(logs["type"])) if "type" in logs else []


def reward_figure(logs: pd.DataFrame, title: str = "") -> go.Figure:
    """Mean episode reward of each learning type, per iteration (one line per type)."""
    fig = go.Figure()
    for kind in _types(logs):
        rows = logs[logs["type"] == kind]
        fig.add_trace(
            go.Scatter(
                x=rows["iteration"] + 1,  # iterations done, as the progress bar counts them
                y=rows["episode_reward"],
                name=kind,
                mode="lines+markers",
                line={"color": _type_color(kind)},
                hovertemplate=f"{kind}<br>iteration %{{x}}: %{{y:,.1f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="iteration")
    _iteration_axis(fig, logs)
    fig.update_yaxes(title_text="episode reward (ticks x shares)")
    return _finish(fig, title, 320)


def components_figure(logs: pd.DataFrame, title: str = "") -> go.Figure:
    """The reward's terms per learning type and iteration, one panel per type.

    A term that is zero throughout for a type (a maker's delay penalty, say) is left out of its
    panel: it is not part of that type's reward, and a flat zero line only hides the others.
    """
    kinds = _types(logs)
    fig = make_subplots(
        rows=1,
        cols=max(1, len(kinds)),
        subplot_titles=[f"{kind}: reward terms" for kind in kinds] or [""],
        horizontal_spacing=0.06,
    )
    shown: set[str] = set()
    for col, kind in enumerate(kinds, start=1):
        rows = logs[logs["type"] == kind]
        for index, name in enumerate(REWARD_COMPONENTS):
            values = rows.get(f"component_{name}")
            if values is None or not np.any(np.nan_to_num(values.to_numpy(dtype=float))):
                continue
            fig.add_trace(
                go.Scatter(
                    x=rows["iteration"] + 1,
                    y=values,
                    name=name.replace("_", " "),
                    legendgroup=name,
                    showlegend=name not in shown,
                    mode="lines+markers",
                    line={"color": _LINE_COLORS[index % len(_LINE_COLORS)]},
                    hovertemplate=f"{kind} {name}<br>iteration %{{x}}: %{{y:,.1f}}<extra></extra>",
                ),
                1,
                col,
            )
            shown.add(name)
    fig.update_xaxes(title_text="iteration")
    _iteration_axis(fig, logs)
    fig.update_annotations(font={"size": 12})
    return _finish(fig, title, 340, top=75, legend_gap=30)


def market_monitor_figure(market: pd.DataFrame, title: str = "") -> go.Figure:
    """The market during training, per asset and iteration: mean spread, volatility, excess
    kurtosis and tracking error (rising rewards can come with a degrading market)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=list(MARKET_MONITOR.values()),
        vertical_spacing=0.18,
        horizontal_spacing=0.08,
    )
    assets = sorted(set(market["asset"])) if "asset" in market else []
    for i, (name, label) in enumerate(MARKET_MONITOR.items()):
        if name not in market:
            continue
        for asset in assets:
            rows = market[market["asset"] == asset]
            fig.add_trace(
                go.Scatter(
                    x=rows["iteration"] + 1,
                    y=rows[name],
                    name=f"asset {asset}",
                    legendgroup=f"asset {asset}",
                    showlegend=i == 0,
                    mode="lines+markers",
                    line={"color": _LINE_COLORS[int(asset) % len(_LINE_COLORS)]},
                    hovertemplate=f"asset {asset}<br>iteration %{{x}}: %{{y:.4g}}"
                    f"<extra>{label}</extra>",
                ),
                i // 2 + 1,
                i % 2 + 1,
            )
    fig.update_xaxes(title_text="iteration", row=2)
    _iteration_axis(fig, market)
    fig.update_annotations(font={"size": 12})
    return _finish(fig, title, 540, top=75, legend_gap=30)


def ppo_figure(logs: pd.DataFrame, title: str = "") -> go.Figure:
    """PPO's health per type and iteration: losses, entropy, approx. KL, clip fraction and
    explained variance (CleanRL's diagnostics)."""
    names = [name for name in PPO_DIAGNOSTICS if name in logs]
    cols = 3
    fig = make_subplots(
        rows=max(1, -(-len(names) // cols)),
        cols=cols,
        subplot_titles=[PPO_DIAGNOSTICS[name] for name in names] or [""],
        vertical_spacing=0.2,
        horizontal_spacing=0.07,
    )
    for i, name in enumerate(names):
        for kind in _types(logs):
            rows = logs[logs["type"] == kind]
            fig.add_trace(
                go.Scatter(
                    x=rows["iteration"] + 1,
                    y=rows[name],
                    name=kind,
                    legendgroup=kind,
                    showlegend=i == 0,
                    mode="lines+markers",
                    line={"color": _type_color(kind)},
                    hovertemplate=f"{kind}<br>iteration %{{x}}: %{{y:.3g}}<extra></extra>",
                ),
                i // cols + 1,
                i % cols + 1,
            )
    _iteration_axis(fig, logs)
    fig.update_annotations(font={"size": 12})
    return _finish(fig, title, 500, top=75, legend_gap=30)


def per_seed_figure(per_seed: list[dict], kind: str = "learner", title: str = "") -> go.Figure:
    """Learned against fixed MTM on every evaluation seed: the two runs of a seed are joined by
    a line, green where the learned agent did better, red where it did worse."""
    seeds = np.array([row["seed"] for row in per_seed])
    learned = np.array([row["learned"] for row in per_seed], dtype=float)
    fixed = np.array([row["fixed"] for row in per_seed], dtype=float)
    fig = go.Figure()
    pairs = ((True, _WIN_COLOR, "learned better"), (False, _LOSS_COLOR, "learned not better"))
    for better, color, name in pairs:
        chosen = (learned > fixed) == better
        # One trace of segments (None between them) per colour, not one trace per seed.
        x = np.column_stack([seeds[chosen], seeds[chosen], np.full(chosen.sum(), None)]).ravel()
        y = np.column_stack([fixed[chosen], learned[chosen], np.full(chosen.sum(), None)]).ravel()
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                line={"color": color, "width": 2},
                name=name,
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=seeds,
            y=fixed,
            mode="markers",
            name="fixed",
            marker={"color": _FIXED_COLOR, "size": 7},
            hovertemplate="seed %{x}: fixed %{y:,.1f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=seeds,
            y=learned,
            mode="markers",
            name="learned",
            marker={"color": _type_color(kind), "size": 8, "symbol": "diamond"},
            hovertemplate="seed %{x}: learned %{y:,.1f}<extra></extra>",
        )
    )
    fig.update_xaxes(
        title_text="evaluation seed", tickformat="d", dtick=1 if len(seeds) <= 20 else None
    )
    fig.update_yaxes(title_text=f"{kind} MTM (ticks x shares)")
    return _finish(fig, title, 360)


def attention_matrix(edge_index: np.ndarray, weights: np.ndarray, n_assets: int) -> np.ndarray:
    """A graph-attention layer's weights as an ``n_assets`` x ``n_assets`` matrix, ``[source,
    target]``, from the ``(edge_index (2, E), weights (E, heads))`` that ``GATConv`` returns.

    The encoder batches the graphs of several agents as one disjoint graph; every agent of a
    type sees the same assets, so the first graph (nodes ``0..n_assets-1``) is read. Heads are
    averaged; a pair without an edge stays 0.
    """
    edge_index = np.asarray(edge_index)
    weights = np.asarray(weights, dtype=float).reshape(edge_index.shape[1], -1).mean(axis=1)
    first = (edge_index[0] < n_assets) & (edge_index[1] < n_assets)
    matrix = np.zeros((n_assets, n_assets))
    matrix[edge_index[0, first], edge_index[1, first]] = weights[first]
    return matrix


def attention_figure(weights: np.ndarray, title: str = "") -> go.Figure:
    """A graph-attention layer's weights between assets: ``weights[source, target]`` is how
    much target asset attends to source asset (each column sums to 1, self-loops included)."""
    weights = np.asarray(weights, dtype=float)
    labels = [f"asset {i}" for i in range(weights.shape[0])]
    fig = go.Figure(
        go.Heatmap(
            z=weights,
            x=labels,
            y=labels,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            text=np.round(weights, 2),
            texttemplate="%{text}",
            colorbar={"title": {"text": "weight"}, "thickness": 10},
            hovertemplate="%{x} attends to %{y}: %{z:.3f}<extra></extra>",
            name="attention",
        )
    )
    fig.update_xaxes(title_text="target asset (attending)", side="bottom")
    fig.update_yaxes(title_text="source asset (attended to)", autorange="reversed")
    return _finish(fig, title, 300 + 30 * max(0, weights.shape[0] - 3))


# ------------------------------------------------------------------------------ evaluation
def _interval(part: dict, spec: str = "{:,.1f}") -> str:
    low, high = fmt(part.get("ci_low"), spec), fmt(part.get("ci_high"), spec)
    return f"{fmt(part.get('mean'), spec)} [{low}, {high}]"


def evaluated_types(evaluation: dict) -> dict[str, dict]:
    """Each evaluated learning type's learned/fixed MTM, paired difference and wins: the
    evaluation's ``types`` (one per learning type), or its top level alone (older runs). The
    headline type (``kind``) comes first; the store keeps the others in name order."""
    head = evaluation.get("kind", "learner")
    types = evaluation.get("types") or {head: evaluation}
    return dict(sorted(types.items(), key=lambda item: item[0] != head))


def evaluation_frame(evaluation: dict) -> pd.DataFrame:
    """Learned against fixed (``evaluate.paired_evaluation``'s dict) as a table: per learning
    type the MTM of each and their paired difference as mean [95% CI] and the wins out of N;
    then the market's facts under each, with their paired difference where it was stored."""
    diff_column = "learned - fixed (paired)"
    types = evaluated_types(evaluation)
    rows = []
    for kind, part in types.items():
        rows.append(
            {
                "": "MTM" if len(types) == 1 else f"MTM, {kind}",
                "learned": _interval(part["learned_mtm"]),
                "fixed": _interval(part["fixed_mtm"]),
                diff_column: _interval(part["paired_diff"]),
            }
        )
        rows.append(
            {
                "": "wins (learned > fixed)" if len(types) == 1 else f"wins, {kind}",
                "learned": "",
                "fixed": "",
                diff_column: f"{part['wins']} / {evaluation['n']}",
            }
        )
        if "vs_initial" in part:  # the run's untrained policy on the same seeds
            rows.append(
                {
                    "": "MTM, untrained policy" + ("" if len(types) == 1 else f", {kind}"),
                    "learned": _interval(part["initial_mtm"]),
                    "fixed": "",
                    diff_column: f"learned - untrained: {_interval(part['vs_initial'])}",
                }
            )
    learned = evaluation.get("learned_market") or {}
    fixed = evaluation.get("fixed_market") or {}
    paired = evaluation.get("market_diff") or {}
    names = [n for n in EVALUATION_FACTS if n in learned]
    names += [n for n in learned if n not in EVALUATION_FACTS]
    for name in names:
        a, b = learned[name], fixed.get(name)
        if name in paired:
            diff = _interval(paired[name], "{:+.3g}")
        else:
            diff = fmt(a - b, "{:+.3g}") if is_number(a) and is_number(b) else "-"
        rows.append(
            {
                "": f"market: {EVALUATION_FACTS.get(name, name.replace('_', ' '))}",
                "learned": fmt(a, "{:.3g}"),
                "fixed": fmt(b, "{:.3g}"),
                diff_column: diff,
            }
        )
    return pd.DataFrame(rows)


def verdicts(evaluation: dict) -> list[tuple[str, str]]:
    """Per evaluated learning type, ``("better" | "worse" | "unclear", sentence)``: only a
    paired 95% CI of the MTM difference whose low end is above zero says the learned agent
    beats the fixed one."""
    n = evaluation["n"]
    out = []
    for kind, part in evaluated_types(evaluation).items():
        diff, wins = part["paired_diff"], part["wins"]
        ci = f"[{fmt(diff['ci_low'], '{:,.1f}')}, {fmt(diff['ci_high'], '{:,.1f}')}]"
        if is_number(diff["ci_low"]) and diff["ci_low"] > 0:
            outcome = "better"
            sentence = (
                f"The learned {kind} beats the fixed one: the paired 95% CI of the MTM "
                f"difference, {ci}, lies above zero ({wins} of {n} seeds won)."
            )
        elif is_number(diff["ci_high"]) and diff["ci_high"] < 0:
            outcome = "worse"
            sentence = (
                f"The fixed {kind} does better: the paired 95% CI of the MTM difference, {ci}, "
                "lies below zero."
            )
        else:
            outcome = "unclear"
            sentence = (
                f"No evidence that the learned {kind} beats the fixed one: the paired 95% CI of "
                f"the MTM difference, {ci}, includes zero ({wins} of {n} seeds won, but only a "
                "CI above zero counts). More iterations or evaluation seeds can settle it."
            )
        initial = part.get("vs_initial")
        if initial is not None and outcome == "better":
            gain = f"{fmt(initial['mean'], '{:+,.1f}')} [{fmt(initial['ci_low'], '{:,.1f}')}, "
            gain += f"{fmt(initial['ci_high'], '{:,.1f}')}]"
            if is_number(initial["ci_low"]) and initial["ci_low"] > 0:
                sentence += f" Training earned it: learned minus untrained policy {gain}."
            else:
                sentence += (
                    f" But the untrained policy does about as well (learned minus untrained "
                    f"{gain}): the margin comes from the policy's starting quotes, not training."
                )
        out.append((outcome, sentence))
    return out
