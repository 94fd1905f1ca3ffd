"""Figures shared by the app, the report and dashboard.html (plots.py)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from scipy import stats

from marl_market.plots import add_events, normal_quantiles, qq_figure


def test_normal_quantiles_match_scipy_in_the_tails_too():
    p = np.concatenate([np.linspace(1e-9, 1e-3, 50), np.linspace(0.01, 0.99, 99), [1 - 1e-9]])
    np.testing.assert_allclose(normal_quantiles(p), stats.norm.ppf(p), rtol=1e-12, atol=1e-12)


def test_qq_of_gaussian_returns_lies_on_the_diagonal():
    returns = np.random.default_rng(42).standard_normal(5_000)
    (points, *_) = qq_figure(returns).data
    slope, intercept = np.polyfit(np.asarray(points.x), np.asarray(points.y), 1)
    assert abs(slope - 1) < 0.05 and abs(intercept) < 0.05


def test_events_are_marked_with_a_line_and_a_label_each():
    fig = add_events(go.Figure(), [(100, "makers pulled"), (600, "makers back")])
    assert [shape.x0 for shape in fig.layout.shapes] == [100, 600]
    assert [a.text for a in fig.layout.annotations] == ["makers pulled", "makers back"]
