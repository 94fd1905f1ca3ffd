"""How fast the lab feels: the Market page for a default 5,000-step market, and opening a run.

Targets: re-running the Market page with its market cached <= 1.5 s; opening a stored run by
its ID <= 1 s. Measured with Streamlit's AppTest (the script run, without the browser's
drawing), in a fresh temporary database:

- simulation: the 5,000-step market with book snapshots, alone (and without snapshots);
- Market page, cold: the first ``at.run()`` with empty caches (simulate, store, draw);
- Market page, rerun: ``at.run()`` again (the market comes from the cache);
- Runs page, open by ID: typing a stored run's ID, with the run not yet cached and cached;
- Scenarios page, live tick: one rerun of the live market (a chunk of 200 steps + charts).

Usage: ``python -m marl_market.bench.app_timing [--repeat 5]`` from a source checkout (the app,
``app.py``, lives next to the package). Prints a table (medians). Not part of ``marlsim bench``:
it needs Streamlit's test harness and the checkout, and the command line imports neither.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
MARKET_TARGET_S = 1.5
OPEN_TARGET_S = 1.0


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per measurement")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench_app-")
    os.environ["MARL_MARKET_DB"] = str(Path(tmp.name) / "bench.duckdb")
    import_started = time.perf_counter()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from marl_market.core.config import MarketConfig
    from marl_market.core.market import simulate
    from marl_market.lab import workbench
    from marl_market.store import RunStore
    from marl_market.store.records import validate_simulate

    imports = time.perf_counter() - import_started
    logging.disable(logging.WARNING)  # AppTest's bare-mode warnings are noise here

    def clear_caches() -> None:
        st.cache_data.clear()
        st.cache_resource.clear()

    request = validate_simulate(steps=5_000, seed=42)
    rows: list[tuple[str, float, str]] = [("imports (streamlit, marl_market)", imports, "")]
    rows.append(
        (
            "simulation, 5,000 steps (no snapshots)",
            statistics.median(
                _timed(lambda: simulate(MarketConfig(steps=5_000), 42)) for _ in range(args.repeat)
            ),
            "",
        )
    )
    rows.append(
        (
            "simulation, 5,000 steps + book snapshots + facts",
            statistics.median(
                _timed(lambda: workbench.run_market(request)) for _ in range(args.repeat)
            ),
            "",
        )
    )

    # ---- the Market page
    first = AppTest.from_file(APP, default_timeout=120)
    rows.append(("Market page, first run in a new process", _timed(first.run), ""))
    assert not first.exception, first.exception
    colds, reruns = [], []
    for i in range(args.repeat):
        clear_caches()
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["seed"] = 1_000 + i  # a market that is not stored yet
        colds.append(_timed(at.run))
        assert not at.exception, at.exception
        reruns.append(_timed(at.run))
    rerun = statistics.median(reruns)
    rows.append(("Market page, cold (caches empty, new market)", statistics.median(colds), ""))
    ok = "ok" if rerun <= MARKET_TARGET_S else "OVER"
    rows.append(("Market page, rerun (market cached)", rerun, f"target {MARKET_TARGET_S} s {ok}"))

    # ---- opening a stored run by its ID
    run_id = workbench.run_market(request, RunStore(os.environ["MARL_MARKET_DB"])).run_id
    opened_cold, opened_warm = [], []
    for _ in range(args.repeat):
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page("app_pages/4_runs.py").run()
        st.cache_data.clear()
        opened_cold.append(_timed(at.text_input(key="open_run_id").input(run_id).run))
        assert not at.exception and not at.error, (at.exception, at.error)
        opened_warm.append(_timed(at.run))
    cold_open = statistics.median(opened_cold)
    ok = "ok" if cold_open <= OPEN_TARGET_S else "OVER"
    rows.append(
        ("Runs page, open a 5,000-step run by ID", cold_open, f"target {OPEN_TARGET_S} s {ok}")
    )
    rows.append(("Runs page, rerun with the run open (cached)", statistics.median(opened_warm), ""))
    rows.append(
        (
            "workbench.open_run alone (5 reads of the database)",
            statistics.median(
                _timed(lambda: workbench.open_run(RunStore(os.environ["MARL_MARKET_DB"]), run_id))
                for _ in range(args.repeat)
            ),
            "",
        )
    )

    # ---- the live market
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/3_scenarios.py").run()
    ticks = [_timed(at.run) for _ in range(args.repeat)]
    rows.append(
        ("Scenarios page, one live tick (200 steps + charts)", statistics.median(ticks), "")
    )

    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'seconds':>8}")
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:8.3f}  {note}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
