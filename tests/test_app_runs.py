"""The Runs page shares runs like the CLI does: it lists what tells runs apart, verifies a run
by re-running it, flags runs made by other code, and exports / imports whole runs."""

from __future__ import annotations

import duckdb

from marl_market.lab import workbench
from marl_market.store import RunStore, code_version
from tests.test_app import start, stored_run


def open_on_runs_page(run_id: str):
    at = start("app_pages/4_runs.py")
    at.text_input(key="open_run_id").input(run_id).run()
    assert not at.exception
    return at


def test_the_list_shows_what_tells_runs_apart(db):
    stored_run(db)
    table = start("app_pages/4_runs.py").dataframe[0].value
    assert {"kind", "scenario", "seed", "steps", "created (UTC)", "code version"} <= set(
        table.columns
    )
    assert set(table["code version"]) == {code_version()}


def test_verify_re_runs_the_run_and_says_it_is_identical(db):
    run_id = stored_run(db)
    at = open_on_runs_page(run_id)
    assert not at.warning  # made by this code
    at.button(key="verify_run").click().run()
    assert not at.exception and not at.error
    assert "identical" in at.success[0].value and "NOT" not in at.success[0].value


def test_a_run_made_by_other_code_is_flagged_and_verify_says_why_it_differs(db):
    run_id = stored_run(db)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE runs SET code_version = '0.0.1+000000000000' WHERE run_id = ?",
                    [run_id])  # fmt: skip
        con.execute("UPDATE steps SET spread = spread + 1 WHERE run_id = ? AND step = 3",
                    [run_id])  # fmt: skip
    at = open_on_runs_page(run_id)
    assert "different code" in at.warning[0].value
    at.button(key="verify_run").click().run()
    message = at.error[0].value
    assert "NOT identical" in message and "steps.spread" in message and "0.0.1" in message


def test_export_then_import_into_another_database_gives_the_same_run(db, tmp_path):
    run_id = stored_run(db)
    data = workbench.export_duckdb(RunStore(db), [run_id])
    other = RunStore(tmp_path / "colleague.duckdb")
    assert workbench.import_duckdb(other, data) == {"imported": [run_id], "skipped": []}
    assert workbench.import_duckdb(other, data) == {"imported": [], "skipped": [run_id]}
    assert other.load_metrics(run_id) == RunStore(db).load_metrics(run_id)
    at = open_on_runs_page(run_id)
    assert any(b.label == "Download DuckDB file" for b in at.get("download_button"))
