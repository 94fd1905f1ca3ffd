"""Small numeric helpers every front door shares: means that skip NaN, display formatting, and
JSON-safe values (numpy + stdlib only, so the browser build has them too)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def nanmean(x: object) -> float:
    """Mean ignoring NaN (a one-sided book has no spread); NaN, without a RuntimeWarning, if
    nothing is left."""
    a = np.asarray(x, dtype=float).ravel()
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


def is_number(value: object) -> bool:
    """True for a finite real number (not None, NaN or an infinity)."""
    try:
        return value is not None and math.isfinite(value)  # type: ignore[arg-type]
    except TypeError:
        return False


def fmt(value: float | None, pattern: str = "{:.2f}", missing: str = "-") -> str:
    """A number for display; missing or non-finite values show as ``missing``."""
    return pattern.format(value) if is_number(value) else missing


def finite_or_none(value: object) -> object:
    """``value`` with NaN and infinities replaced by None, through dicts, lists and tuples
    (tuples become lists), so the result is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
