"""Stylised-fact analysis that needs more than numpy: GARCH fits and the S&P 500 reference.

The numpy-only facts live in ``marl_market.core.facts`` (they also run in the browser); this
module adds a GARCH(1,1) persistence estimate (``arch``) and the same facts computed on S&P 500
daily log returns, 1999-2018, from the data set shipped with ``arch``.
"""

from __future__ import annotations

import copy
import math
import warnings
from functools import lru_cache

import numpy as np
from arch import arch_model
from arch.utility.exceptions import ConvergenceWarning, StartingValueWarning
from threadpoolctl import threadpool_limits

from marl_market.core.facts import StylisedFacts, compute_facts, facts_from_returns, log_returns
from marl_market.core.numbers import fmt

#: Returns are rescaled to this standard deviation before fitting: arch's optimiser is tuned
#: for data with a variance between about 1 and 1000 (it warns outside 0.1 - 10000).
GARCH_TARGET_STD = 3.0
#: Fewer returns than this are not worth a GARCH(1,1) fit (4 parameters).
GARCH_MIN_RETURNS = 100


def garch_persistence(returns: np.ndarray) -> float | None:
    """alpha[1] + beta[1] of a GARCH(1,1) (constant mean, normal errors) fitted to ``returns``.

    The series is rescaled to a standard deviation of ``GARCH_TARGET_STD`` first (persistence
    does not depend on the scale). Returns None when the series is degenerate (fewer than
    ``GARCH_MIN_RETURNS`` values, non-finite values, or zero variance), when the optimiser
    reports failure to converge, or when the fit breaks down numerically. arch's convergence
    warnings are silenced (non-convergence becomes None); other exceptions propagate.
    """
    r = np.asarray(returns, dtype=np.float64).ravel()
    if r.size < GARCH_MIN_RETURNS or not np.isfinite(r).all():
        return None
    sd = float(np.std(r))
    if not sd > 0.0 or not math.isfinite(sd):
        return None
    scaled = r * (GARCH_TARGET_STD / sd)
    model = arch_model(scaled, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    try:
        # One BLAS thread: the optimiser's linear algebra rounds differently with more threads,
        # so the fit (measured: 0.4229199 against 0.4229210) would depend on the machine's core
        # count, and a Ray worker (one thread) would disagree with a local process.
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", StartingValueWarning)
            res = model.fit(disp="off")
    except (ValueError, np.linalg.LinAlgError, ArithmeticError):
        return None  # numerical breakdown inside the optimiser or the likelihood
    if res.convergence_flag != 0:
        return None
    persistence = float(res.params["alpha[1]"] + res.params["beta[1]"])
    return persistence if math.isfinite(persistence) else None


def facts_with_garch(
    mid: np.ndarray,
    spread: np.ndarray | None,
    volume: np.ndarray | None,
    return_interval: int,
    max_lag: int = 50,
) -> StylisedFacts:
    """``compute_facts`` with ``garch_persistence`` filled in (None if the fit fails)."""
    facts = compute_facts(mid, spread, volume, return_interval, max_lag=max_lag)
    facts.garch_persistence = garch_persistence(log_returns(mid, return_interval))
    return facts


@lru_cache(maxsize=8)
def sp500_returns() -> np.ndarray:
    """S&P 500 daily log returns, 1999-2018 (Adj Close, the data set shipped with ``arch``)."""
    from arch.data import sp500

    prices = sp500.load()["Adj Close"].to_numpy(dtype=np.float64)
    return np.diff(np.log(prices))


def _sp500_reference(max_lag: int) -> StylisedFacts:
    r = sp500_returns()
    facts = facts_from_returns(r, return_interval=1, max_lag=max_lag)
    facts.garch_persistence = garch_persistence(r)
    return facts


def sp500_reference(max_lag: int = 50) -> StylisedFacts:
    """The stylised facts of S&P 500 daily log returns (Adj Close, 1999-2018, from ``arch``).

    ``return_interval = 1`` means one trading day. Spread and volume do not apply (NaN). The
    computation is cached; each call returns a fresh copy, so callers may modify it.
    """
    return copy.deepcopy(_sp500_reference(int(max_lag)))


def _lag(values: list[float], lag: int) -> float | None:
    return values[lag - 1] if 1 <= lag <= len(values) else None


def facts_table(sim: StylisedFacts, ref: StylisedFacts) -> list[tuple[str, str, str]]:
    """Rows ``(fact, simulated, S&P 500)`` formatted for display; missing values are "n/a"."""
    rows: list[tuple[str, float | None, float | None, int]] = [
        ("Excess kurtosis", sim.excess_kurtosis, ref.excess_kurtosis, 2),
    ]
    for lag in (1, 5, 10, 50):
        rows.append((f"ACF |r| lag {lag}", _lag(sim.acf_abs, lag), _lag(ref.acf_abs, lag), 3))
    rows += [
        ("Raw ACF lag 1", _lag(sim.acf_raw, 1), _lag(ref.acf_raw, 1), 3),
        ("Hill tail index", sim.hill_tail_index, ref.hill_tail_index, 2),
        ("GARCH alpha+beta", sim.garch_persistence, ref.garch_persistence, 3),
        ("Mean spread (ticks)", sim.mean_spread_ticks, ref.mean_spread_ticks, 2),
        ("Mean volume (per step)", sim.mean_volume, ref.mean_volume, 1),
    ]
    return [
        (name, fmt(s, f"{{:.{d}f}}", "n/a"), fmt(r, f"{{:.{d}f}}", "n/a")) for name, s, r, d in rows
    ]
