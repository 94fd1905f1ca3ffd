"""Correlated fundamentals: the check of a correlation matrix and its Cholesky factor.

Every asset's fundamental draws its own standard normals each step (``core.draws.PerStep``);
with a correlation matrix C = L L^T the market mixes the step's vector of shocks z into L z,
whose components have unit variance and correlation C. The diffusion shock and the anchor
shock are mixed alike, so (jumps aside, which stay idiosyncratic) the assets' fundamental log
returns have correlation C. Without a matrix, or with one asset, nothing is mixed: the draws
and results are bit for bit those of independent fundamentals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOLERANCE = 1e-9  # symmetry, unit diagonal and the smallest eigenvalue, up to rounding
JITTER = 1e-12  # added to the diagonal of a singular (semi-definite) matrix before factoring


def correlation_factor(
    matrix: Sequence[Sequence[float]] | None, n_assets: int
) -> list[list[float]] | None:
    """The lower Cholesky factor of ``matrix`` as nested lists, or None if nothing is mixed.

    Raises one ``ValueError`` naming the condition that fails: square n_assets x n_assets,
    finite entries in [-1, 1], symmetric, unit diagonal, positive semi-definite.
    """
    if matrix is None:
        return None
    try:
        c = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        c = None
    problem = _problem(c, n_assets)
    if problem:
        raise ValueError(f"invalid fundamental_correlation: {problem}")
    if n_assets == 1:
        return None
    try:
        factor = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        # Semi-definite (e.g. two assets perfectly correlated): factor a hair above it and
        # rescale the rows, so every mixed shock keeps unit variance.
        factor = np.linalg.cholesky(c + JITTER * np.eye(n_assets))
        factor /= np.linalg.norm(factor, axis=1, keepdims=True)
    return factor.tolist()


def _problem(c: np.ndarray | None, n_assets: int) -> str:
    """What is wrong with ``c`` as an ``n_assets`` correlation matrix ('' if nothing)."""
    if c is None or c.ndim != 2 or c.shape[0] != c.shape[1]:
        return "it must be a square matrix (a list of equal-length rows)"
    if c.shape != (n_assets, n_assets):
        return f"it is {c.shape[0]} x {c.shape[1]}, but the market has {n_assets} asset(s)"
    if not np.all(np.isfinite(c)) or np.any(np.abs(c) > 1.0):
        return "every entry must be a number in [-1, 1]"
    if np.any(np.abs(c - c.T) > TOLERANCE):
        return "it must be symmetric"
    if np.any(np.abs(np.diag(c) - 1.0) > TOLERANCE):
        return "its diagonal must be all ones"
    smallest = float(np.linalg.eigvalsh(c).min())
    if smallest < -TOLERANCE:
        return f"it must be positive semi-definite (smallest eigenvalue {smallest:.3g})"
    return ""


def book_fundamentals(listings: Sequence[int] | None, n_books: int) -> list[int]:
    """The fundamental each book trades: ``listings`` checked, or book i -> fundamental i.

    Venue books of one asset share its fundamental (spec 000's venue-asset nodes), so their
    prices differ only by their books' order flow: what a cross-venue arbitrageur trades.
    Raises one ``ValueError`` unless there is one entry per book and the fundamentals are
    numbered 0..k-1, each listed at least once.
    """
    if listings is None:
        return list(range(n_books))
    listed = list(listings)
    if len(listed) != n_books:
        raise ValueError(f"listings needs one fundamental per book ({n_books}), got {len(listed)}")
    if any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in listed):
        raise ValueError("listings must be non-negative integers (a fundamental per book)")
    if set(listed) != set(range(max(listed) + 1)):
        raise ValueError("listings must number the fundamentals 0..k-1, each at least once")
    return listed


def venue_listings(n_assets: int, venues: int) -> tuple[int, ...]:
    """Books for ``n_assets`` assets on ``venues`` venues each: asset a's venues side by side."""
    if n_assets <= 0 or venues <= 0:
        raise ValueError(f"assets and venues must be positive, got {n_assets} and {venues}")
    return tuple(book // venues for book in range(n_assets * venues))


def mix(factor: list[list[float]], shocks: list[float]) -> list[float]:
    """``factor @ shocks`` for a lower-triangular factor, in plain Python (a few assets)."""
    return [sum(row[j] * shocks[j] for j in range(i + 1)) for i, row in enumerate(factor)]
