"""Run IDs: a digest of what a run is (kind, config, seed) and of the code that made it.

The code version is the package version plus a digest of the simulation's source, so after the
engine changes the same config and seed give a new run ID instead of a stale stored run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import marl_market
from marl_market.store.errors import StoreError

# The source that produces a run's numbers: the numpy core (book, market, agents, scenarios,
# facts, config). The store, the app and the plots do not change results, so they are left out.
SIMULATION_SOURCE = Path(marl_market.__file__).resolve().parent / "core"


@functools.cache
def code_version() -> str:
    """``<package version>+<12 hex digits of the simulation source>``, computed once a process."""
    digest = hashlib.sha256()
    for path in sorted(SIMULATION_SOURCE.rglob("*.py")):
        digest.update(path.relative_to(SIMULATION_SOURCE).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"{marl_market.__version__}+{digest.hexdigest()[:12]}"


def make_run_id(kind: str, config: dict, seed: int | None, code_version: str) -> str:
    """A deterministic id: 16 hex chars of the sha256 of the canonical JSON of the inputs.

    The same kind, config, seed and code version always give the same id, which is what lets
    ``save_run`` recognise a run that has been done before.
    """
    payload = {"kind": kind, "config": config, "seed": seed, "code_version": code_version}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def canonical_json(value: Any) -> str:
    """Sorted-key compact JSON; numpy scalars/arrays become plain values, NaN/inf become null."""
    try:
        return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"not JSON-serialisable: {exc}") from exc


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (dataclasses and numpy values included)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a metric that could not be computed is "null"
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"{type(value).__name__} value {value!r}")
