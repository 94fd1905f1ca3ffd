"""``marlsim bench``: every workload measured in one run, as one JSON-ready dict and a table.

``run_bench(options, log)`` runs, in this order (a peer's workload right after ours, so a
noisy spell on the shared machine hits both sides of a ratio): the book stream through our
engines and the baseline (then ABIDES's book on the same stream), the default market, the
learning environment (``bench.env``), the rmsc04-sized crowd (then an ABIDES rmsc04 day), the
zero-intelligence crowd (then PyMarketSim's), the multi-seed compare, and the 1,000,000-step
memory run. ``log`` gets one
line of progress per workload. Every ratio is of two figures measured in this run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marl_market import __version__
from marl_market.bench import peers, workloads
from marl_market.bench.book import measure_book
from marl_market.bench.stream import generate_stream, stream_mix

BOOK_OPS = 100_000
DEFAULT_STEPS = 10_000
ENV_STEPS = 10_000  # one episode of the default environment (issue 10's env_steps_per_s)
QUICK_ENV_STEPS = 2_000
CROWD_STEPS = 2_000
ZI_AGENTS = 500
ZI_STEPS = 50_000
QUICK_ZI_STEPS = 20_000
COMPARE_SEEDS = 20
QUICK_COMPARE_SEEDS = 2
RSS_STEPS = 1_000_000
RMSC04_DAY_END = "16:00:00"
QUICK_RMSC04_END = "10:00:00"  # half an hour of trading after the 09:30 open

# The keys issues 9 and 10 fix; every run prints all of them (None where a workload did not run).
REQUIRED_KEYS = (
    "book_orders_per_s",
    "baseline_orders_per_s",
    "sim_steps_per_s",
    "env_steps_per_s",
    "crowd_events_per_s",
    "zi_crowd_events_per_s",
    "compare_wall_s",
    "peak_rss_mb_1m_steps",
    "train_agent_steps_per_s",
    "train_minutes_to_ci_win",
    "calibrate_wall_s",
)


@dataclass(frozen=True)
class BenchOptions:
    """What to run: sizes (``quick``, ``scale``) and the peers' checkouts and interpreters."""

    quick: bool = False
    scale: float = 1.0  # shrinks every workload (tests); 1.0 is the real bench
    seed: int = 42
    abides: Path | None = None
    abides_python: str | None = None
    pymarketsim: Path | None = None
    pymarketsim_python: str | None = None


def check_peers(options: BenchOptions) -> dict[str, dict]:
    """Validate the peers' options before anything runs; their interpreters' versions.

    Raises ``peers.PeerOptionError`` with one line on a bad path or interpreter.
    """
    found: dict[str, dict] = {}
    if options.abides_python is not None and options.abides is None:
        raise peers.PeerOptionError("--abides-python needs --abides PATH")
    if options.pymarketsim_python is not None and options.pymarketsim is None:
        raise peers.PeerOptionError("--pymarketsim-python needs --pymarketsim PATH")
    if options.abides is not None:
        python = peers.check_interpreter(options.abides_python or sys.executable, "--abides-python")
        found["abides"] = peers.check_abides(options.abides, python)
    if options.pymarketsim is not None:
        python = peers.check_interpreter(
            options.pymarketsim_python or sys.executable, "--pymarketsim-python"
        )
        found["pymarketsim"] = peers.check_pymarketsim(options.pymarketsim, python)
    return found


def _scaled(n: int, scale: float, floor: int) -> int:
    return max(floor, int(round(n * scale)))


def machine_info() -> dict:
    """CPU model, processor count, OS and Python/numpy versions of this machine."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "marl_market": __version__,
    }


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if not ours or not theirs else ours / theirs


def run_bench(options: BenchOptions, log: Callable[[str], None] = lambda _line: None) -> dict:
    """Run every workload once and return the result (see ``REQUIRED_KEYS``).

    Peer options must have passed ``check_peers`` first. A peer workload that fails is
    recorded under ``peers`` as ``{"error": ...}``; our own workloads raise.
    """
    scale, seed = options.scale, options.seed
    started = dt.datetime.now(dt.UTC)
    result: dict = {
        "date": started.isoformat(timespec="seconds"),
        "quick": options.quick,
        "scale": scale,
        "machine": machine_info(),
        "notes": [],
    }
    result.update(dict.fromkeys(REQUIRED_KEYS))
    peer_results: dict[str, dict] = {}
    abides_python = options.abides_python or sys.executable
    pms_python = options.pymarketsim_python or sys.executable

    # ---- the order book
    n_ops = _scaled(BOOK_OPS, scale, 1_000)
    log(f"book: generating a {n_ops:,}-operation stream (seed {seed})")
    ops = generate_stream(n_ops, seed)
    repeats = 1 if options.quick else 3
    log(f"book: submit(Order), submit_fast and the baseline, best of {repeats}")
    book = measure_book(ops, repeats)
    result["book_orders_per_s"] = book.submit_orders_per_s
    result["book_fast_orders_per_s"] = book.fast_orders_per_s
    result["baseline_orders_per_s"] = book.baseline_orders_per_s
    result["book"] = {**book.as_dict(), "seed": seed, "mix": stream_mix(ops)}
    if options.abides is not None:
        log("peer: ABIDES OrderBook on the same stream")
        entry = _peer(
            lambda: peers.abides_book(options.abides, abides_python, ops, repeats),
        )
        if "error" not in entry:
            entry["fills_match"] = (entry["fills"], entry["filled_qty"]) == (
                book.fills,
                book.filled_qty,
            )
            entry["ours_submit_orders_per_s"] = book.submit_orders_per_s
            entry["ours_fast_orders_per_s"] = book.fast_orders_per_s
            entry["submit_vs_abides"] = _ratio(book.submit_orders_per_s, entry["orders_per_s"])
            entry["fast_vs_abides"] = _ratio(book.fast_orders_per_s, entry["orders_per_s"])
        peer_results.setdefault("abides", {})["book"] = entry

    # ---- the default market
    steps = _scaled(DEFAULT_STEPS, scale, 200)
    repeats = 1 if options.quick else 3
    log(f"market: the default population, {steps:,} steps, best of {repeats}")
    default = workloads.default_market(steps, repeats, seed)
    result["sim_steps_per_s"] = default["steps_per_s"]
    result["sim"] = default

    # ---- the learning environment (imported here: pettingzoo is no cost of the other figures)
    from marl_market.bench.env import env_steps

    steps = _scaled(QUICK_ENV_STEPS if options.quick else ENV_STEPS, scale, 200)
    log(f"env: the default environment, random actions, {steps:,} steps, best of {repeats}")
    env = env_steps(steps, repeats, seed)
    result["env_steps_per_s"] = env["steps_per_s"]
    result["env"] = env

    # ---- training (torch imported here, as the environment's pettingzoo above)
    from marl_market.bench.train import train_figures

    log(
        "train: the default `marlsim train` run's throughput"
        + ("" if options.quick or scale < 1 else ", then its minutes until the paired CI wins")
    )
    training = train_figures(options.quick, scale)
    result["train_agent_steps_per_s"] = training["train_agent_steps_per_s"]
    result["train_minutes_to_ci_win"] = training.get("train_minutes_to_ci_win")
    result["train_minutes_to_beat_untrained"] = training.get("train_minutes_to_beat_untrained")
    result["train"] = training
    if training["ci_win"] is None:
        result["notes"].append(
            "train_minutes_to_ci_win skipped (--quick): it trains for up to 15 minutes"
        )

    # ---- the rmsc04-sized crowd
    steps = _scaled(CROWD_STEPS, scale, 50)
    log(f"market: the rmsc04-sized crowd, {steps:,} steps")
    crowd = workloads.book_events_rate(workloads.crowd_config(steps), seed)
    result["crowd_events_per_s"] = crowd["events_per_s"]
    result["crowd"] = crowd
    if options.abides is not None:
        end = QUICK_RMSC04_END if options.quick or scale < 1 else RMSC04_DAY_END
        log(f"peer: an ABIDES rmsc04 day (09:30-{end})")
        entry = _peer(lambda: peers.abides_rmsc04(options.abides, abides_python, end))
        if "error" not in entry:
            entry["ours_events_per_s"] = crowd["events_per_s"]
            entry["ours_vs_abides"] = _ratio(crowd["events_per_s"], entry["events_per_s"])
        peer_results.setdefault("abides", {})["rmsc04"] = entry

    # ---- the zero-intelligence crowd (PyMarketSim's workload)
    zi_steps = _scaled(QUICK_ZI_STEPS if options.quick else ZI_STEPS, scale, 500)
    log(f"market: the zero-intelligence crowd, {ZI_AGENTS} agents, {zi_steps:,} steps")
    zi = workloads.zi_crowd(ZI_AGENTS, zi_steps, seed)
    result["zi_crowd_events_per_s"] = zi["events_per_s"]
    result["zi_crowd"] = zi
    if options.pymarketsim is not None:
        log(f"peer: PyMarketSim's zero-intelligence crowd, {ZI_AGENTS} agents, {zi_steps:,} steps")
        entry = _peer(
            lambda: peers.pymarketsim_zi(options.pymarketsim, pms_python, ZI_AGENTS, zi_steps)
        )
        if "error" not in entry:
            entry["ours_events_per_s"] = zi["events_per_s"]
            entry["ours_vs_pymarketsim"] = _ratio(zi["events_per_s"], entry["events_per_s"])
        peer_results.setdefault("pymarketsim", {})["zi"] = entry

    # ---- the multi-seed compare
    seeds = COMPARE_SEEDS
    if options.quick or scale < 1:
        seeds = QUICK_COMPARE_SEEDS if scale >= 1 else 1
        result["notes"].append(
            f"compare ran {seeds} seed(s), not {COMPARE_SEEDS}: compare_wall_s is not the "
            f"{COMPARE_SEEDS}-seed figure"
        )
    log(f"lab: the compare, {seeds} seed(s) x every scenario, into a temporary database")
    compare = workloads.compare_wall(seeds, steps=_scaled(5_000, scale, 200))
    result["compare_wall_s"] = compare["seconds"]
    result["compare"] = compare

    # ---- a calibration: 2 parameters, 5 seeds a candidate, the local backend (issue 12)
    from marl_market.bench.workloads import calibration_wall

    small = options.quick or scale < 1
    log("scale: a 2-parameter, 5-seed calibration to the S&P 500" + (" (small)" if small else ""))
    result["calibrate"] = calibration = calibration_wall(small)
    result["calibrate_wall_s"] = calibration["seconds"]
    if small:
        result["notes"].append(
            "calibrate_wall_s ran a small calibration (6 candidates of 2,000 steps), not the "
            "default 20 candidates of 10,000 steps"
        )

    # ---- memory of a long run
    if options.quick:
        result["notes"].append("peak_rss_mb_1m_steps skipped under --quick")
        log("memory: skipped under --quick")
    else:
        rss_steps = _scaled(RSS_STEPS, scale, 1_000)
        log(f"memory: a default {rss_steps:,}-step run in a child process")
        rss = workloads.peak_rss(rss_steps, seed)
        result["rss"] = rss
        log(f"memory: the same {rss_steps:,} steps unrecorded (as an environment plays them)")
        result["rss_unrecorded"] = bare = workloads.peak_rss(rss_steps, seed, record=False)
        if rss_steps == RSS_STEPS:
            result["peak_rss_mb_1m_steps"] = rss["peak_rss_mb"]
            result["peak_rss_mb_1m_steps_unrecorded"] = bare["peak_rss_mb"]
        else:
            result["notes"].append(f"memory run was {rss_steps:,} steps, not 1,000,000")

    if options.abides is not None:
        peer_results["abides"].update(path=str(options.abides), python=abides_python)
    if options.pymarketsim is not None:
        peer_results["pymarketsim"].update(path=str(options.pymarketsim), python=pms_python)
    result["peers"] = peer_results
    result["wall_s"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return result


def _peer(run: Callable[[], dict]) -> dict:
    try:
        return run()
    except peers.PeerRunError as error:
        return {"error": str(error)}


def peer_failures(result: dict) -> list[str]:
    """The error of every peer workload that failed in ``result``."""
    return [
        f"{name} {workload}: {entry['error']}"
        for name, workloads_ in result.get("peers", {}).items()
        for workload, entry in workloads_.items()
        if isinstance(entry, dict) and "error" in entry
    ]
