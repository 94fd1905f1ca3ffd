"""Reading runs back: rows of ``runs`` (config and summary parsed) and a run's tables."""

from __future__ import annotations

import json

import numpy as np

from marl_market.store.connection import Connection
from marl_market.store.schema import DONE, RESULT_TABLES

# Columns of result tables added after files existed, with the value older runs had: runs
# stored before agent samples were per asset had one asset.
_ADDED_COLUMN_DEFAULTS = {("agent_steps", "asset"): 0}


class Reader(Connection):
    """Finding and loading finished runs (part of ``RunStore``)."""

    def has_run(self, run_id: str) -> bool:
        """Whether a finished run with this id is stored."""
        return self.get_run(run_id) is not None

    def get_run(self, run_id: str) -> dict | None:
        """The ``runs`` row of a finished run, config and summary parsed; None if absent."""
        rows = self._select_runs("WHERE status = ? AND run_id = ?", [DONE, run_id])
        return rows[0] if rows else None

    def list_runs(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        """Finished runs, newest first, optionally of one kind only."""
        where, params = "WHERE status = ?", [DONE]
        if kind is not None:
            where += " AND kind = ?"
            params.append(kind)
        return self._select_runs(
            f"{where} ORDER BY created_at DESC, run_id LIMIT ?", [*params, int(limit)]
        )

    def load_steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The per-step table of a run, as in ``RunResult.steps``."""
        return self._load_table("steps", run_id)

    def load_trades(self, run_id: str) -> dict[str, np.ndarray]:
        """The trades of a run, in the order they happened."""
        return self._load_table("trades", run_id)

    def load_agents(self, run_id: str) -> dict[str, np.ndarray]:
        """The end-of-run agent table of a run."""
        return self._load_table("agents", run_id)

    def load_agent_steps(self, run_id: str) -> dict[str, np.ndarray]:
        """The sampled per-agent inventory and PnL of a run."""
        return self._load_table("agent_steps", run_id)

    def load_positions(self, run_id: str) -> dict[str, np.ndarray]:
        """Each agent's end-of-run inventory per asset (one row per agent and asset)."""
        return self._load_table("positions", run_id)

    def load_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics stored with a run, by name."""
        with self._read() as con:
            self._require_run(con, run_id)
            rows = con.execute(
                "SELECT name, value FROM metrics WHERE run_id = ? ORDER BY rowid", [run_id]
            ).fetchall()
        return {name: float(value) for name, value in rows}

    def _select_runs(self, clause: str, params: list) -> list[dict]:
        with self._read() as con:
            if con is None:
                return []
            cursor = con.execute(f"SELECT * FROM runs {clause}", params)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        runs = []
        for row in rows:
            run = dict(zip(columns, row, strict=True))
            for key in ("config", "summary"):
                if run[key] is not None:
                    run[key] = json.loads(run[key])
            run["scenario"] = scenario_of(run)
            run["population"] = population_of(run)
            run["seeds"] = seeds_of(run)
            runs.append(run)
        return runs

    def _load_table(self, table: str, run_id: str) -> dict[str, np.ndarray]:
        columns = RESULT_TABLES[table]
        with self._read() as con:
            self._require_run(con, run_id)
            # rowid order is insertion order: trades within a step keep their sequence.
            # A column added after a run was stored holds NULL for it once the file has been
            # written by a newer version (``schema.migrate``), and is absent from a file only
            # ever read since: either way, read it as the value every such run had.
            present = {
                row[0]
                for row in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
                ).fetchall()
            }
            selected = ", ".join(_column_or_default(table, name, present) for name in columns)
            data = con.execute(
                f"SELECT {selected} FROM {table} WHERE run_id = ? ORDER BY rowid",
                [run_id],
            ).fetchnumpy()
        return {name: np.asarray(data[name], dtype=dtype) for name, dtype in columns.items()}


def _column_or_default(table: str, name: str, present: set[str]) -> str:
    default = _ADDED_COLUMN_DEFAULTS.get((table, name))
    if default is None:
        return name  # a column every stored file has
    if name not in present:
        return f"{default} AS {name}"
    return f"COALESCE({name}, {default}) AS {name}"


POPULATION_ORDER = ("makers", "momentum", "value", "noise")


# The types beyond the four-type ecology, as a run's population names them (``+2 takers``).
EXTRA_AGENTS = (("zi", "zi", "zi"), ("takers", "taker", "takers"), ("arbs", "arb", "arbs"))


def population_of(run: dict) -> str | None:
    """The run's agents as ``makers/momentum/value/noise``, then any zero-intelligence traders,
    execution takers, arbitrageurs and learner slots, e.g. ``2/4/3/4 +2 takers +1 arb``."""
    market = (run.get("config") or {}).get("market")
    population = market.get("population") if isinstance(market, dict) else None
    if not isinstance(population, dict):
        return None
    parts = ["/".join(str(population.get(kind, 0)) for kind in POPULATION_ORDER)]
    for field, one, many in EXTRA_AGENTS:
        count = population.get(field) or 0
        if count:
            parts.append(f"+{count} {one if count == 1 else many}")
    learners = population.get("learners") or []
    if learners:
        parts.append(f"+{len(learners)} learner{'s' if len(learners) > 1 else ''}")
    return " ".join(parts)


def seeds_of(run: dict) -> str | None:
    """The run's seed, or a comparison's seeds as ``first-last (count)``, e.g. ``42-61 (20)``."""
    if run.get("seed") is not None:
        return str(run["seed"])
    seeds = (run.get("config") or {}).get("seeds")
    if not isinstance(seeds, list) or not seeds:
        return None
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})" if len(seeds) > 1 else str(seeds[0])
    return f"{', '.join(map(str, seeds[:3]))}{', ...' if len(seeds) > 3 else ''} ({len(seeds)})"


def scenario_of(run: dict) -> str | None:
    """The scenario a run is about: its kind for a scenario run, all kinds for a comparison."""
    config = run.get("config") or {}
    if isinstance(config.get("scenario"), dict):
        return config["scenario"].get("kind")
    if isinstance(config.get("scenarios"), list):
        return ", ".join(str(s.get("kind")) for s in config["scenarios"] if isinstance(s, dict))
    return None
