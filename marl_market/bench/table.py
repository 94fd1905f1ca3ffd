"""The human-readable table of a ``marlsim bench`` result (the JSON holds every figure)."""

from __future__ import annotations


def _rate(value: float | None, unit: str) -> str:
    return "not run" if value is None else f"{value:,.0f} {unit}"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def format_table(result: dict) -> str:
    """Rows of workload, our figure, the reference measured in the same run, and the ratio."""
    machine = result["machine"]
    lines = [
        f"marlsim bench, {result['date']}, {machine['cpu']}, {machine['cpus']} CPUs, "
        f"Python {machine['python']}, numpy {machine['numpy']}"
        + (" (--quick)" if result["quick"] else ""),
        "",
    ]
    rows: list[tuple[str, str, str, str]] = []
    book = result["book"]
    baseline = result["baseline_orders_per_s"]
    rows.append(
        (
            f"book, submit(Order), {book['ops']:,}-op stream",
            _rate(result["book_orders_per_s"], "orders/s"),
            f"plain book {_rate(baseline, 'orders/s')}",
            _x(book["submit_vs_baseline"]),
        )
    )
    rows.append(
        (
            "book, submit_fast, same stream",
            _rate(result["book_fast_orders_per_s"], "orders/s"),
            f"plain book {_rate(baseline, 'orders/s')}",
            _x(book["fast_vs_baseline"]),
        )
    )
    sim = result["sim"]
    rows.append(
        (
            f"default market, {sim['steps']:,} steps",
            _rate(result["sim_steps_per_s"], "steps/s"),
            f"{sim['seconds']:.2f} s",
            "",
        )
    )
    env = result["env"]
    rows.append(
        (
            f"environment, {env['n_assets']} assets, {len(env['learners'])} learners, "
            f"{env['steps']:,} steps",
            _rate(result["env_steps_per_s"], "steps/s"),
            f"its market alone {_rate(env['market_steps_per_s'], 'steps/s')}",
            _x(result["env_steps_per_s"] / env["market_steps_per_s"]),
        )
    )
    training = result.get("train")
    if training is not None:
        speed, everyone = training["throughput"], training["throughput_everyone"]
        ceiling = training.get("market_ceiling")
        rows.append(
            (
                f"training, {', '.join(speed['learners'])} learning, {speed['workers']} processes",
                _rate(result["train_agent_steps_per_s"], "agent-steps/s"),
                ""
                if ceiling is None
                else f"its markets alone {_rate(ceiling['agent_steps_per_s'], 'agent-steps/s')}",
                ""
                if ceiling is None
                else _x(result["train_agent_steps_per_s"] / ceiling["agent_steps_per_s"]),
            )
        )
        rows.append(
            (
                "training, every type learning",
                _rate(everyone["agent_steps_per_s"], "agent-steps/s"),
                "",
                "",
            )
        )
        race = training["ci_win"]
        if race is not None:
            rows.append(
                (
                    f"training until the paired CI ({race['eval_seeds']} held-out seeds) "
                    "excludes zero",
                    _minutes(result["train_minutes_to_ci_win"]) + " vs fixed",
                    _minutes(result["train_minutes_to_beat_untrained"]) + " vs untrained",
                    "",
                )
            )
    calibration = result.get("calibrate")
    if calibration is not None:
        rows.append(
            (
                f"calibration, 2 parameters, {calibration['evaluations']} candidates x "
                f"{calibration['seeds']} seeds x {calibration['steps']:,} steps",
                f"{result['calibrate_wall_s']:.1f} s",
                f"distance {calibration['distance']:.2f}",
                "",
            )
        )
    crowd = result["crowd"]
    rows.append(
        (
            f"rmsc04-sized crowd, {crowd['agents']:,} agents, {crowd['steps']:,} steps",
            _rate(result["crowd_events_per_s"], "events/s"),
            f"{crowd['book_events']:,} events",
            "",
        )
    )
    zi = result["zi_crowd"]
    rows.append(
        (
            f"zero-intelligence crowd, {zi['agents']} agents, {zi['steps']:,} steps",
            _rate(result["zi_crowd_events_per_s"], "events/s"),
            f"{zi['book_events']:,} events",
            "",
        )
    )
    compare = result["compare"]
    rows.append(
        (
            f"compare, {compare['seeds']} seeds x {compare['scenarios'] + 1} runs",
            f"{result['compare_wall_s']:.1f} s wall",
            f"{compare['workers']} workers",
            "",
        )
    )
    rss = result["peak_rss_mb_1m_steps"]
    rows.append(
        (
            "peak RSS, default 1,000,000-step run",
            "skipped" if rss is None else f"{rss:,.0f} MB",
            "" if "rss" not in result else f"{result['rss']['seconds']:.0f} s",
            "",
        )
    )
    bare = result.get("peak_rss_mb_1m_steps_unrecorded")
    if bare is not None:
        rows.append(
            (
                "peak RSS, same run unrecorded (record=False)",
                f"{bare:,.0f} MB",
                f"{result['rss_unrecorded']['seconds']:.0f} s",
                "",
            )
        )
    rows.extend(_peer_rows(result.get("peers", {})))
    widths = [max(len(row[i]) for row in rows + [_HEADER]) for i in range(4)]
    for row in [_HEADER, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    lines.extend(f"note: {note}" for note in result.get("notes", []))
    return "\n".join(lines)


_HEADER = ("workload", "ours", "reference (same run)", "ours / reference")


def _peer_rows(found: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    abides = found.get("abides", {})
    if "book" in abides:
        entry = abides["book"]
        if "error" in entry:
            rows.append(("ABIDES OrderBook, same stream", "", f"failed: {entry['error']}", ""))
        else:
            match = "" if entry["fills_match"] else " (fills differ!)"
            rows.append(
                (
                    "ABIDES OrderBook vs submit(Order)",
                    _rate(entry["ours_submit_orders_per_s"], "orders/s"),
                    f"ABIDES {_rate(entry['orders_per_s'], 'orders/s')}{match}",
                    _x(entry["submit_vs_abides"]),
                )
            )
            rows.append(
                (
                    "ABIDES OrderBook vs submit_fast",
                    _rate(entry["ours_fast_orders_per_s"], "orders/s"),
                    f"ABIDES {_rate(entry['orders_per_s'], 'orders/s')}",
                    _x(entry["fast_vs_abides"]),
                )
            )
    if "rmsc04" in abides:
        entry = abides["rmsc04"]
        if "error" in entry:
            rows.append(("ABIDES rmsc04 day", "", f"failed: {entry['error']}", ""))
        else:
            rows.append(
                (
                    f"ABIDES rmsc04 (to {entry['end_time']}) vs rmsc04-sized crowd",
                    _rate(entry["ours_events_per_s"], "events/s"),
                    f"ABIDES {_rate(entry['events_per_s'], 'events/s')} "
                    f"({entry['book_events']:,} in {entry['seconds']:.1f} s)",
                    _x(entry["ours_vs_abides"]),
                )
            )
    zi = found.get("pymarketsim", {}).get("zi")
    if zi is not None:
        if "error" in zi:
            rows.append(("PyMarketSim ZI crowd", "", f"failed: {zi['error']}", ""))
        else:
            rows.append(
                (
                    f"PyMarketSim ZI crowd ({zi['steps']:,} steps) vs ours",
                    _rate(zi.get("ours_events_per_s"), "events/s"),
                    f"PyMarketSim {_rate(zi['events_per_s'], 'events/s')}",
                    _x(zi.get("ours_vs_pymarketsim")),
                )
            )
    return rows


def _minutes(value: float | None) -> str:
    return "not within the budget" if value is None else f"{value:.1f} min"
