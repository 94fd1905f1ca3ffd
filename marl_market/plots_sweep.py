"""Tables and figures of a stored parameter sweep (the app's Sweeps page): pandas, plotly and
``marl_market.core`` only.

``marlsim sweep`` stores a sweep as one run of kind ``sweep``: its ``config`` is the spec
({"scenarios", "grid": [[param, [values]], ...], "seeds", "steps", "return_interval"}) and its
``summary`` every task's result ({"runs": [{"run_id", "scenario", "seed", "params", "metrics",
"cached"}], "failed": [{"params", "error"}]}). ``read_sweep`` turns the two into a ``Sweep``:
one ``Point`` per scenario x grid point, with each metric's mean over seeds and its Student-t
95% CI (``core.facts.mean_ci``). Everything else here draws a ``Sweep``.

Stored data is read defensively: a sweep written by older code, one with failed tasks, or one
whose metric is missing or NaN for some runs still reads - what is there is summarised and
``Sweep.notes`` says what is missing. Nothing here raises on bad data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from marl_market.core.facts import mean_ci
from marl_market.core.numbers import fmt

NAN = math.nan
_MAX_CELL_TEXT = 100  # heatmaps with more cells show the CI on hover only (text would not fit)


# ------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Stat:
    """One metric at one point: mean over the seeds that have it, its 95% CI, and how many.

    ``low``/``high`` are NaN with a single seed (no interval) and everything is NaN with none.
    """

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Point:
    """One scenario on one grid point: the runs stored there and each metric's statistics."""

    scenario: str
    params: dict[str, object]
    runs: int
    stats: dict[str, Stat]


@dataclass(frozen=True)
class Sweep:
    """A stored sweep, read once (``read_sweep``) and drawn by the functions below."""

    scenarios: list[str]
    params: list[str]
    """The swept parameters in the grid's order (the first varies slowest)."""
    grid: dict[str, list]
    """Each swept parameter's values: the grid's, then any only the runs have (old data)."""
    seeds: list[int]
    points: list[Point]
    """Scenario by scenario, every point of the grid (also those without runs), in grid order."""
    runs: list[dict] = field(default_factory=list)
    """The readable ``summary["runs"]`` entries: metrics as floats (NaN when not a number)."""
    failed: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is missing or could not be read, one sentence each."""

    def metrics(self, scenario: str | None = None) -> list[str]:
        """The metrics some run of ``scenario`` (or of any scenario) has, in first-seen order."""
        seen: dict[str, None] = {}
        for point in self.points:
            if scenario is None or point.scenario == scenario:
                seen.update(dict.fromkeys(point.stats))
        return list(seen)

    def select(self, scenario: str, fixed: Mapping[str, object] | None = None) -> list[Point]:
        """The points of ``scenario`` whose parameters equal ``fixed``'s values."""
        fixed = fixed or {}
        return [
            p
            for p in self.points
            if p.scenario == scenario and all(p.params.get(k) == v for k, v in fixed.items())
        ]


def read_sweep(config: object, summary: object) -> Sweep:
    """A stored sweep's ``config`` and ``summary`` (as ``RunStore.get_run`` parses them) as a
    ``Sweep``. Anything unreadable is skipped and named in ``notes``; this never raises."""
    config = config if isinstance(config, Mapping) else {}
    summary = summary if isinstance(summary, Mapping) else {}
    notes: list[str] = []

    grid: dict[str, list] = {}
    for entry in _list(config.get("grid")):
        if isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[0], str):
            grid[entry[0]] = _unique([_value(v) for v in _list(entry[1])])
    runs = []
    unreadable = 0
    for entry in _list(summary.get("runs")):
        if not isinstance(entry, Mapping):
            unreadable += 1
            continue
        metrics = entry.get("metrics") if isinstance(entry.get("metrics"), Mapping) else {}
        runs.append(
            {
                "run_id": str(entry.get("run_id") or ""),
                "scenario": str(entry.get("scenario") or "?"),
                "seed": entry.get("seed"),
                "params": _params(entry.get("params")),
                "metrics": {str(k): _number(v) for k, v in metrics.items()},
            }
        )
    if unreadable:
        notes.append(f"{unreadable} entries of the stored summary are not runs and were skipped.")
    if not runs:
        notes.append("The sweep has no finished runs.")

    # Parameters and values only the runs name come after the grid's: an older sweep whose
    # config lacks its grid still shows what its runs varied.
    for run in runs:
        for name, value in run["params"].items():
            values = grid.setdefault(str(name), [])
            if value not in values:
                values.append(value)
    params = list(grid)
    scenarios = _unique([*map(str, _list(config.get("scenarios"))), *(r["scenario"] for r in runs)])
    seeds = [s for s in _list(config.get("seeds")) if isinstance(s, int)]

    by_point: dict[tuple, list[dict]] = {}
    for run in runs:
        key = (run["scenario"], *(run["params"].get(p) for p in params))
        by_point.setdefault(key, []).append(run)
    metric_order = {
        s: _unique([m for r in runs if r["scenario"] == s for m in r["metrics"]]) for s in scenarios
    }
    keys = [(s, *values) for s in scenarios for values in itertools.product(*grid.values())]
    on_grid = set(keys)
    keys += [key for key in by_point if key not in on_grid]  # runs missing a swept parameter
    points = [_point(key, params, by_point.get(key, []), metric_order[key[0]]) for key in keys]

    failed = [f for f in _list(summary.get("failed")) if isinstance(f, Mapping)]
    if failed:
        notes.append(f"{len(failed)} task(s) of this sweep failed and have no run (listed below).")
    expected = len(seeds) or max((p.runs for p in points), default=0)
    short = [p for p in points if p.runs < expected]
    if short:
        notes.append(
            f"{len(short)} of {len(points)} scenario x grid points have fewer runs than the "
            f"sweep's {expected} seed(s): their means are over the seeds there are."
        )
    notes.extend(_missing_metrics(runs, metric_order))
    return Sweep(scenarios, params, grid, seeds, points, runs, failed, notes)


def _point(key: tuple, params: list[str], members: list[dict], metrics: list[str]) -> Point:
    """The point ``key`` (scenario, then the value of each of ``params``) and its runs."""
    scenario, *values = key
    stats = {}
    for metric in metrics:
        samples = [r["metrics"].get(metric, NAN) for r in members]
        finite = [x for x in samples if math.isfinite(x)]
        # mean_ci refuses non-finite samples: a seed without the metric is left out, and n
        # says how many seeds the mean is over.
        mean, low, high = mean_ci(finite) if finite else (NAN, NAN, NAN)
        stats[metric] = Stat(mean, low, high, len(finite))
    return Point(scenario, dict(zip(params, values, strict=True)), len(members), stats)


def _missing_metrics(runs: list[dict], metric_order: dict[str, list[str]]) -> list[str]:
    """One note per scenario and metric that some of the scenario's runs lack (or have NaN)."""
    notes = []
    for scenario, metrics in metric_order.items():
        mine = [r for r in runs if r["scenario"] == scenario]
        for metric in metrics:
            missing = sum(not math.isfinite(r["metrics"].get(metric, NAN)) for r in mine)
            if missing:
                notes.append(
                    f"{scenario}: {metric} is missing or not a number in {missing} of "
                    f"{len(mine)} runs (left out of its means)."
                )
    return notes


def _params(value: object) -> dict[str, object]:
    """A run's parameters (``_value`` each)."""
    return {str(k): _value(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _value(value: object) -> object:
    """A parameter value as stored; anything but a number or text (never written by
    ``marlsim sweep``) is kept as its text, so grouping the runs by point cannot fail."""
    return value if isinstance(value, int | float | str | None) else str(value)


def _number(value: object) -> float:
    """A stored metric as a float: NaN for anything missing, non-numeric or infinite."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NAN
    return number if math.isfinite(number) else NAN


def _list(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else []


def _unique(items: list) -> list:
    return list(dict.fromkeys(items))


# ------------------------------------------------------------------------------ text
def describe_sweep(config: object) -> str:
    """A sweep in one line: ``baseline, tobin_tax × makers (1, 2) × noise (2, 4) × 3 seeds``."""
    config = config if isinstance(config, Mapping) else {}
    parts = [", ".join(map(str, _list(config.get("scenarios")))) or "?"]
    for entry in _list(config.get("grid")):
        if isinstance(entry, Sequence) and len(entry) == 2:
            parts.append(f"{entry[0]} ({', '.join(map(str, _list(entry[1])))})")
    seeds = len(_list(config.get("seeds")))
    parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
    return " × ".join(parts)


def ci_text(stat: Stat | None, runs: int | None = None, sep: str = " ") -> str:
    """``12.3 [11.0, 13.6]``; ``12.3 (1 seed)`` without an interval; ``missing`` with no value.
    Given the point's ``runs``, a mean over fewer seeds than that says so: ``(n=2 of 3)``."""
    if stat is None or stat.n == 0:
        return "missing"
    text = fmt(stat.mean, "{:.3g}")
    if stat.n > 1:
        text += f"{sep}[{fmt(stat.low, '{:.3g}')}, {fmt(stat.high, '{:.3g}')}]"
    if runs is not None and stat.n < runs:
        text += f" (n={stat.n} of {runs})"
    elif stat.n == 1:
        text += " (1 seed)"
    return text


def point_label(params: Mapping[str, object]) -> str:
    """``makers=2, noise=4`` (a point of the grid, or part of one)."""
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "the default market"


# ------------------------------------------------------------------------------ tables
def points_table(sweep: Sweep, scenario: str | None = None) -> pd.DataFrame:
    """The per-point table to read: a row per scenario x grid point (of ``scenario`` only, when
    given), the runs there, and a ``mean [low, high]`` cell per metric (None where the
    scenario has no such metric)."""
    metrics = sweep.metrics(scenario)
    expected = len(sweep.seeds)
    rows = []
    for point in sweep.points:
        if scenario is not None and point.scenario != scenario:
            continue
        seeds = str(point.runs) if point.runs >= expected else f"{point.runs} of {expected}"
        row = {"scenario": point.scenario, **point.params, "seeds": seeds}
        for metric in metrics:
            stat = point.stats.get(metric)
            row[metric] = None if stat is None else ci_text(stat, point.runs)
        rows.append(row)
    return pd.DataFrame(rows, columns=["scenario", *sweep.params, "seeds", *metrics])


def points_frame(sweep: Sweep) -> pd.DataFrame:
    """The per-point table as numbers (the CSV download): per metric ``<metric>_mean``,
    ``_ci_low``, ``_ci_high`` and ``_n`` (the seeds with a value); ``runs`` is the runs there."""
    metrics = sweep.metrics()
    rows = []
    for point in sweep.points:
        row: dict[str, object] = {"scenario": point.scenario, **point.params, "runs": point.runs}
        for metric in metrics:
            stat = point.stats.get(metric, Stat(NAN, NAN, NAN, 0))
            row |= {
                f"{metric}_mean": stat.mean,
                f"{metric}_ci_low": stat.low,
                f"{metric}_ci_high": stat.high,
                f"{metric}_n": stat.n,
            }
        rows.append(row)
    suffixes = ("mean", "ci_low", "ci_high", "n")
    columns = [f"{m}_{s}" for m in metrics for s in suffixes]
    return pd.DataFrame(rows, columns=["scenario", *sweep.params, "runs", *columns])


def runs_frame(sweep: Sweep, scenario: str | None = None) -> pd.DataFrame:
    """One row per stored run (of ``scenario`` only, when given): its ID, scenario,
    parameters, seed and metrics (NaN where it has none)."""
    metrics = sweep.metrics(scenario)
    rows = [
        {
            "run_id": run["run_id"],
            "scenario": run["scenario"],
            **{p: run["params"].get(p) for p in sweep.params},
            "seed": run["seed"],
            **{m: run["metrics"].get(m, NAN) for m in metrics},
        }
        for run in sweep.runs
        if scenario is None or run["scenario"] == scenario
    ]
    return pd.DataFrame(rows, columns=["run_id", "scenario", *sweep.params, "seed", *metrics])


def failed_frame(sweep: Sweep) -> pd.DataFrame:
    """The failed tasks: scenario, parameters and seed (as stored), then the error."""
    rows = []
    for failure in sweep.failed:
        params = failure.get("params") if isinstance(failure.get("params"), Mapping) else {}
        rows.append({**params, "error": str(failure.get("error", ""))})
    frame = pd.DataFrame(rows)
    first = [c for c in ("scenario", *sweep.params, "seed") if c in frame.columns]
    return frame[[*first, *(c for c in frame.columns if c not in first)]]


# ------------------------------------------------------------------------------ figures
def heatmap_figure(
    points: Sequence[Point],
    metric: str,
    x: str,
    y: str,
    x_values: Sequence,
    y_values: Sequence,
    title: str = "",
) -> go.Figure:
    """``metric``'s mean over seeds on the ``x`` x ``y`` grid (one scenario, other parameters
    fixed: ``Sweep.select``). Each cell shows the mean and its 95% CI (as text when the grid is
    small enough to read it) and says both, with n, on hover; a cell without values is blank.

    The axes are categories in the grid's order, so every swept value gets one evenly sized
    cell whatever its spacing (1, 2, 4 makers).
    """
    cells = {(p.params.get(x), p.params.get(y)): p for p in points}
    z, text, hover = [], [], []
    for yv in y_values:
        z_row, text_row, hover_row = [], [], []
        for xv in x_values:
            point = cells.get((xv, yv))
            stat = point.stats.get(metric) if point is not None else None
            # None, not NaN: plotly leaves the cell blank and the JSON stays strict.
            z_row.append(stat.mean if stat is not None and stat.n else None)
            text_row.append(ci_text(stat, sep="<br>") if stat is not None and stat.n else "")
            hover_row.append(_hover(metric, {x: xv, y: yv}, stat))
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    show_text = len(x_values) * len(y_values) <= _MAX_CELL_TEXT
    fig = go.Figure(
        go.Heatmap(
            x=[str(v) for v in x_values],
            y=[str(v) for v in y_values],
            z=z,
            text=text if show_text else None,
            texttemplate="%{text}" if show_text else None,
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            colorscale="Viridis",
            colorbar={"title": {"text": metric, "side": "right"}},
            name=metric,
        )
    )
    fig.update_xaxes(title_text=x, type="category")
    fig.update_yaxes(title_text=y, type="category")
    return _finish(fig, title, height=max(360, 70 * len(y_values) + 160))


def ci_figure(points: Sequence[Point], metric: str, x: str, title: str = "") -> go.Figure:
    """``metric``'s mean over seeds against ``x`` - a swept parameter, or ``"scenario"`` for a
    sweep without a grid - with its 95% CI as error bars (none with a single seed)."""
    xs, means, up, down, hover = [], [], [], [], []
    for point in points:
        stat = point.stats.get(metric)
        if stat is None or not stat.n:
            continue  # no value to draw: the table says it is missing
        xv = point.scenario if x == "scenario" else point.params.get(x)
        xs.append(xv)
        means.append(stat.mean)
        up.append(stat.high - stat.mean if stat.n > 1 else 0.0)
        down.append(stat.mean - stat.low if stat.n > 1 else 0.0)
        hover.append(_hover(metric, {x: xv}, stat))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs)
    fig = go.Figure(
        go.Scatter(
            x=xs if numeric else [str(v) for v in xs],
            y=means,
            mode="lines+markers" if numeric else "markers",
            error_y={"type": "data", "array": up, "arrayminus": down, "visible": True},
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            name=metric,
            marker={"size": 9},
        )
    )
    fig.update_xaxes(title_text=x, type=None if numeric else "category")
    fig.update_yaxes(title_text=f"{metric} (mean over seeds, 95% CI)")
    if numeric and xs:
        fig.update_xaxes(tickvals=xs)  # exactly the swept values, however uneven
    return _finish(fig, title, height=380)


def _hover(metric: str, at: Mapping[str, object], stat: Stat | None) -> str:
    where = point_label(at)
    if stat is None or not stat.n:
        return f"{where}<br>{metric}: no value"
    seeds = f"n = {stat.n} seed{'s' if stat.n != 1 else ''}"
    return f"{where}<br>{metric}: {ci_text(stat)}<br>{seeds}"


def _finish(fig: go.Figure, title: str, height: int) -> go.Figure:
    """``plots``' look; the title only when given (plotly.js 2.x prints "undefined" for "")."""
    if title:
        fig.update_layout(title=title)
    fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 70 if title else 40, "b": 50})
    return fig
