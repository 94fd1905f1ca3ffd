"""Verifying a stored run: play it again from its stored config and seed, compare every row.

Determinism is a feature: the same config, seed and code give the same run on any machine. A
verification says whether that held (bit for bit, every stored table) and, when it did not,
whether the code that made the run differs from the code running now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marl_market.core.market import Market
from marl_market.core.results import RunResult
from marl_market.core.scenarios import Scenario, run_scenario
from marl_market.store import RESULT_TABLES, RunStore, StoreError, code_version
from marl_market.store.records import InputError, parse_config

REPLAYABLE_KINDS = ("simulate", "baseline", "scenario")


@dataclass
class Verification:
    """The outcome of re-running one stored run (or every run of a comparison)."""

    run_id: str
    kind: str
    identical: bool
    stored_code: str
    current_code: str
    differences: list[str] = field(default_factory=list)  # "steps.mid", "trades (rows)", ...
    runs: list[Verification] = field(default_factory=list)  # a comparison's member runs

    @property
    def same_code(self) -> bool:
        return self.stored_code == self.current_code

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "identical": self.identical,
            "same_code": self.same_code,
            "stored_code_version": self.stored_code,
            "current_code_version": self.current_code,
            "differences": self.differences,
            "runs": [r.as_dict() for r in self.runs],
        }

    def verdict(self) -> str:
        """One line for a person."""
        if self.identical:
            return f"run {self.run_id}: identical - re-running it reproduced every stored row"
        where = ", ".join(self.differences[:5]) or "its member runs"
        code = (
            "the code is the same, so the stored rows were changed or the platform differs"
            if self.same_code
            else f"it was made by code {self.stored_code}, this is {self.current_code}"
        )
        return f"run {self.run_id}: NOT identical (differs in {where}); {code}"


def rerun(row: dict) -> RunResult:
    """Play a stored run again from its ``runs`` row (config and seed)."""
    config = row.get("config") or {}
    try:
        market_config = parse_config(config["market"])
    except (KeyError, TypeError, InputError) as error:
        raise StoreError(f"run {row['run_id']} has no replayable market config: {error}") from None
    if row["kind"] == "scenario":
        scenario = Scenario(**config["scenario"])
        return run_scenario(market_config, scenario, int(row["seed"]))
    market = Market(market_config, int(row["seed"]))
    return market.run()


def verify_run(store: RunStore, run_id: str) -> Verification:
    """Re-run ``run_id`` from the store and compare it with what is stored."""
    row = store.get_run(run_id)
    if row is None:
        raise StoreError(f"no run {run_id!r} in {store.path}")
    stored_code, current = row.get("code_version") or "unknown", code_version()
    if row["kind"] == "compare":
        ids = [i for ids in (row.get("summary") or {}).get("run_ids", {}).values() for i in ids]
        members = [verify_run(store, i) for i in dict.fromkeys(ids)]
        identical = bool(members) and all(m.identical for m in members)
        differences = [m.run_id for m in members if not m.identical]
        return Verification(
            run_id, "compare", identical, stored_code, current, differences, members
        )
    if row["kind"] not in REPLAYABLE_KINDS:
        raise StoreError(f"run {run_id} is a {row['kind']!r} run, which cannot be re-run")
    result = rerun(row)
    loaders = {
        "steps": store.load_steps,
        "trades": store.load_trades,
        "agents": store.load_agents,
        "agent_steps": store.load_agent_steps,
        "positions": store.load_positions,
    }
    differences = []
    for table, columns in RESULT_TABLES.items():
        stored, fresh = loaders[table](run_id), getattr(result, table)
        if len(stored[next(iter(columns))]) != len(fresh[next(iter(columns))]):
            differences.append(f"{table} (rows)")
            continue
        differences += [
            f"{table}.{name}"
            for name, dtype in columns.items()
            if not _same(stored[name], np.asarray(fresh[name]).astype(dtype, copy=False))
        ]
    return Verification(run_id, row["kind"], not differences, stored_code, current, differences)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    if a.dtype == object:
        return [str(x) for x in a.tolist()] == [str(x) for x in b.tolist()]
    return np.array_equal(a, b)
