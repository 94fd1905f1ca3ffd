"""The Sweeps page and ``marl_market.plots_sweep``: a stored sweep opens from the list or a link,
its per-point table holds each metric's mean and 95% CI over seeds, the heatmap draws any
metric over two swept parameters (a CI chart over one), and bad data is shown, not crashed on.

The pure functions are tested on hand-made summaries. The page tests share one database with
two real sweeps, made once per module (~5 s on 2 cores) and copied into each test's ``db``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from marl_market import plots_sweep
from marl_market.core.facts import mean_ci
from marl_market.plots_sweep import Stat, read_sweep
from marl_market.scale.sweep import SweepSpec, SweepTask, run_sweep
from marl_market.store import RunStore
from tests.test_app import charts, start, values

PAGE = "app_pages/6_sweeps.py"
GRID = SweepSpec(
    scenarios=("baseline", "tobin_tax"),
    grid=(("makers", (1, 2)), ("noise", (2, 4))),
    seeds=(42, 43, 44),
    steps=1_200,
)
# Its runs at noise=4 (the default) are stored already: this sweep runs nothing new.
LINE = SweepSpec(scenarios=("baseline",), grid=(("makers", (1, 2)),), seeds=(42, 43), steps=1_200)


# ------------------------------------------------------------------------------ plots_sweep
def synthetic(metrics_by_run: list[dict], failed: list | None = None) -> tuple[dict, dict]:
    """A sweep of makers (1, 2) x seeds (1, 2) on baseline, with the given metrics per run."""
    config = {"scenarios": ["baseline"], "grid": [["makers", [1, 2]]], "seeds": [1, 2],
              "steps": 100, "return_interval": 5}  # fmt: skip
    runs = [
        {
            "run_id": f"r{i}",
            "scenario": "baseline",
            "seed": 1 + i % 2,
            "params": {"makers": 1 + i // 2},
            "metrics": metrics,
            "cached": False,
        }  # fmt: skip
        for i, metrics in enumerate(metrics_by_run)
    ]
    return config, {"runs": runs, "failed": failed or []}


def test_read_sweep_gives_each_point_the_mean_and_ci_over_its_seeds():
    sweep = read_sweep(*synthetic([{"x": 1.0}, {"x": 3.0}, {"x": 10.0}, {"x": 14.0}]))
    assert sweep.params == ["makers"] and sweep.scenarios == ["baseline"] and not sweep.notes
    assert [p.params for p in sweep.points] == [{"makers": 1}, {"makers": 2}]
    assert sweep.points[1].stats["x"] == Stat(*mean_ci([10.0, 14.0]), 2)
    frame = plots_sweep.points_frame(sweep)
    assert frame.loc[1, "x_mean"] == 12.0 and frame.loc[1, "x_n"] == 2
    assert frame.loc[0, "x_ci_low"] == pytest.approx(mean_ci([1.0, 3.0])[1])
    table = plots_sweep.points_table(sweep)
    assert table.loc[0, "x"] == plots_sweep.ci_text(Stat(*mean_ci([1.0, 3.0]), 2))
    assert list(plots_sweep.runs_frame(sweep)["x"]) == [1.0, 3.0, 10.0, 14.0]


def test_a_missing_or_nan_metric_is_left_out_and_said():
    sweep = read_sweep(*synthetic([{"x": 1.0, "y": 2.0}, {"x": None}, {"x": "oops"}, {}]))
    one, two = sweep.points
    assert one.stats["x"].mean == 1.0 and one.stats["x"].n == 1  # one seed: no interval
    assert math.isnan(one.stats["x"].low) and math.isnan(one.stats["x"].high)
    assert two.stats["x"].n == 0 and math.isnan(two.stats["x"].mean)
    assert plots_sweep.ci_text(two.stats["x"]) == "missing"
    assert plots_sweep.ci_text(one.stats["x"]) == "1 (1 seed)"
    assert plots_sweep.ci_text(one.stats["x"], runs=2) == "1 (n=1 of 2)"
    assert any("x is missing or not a number in 3 of 4 runs" in n for n in sweep.notes)
    assert any("y is missing or not a number in 3 of 4 runs" in n for n in sweep.notes)


def test_failed_tasks_and_missing_runs_are_listed():
    failed = [{"params": {"scenario": "baseline", "makers": 2, "seed": 2}, "error": "Boom"}]
    sweep = read_sweep(*synthetic([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}], failed))
    assert sweep.points[1].runs == 1
    assert plots_sweep.points_table(sweep).loc[1, "seeds"] == "1 of 2"
    assert any("1 task(s)" in n for n in sweep.notes)
    assert any("fewer runs than" in n for n in sweep.notes)
    failures = plots_sweep.failed_frame(sweep)
    assert list(failures.columns) == ["scenario", "makers", "seed", "error"]
    assert failures.to_dict("records") == [
        {"scenario": "baseline", "makers": 2, "seed": 2, "error": "Boom"}
    ]


@pytest.mark.parametrize(
    "config, summary",
    [
        (None, None),
        ({}, {}),
        ({"grid": "nonsense", "seeds": "x"}, {"runs": [1, "x", None], "failed": [3]}),
        ({"grid": [["makers", [[1], 2]]]}, {"runs": [{"params": {"makers": [1]}, "metrics": 7}]}),
    ],
)
def test_bad_data_reads_without_raising(config, summary):
    sweep = read_sweep(config, summary)
    assert sweep.notes  # says what it could not read
    plots_sweep.points_table(sweep)
    plots_sweep.points_frame(sweep)
    plots_sweep.runs_frame(sweep)
    plots_sweep.describe_sweep(config)


def test_an_old_sweep_without_a_grid_takes_its_parameters_from_its_runs():
    config, summary = synthetic([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}, {"x": 4.0}])
    summary["runs"][3]["params"] = {}  # a run that lacks the parameter: a point of its own
    sweep = read_sweep({"scenarios": ["baseline"]}, summary)
    assert sweep.params == ["makers"] and sweep.grid == {"makers": [1, 2]}
    assert [p.params["makers"] for p in sweep.points] == [1, 2, None]
    assert sweep.points[2].stats["x"].mean == 4.0


def test_the_heatmap_is_the_grid_of_means_with_the_ci_in_its_cells_and_hover():
    config = {"scenarios": ["baseline"], "grid": [["a", [1, 2, 3]], ["b", [10, 20]]],
              "seeds": [1, 2]}  # fmt: skip
    runs = [
        {"run_id": f"{a}{b}{s}", "scenario": "baseline", "seed": s, "params": {"a": a, "b": b},
         "metrics": {"m": a * b + s} if (a, b) != (3, 20) else {}}  # fmt: skip
        for a in (1, 2, 3) for b in (10, 20) for s in (1, 2)
    ]  # fmt: skip
    sweep = read_sweep(config, {"runs": runs})
    fig = plots_sweep.heatmap_figure(sweep.select("baseline"), "m", "a", "b", [1, 2, 3], [10, 20])
    trace = fig.data[0]
    assert list(trace.x) == ["1", "2", "3"] and list(trace.y) == ["10", "20"]
    assert [list(row) for row in trace.z] == [[11.5, 21.5, 31.5], [21.5, 41.5, None]]
    assert trace.text[0][0] == plots_sweep.ci_text(Stat(*mean_ci([11.0, 12.0]), 2), sep="<br>")
    assert "n = 2 seeds" in trace.hovertext[0][0] and "no value" in trace.hovertext[1][2]
    # With a parameter fixed, only its points are drawn.
    fixed = sweep.select("baseline", {"b": 20})
    assert [p.params for p in fixed] == [{"a": 1, "b": 20}, {"a": 2, "b": 20}, {"a": 3, "b": 20}]


def test_the_ci_figure_has_error_bars_of_the_ci_and_none_for_one_seed():
    sweep = read_sweep(*synthetic([{"x": 1.0}, {"x": 3.0}, {"x": 10.0}]))
    trace = plots_sweep.ci_figure(sweep.select("baseline"), "x", "makers").data[0]
    mean, low, high = mean_ci([1.0, 3.0])
    assert list(trace.x) == [1, 2] and list(trace.y) == [mean, 10.0]
    assert list(trace.error_y.array) == [pytest.approx(high - mean), 0.0]
    assert list(trace.error_y.arrayminus) == [pytest.approx(mean - low), 0.0]


def test_describe_sweep():
    assert (
        plots_sweep.describe_sweep(GRID.to_dict())
        == "baseline, tobin_tax × makers (1, 2) × noise (2, 4) × 3 seeds"
    )


# ------------------------------------------------------------------------------ the page
@pytest.fixture(scope="module")
def stored_sweeps(tmp_path_factory) -> tuple[Path, str, str]:
    """A database holding the GRID sweep, then the LINE sweep (the newer), and their IDs."""
    path = tmp_path_factory.mktemp("sweeps") / "sweeps.duckdb"
    store = RunStore(path)
    grid = run_sweep(GRID, store, workers=2)
    line = run_sweep(LINE, store, workers=2)
    assert not grid.failed and not line.failed and line.ran == 0
    return path, grid.sweep_id, line.sweep_id


@pytest.fixture
def sweeps(db, stored_sweeps) -> tuple[str, str]:
    """This test's database (``db``) holding both sweeps; their IDs (grid, line)."""
    shutil.copy(stored_sweeps[0], db)
    return stored_sweeps[1], stored_sweeps[2]


def seed_values(db: Path, spec: SweepSpec, scenario: str, params: dict, metric: str) -> list:
    """A metric of the runs at one point, read from the runs themselves (not the sweep)."""
    store = RunStore(db)
    tasks = [SweepTask(scenario, params, seed) for seed in spec.seeds]
    return [store.load_metrics(spec.run_id(task))[metric] for task in tasks]


def table(at, column: str):
    """The page's table with a column ``column`` ("seeds": per point; "run_id": per run).
    (A read-only ``st.dataframe`` keeps no key to find it by.)"""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def heatmap(at) -> dict:
    (chart,) = charts(at)
    (trace,) = chart["data"]
    assert trace["type"] == "heatmap"
    return trace


def test_with_no_sweep_the_page_says_how_to_make_one(db):
    at = start(PAGE)
    assert "No sweeps stored yet" in at.info[0].value
    assert "marlsim sweep --scenario baseline" in at.code[0].value
    assert not charts(at)


def test_a_stored_sweep_opens_with_its_table_and_heatmap(db, sweeps):
    grid_id, line_id = sweeps
    at = start(PAGE)
    assert at.selectbox(key="sweep_open").value == line_id  # newest first
    at.selectbox(key="sweep_open").set_value(grid_id).run()
    assert not at.exception and at.query_params["run_id"] == grid_id
    points = table(at, "seeds")
    assert list(points.columns[:5]) == ["scenario", "makers", "noise", "seeds", "mean_spread_ticks"]
    row = points[(points.makers == 2) & (points.noise == 4)].iloc[0]
    spreads = seed_values(db, GRID, "baseline", {"makers": 2, "noise": 4}, "mean_spread_ticks")
    assert row["seeds"] == "3"
    assert row["mean_spread_ticks"] == plots_sweep.ci_text(Stat(*mean_ci(spreads), 3))

    trace = heatmap(at)
    assert trace["x"] == ["1", "2"] and trace["y"] == ["2", "4"]
    z = trace["z"]  # nested lists (None for a blank cell), never plotly's binary arrays
    assert len(z) == 2 and all(len(r) == 2 for r in z)
    assert z[1][1] == pytest.approx(mean_ci(spreads)[0])  # y = noise 4, x = makers 2
    assert "n = 3 seeds" in trace["hovertext"][1][1]
    runs = table(at, "run_id")
    assert len(runs) == 12 and runs["run_id"].str.startswith("runs?run_id=").all()

    at.selectbox(key="sweep_metric").set_value("mean_volume").run()
    at.switch_page("app_pages/4_runs.py").run()
    at.switch_page(PAGE).run()  # the sweep and the chart's choices survive a page switch
    assert not at.exception
    assert at.selectbox(key="sweep_open").value == grid_id
    assert at.selectbox(key="sweep_metric").value == "mean_volume"


def test_another_metric_or_scenario_redraws_the_heatmap(db, sweeps):
    at = start(PAGE, query={"run_id": sweeps[0]})
    before = heatmap(at)["z"]
    at.selectbox(key="sweep_metric").set_value("excess_kurtosis").run()
    after = heatmap(at)
    kurtosis = seed_values(db, GRID, "baseline", {"makers": 1, "noise": 2}, "excess_kurtosis")
    assert after["z"] != before and after["z"][0][0] == pytest.approx(mean_ci(kurtosis)[0])
    at.selectbox(key="sweep_scenario").set_value("tobin_tax").run()
    assert not at.exception
    assert at.selectbox(key="sweep_metric").value == "mean_spread"  # that scenario's metrics
    assert "tobin_tax" in charts(at)[0]["layout"]["title"]["text"]
    assert set(table(at, "seeds")["scenario"]) == {"tobin_tax"}


def test_a_link_opens_its_sweep_and_a_one_parameter_sweep_draws_a_ci_chart(db, sweeps):
    at = start(PAGE, query={"run_id": sweeps[1]})
    assert at.selectbox(key="sweep_open").value == sweeps[1]
    (chart,) = charts(at)
    (trace,) = chart["data"]
    assert trace["type"] == "scatter" and trace["error_y"]["visible"]
    spreads = seed_values(db, LINE, "baseline", {"makers": 1}, "mean_spread_ticks")
    mean, low, high = mean_ci(spreads)
    assert values(trace["y"])[0] == pytest.approx(mean)
    assert values(trace["error_y"]["array"])[0] == pytest.approx(high - mean)


def test_a_link_to_a_run_that_is_not_a_sweep_says_so(db, sweeps):
    member = RunStore(db).get_run(sweeps[0])["summary"]["runs"][0]["run_id"]
    at = start(PAGE, query={"run_id": member})
    assert "not a sweep" in at.warning[0].value
    assert at.selectbox(key="sweep_open").value == sweeps[1]  # the newest instead


def test_a_sweep_with_failures_and_missing_metrics_shows_what_there_is(db, sweeps):
    store = RunStore(db)
    row = store.get_run(sweeps[0])
    summary = row["summary"]
    del summary["runs"][0]["metrics"]["mean_spread_ticks"]  # makers 1, noise 2, seed 42
    summary["runs"][1]["metrics"]["mean_spread_ticks"] = None  # seed 43: NaN once stored
    summary["runs"] = summary["runs"][:-1]  # the last task failed instead
    summary["failed"] = [{"params": {"scenario": "tobin_tax", "makers": 2, "noise": 4,
                                     "seed": 44}, "error": "RuntimeError: fire"}]  # fmt: skip
    store.save_run("0123456789abcdef", "sweep", 42, row["config"], None, {}, summary)
    at = start(PAGE, query={"run_id": "0123456789abcdef"})
    assert not at.exception
    notes = at.warning[0].value
    assert "1 task(s)" in notes and "mean_spread_ticks is missing" in notes
    cell = table(at, "seeds").loc[0, "mean_spread_ticks"]
    assert cell.endswith("(n=1 of 3)")  # the one seed left of three
    assert any(e.label.startswith("Failed tasks (1)") for e in at.expander)
