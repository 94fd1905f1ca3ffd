"""Stylised facts of a price series, plus small statistics helpers for multi-seed comparisons.

numpy + stdlib only: this module runs unchanged in Pyodide in the browser. Anything that needs
scipy, pandas or ``arch`` (GARCH fits, the S&P 500 reference) lives in ``marl_market.lab.analysis``.

Conventions
-----------
- Prices are mids in ticks (positive floats). Returns are log returns of the mid sampled every
  ``return_interval`` steps.
- Moments are population moments (divide by n), like ``scipy.stats.kurtosis(fisher=True,
  bias=True)``; autocorrelations use the standard biased estimator around the sample mean, like
  ``statsmodels.tsa.stattools.acf``.
- Degenerate inputs (a constant return series) give NaN rather than an exception, so that a
  simulation whose price never moves can still be reported; ``StylisedFacts.as_dict`` turns NaN
  into ``None`` so the result is strict JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from marl_market.core.numbers import finite_or_none, nanmean

#: Returns needed beyond ``max_lag`` before ``compute_facts`` uses all requested lags.
LAG_MARGIN = 10
#: Fewest returns ``compute_facts`` accepts.
MIN_RETURNS = 20


# ---------------------------------------------------------------------------------- returns
def _as_1d_float(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def log_returns(mid: np.ndarray, interval: int) -> np.ndarray:
    """Log returns of ``mid`` sampled every ``interval`` steps: ``diff(log(mid[::interval]))``.

    ``mid`` must be one-dimensional, finite and strictly positive (prices in ticks).
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)):
        raise TypeError(f"interval must be an integer, got {type(interval).__name__}")
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    mid = _as_1d_float(mid, "mid")
    bad = ~np.isfinite(mid) | (mid <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"mid must be finite and strictly positive to take log returns; "
            f"{int(bad.sum())} bad value(s), first at index {i}: {mid[i]!r}"
        )
    return np.diff(np.log(mid[::interval]))


# ---------------------------------------------------------------------------------- moments
def excess_kurtosis(r: np.ndarray) -> float:
    """Population (Fisher) excess kurtosis ``m4 / m2**2 - 3``: 0 for a Gaussian.

    NaN for a constant series. Raises ValueError for an empty series.
    """
    r = _as_1d_float(r, "r")
    if r.size == 0:
        raise ValueError("excess_kurtosis needs at least one value")
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0.0:
        return float("nan")
    m4 = float(np.mean(d**4))
    return m4 / (m2 * m2) - 3.0


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags ``1..max_lag`` (array of length ``max_lag``).

    Biased estimator around the sample mean (as in statsmodels' ``acf``):
    ``rho_k = sum_{t<n-k} (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)**2``. Needs
    ``1 <= max_lag < len(x)``. All NaN for a constant series.
    """
    x = _as_1d_float(x, "x")
    n = x.size
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)):
        raise TypeError(f"max_lag must be an integer, got {type(max_lag).__name__}")
    if not 1 <= max_lag < n:
        raise ValueError(f"max_lag must be in [1, len(x) - 1] = [1, {n - 1}], got {max_lag}")
    d = x - x.mean()
    # Elementwise products and sums rather than np.dot: BLAS dot products can be slow for
    # many medium-sized calls (thread start-up), and Pyodide has no threaded BLAS anyway.
    c0 = float(np.sum(d * d))
    if c0 == 0.0:
        return np.full(max_lag, np.nan)
    out = np.empty(max_lag)
    for k in range(1, max_lag + 1):
        out[k - 1] = np.sum(d[:-k] * d[k:])
    return out / c0


def acf_confidence_band(n: int) -> float:
    """Half-width of the approximate 95% band for a white-noise ACF: ``1.96 / sqrt(n)``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return 1.96 / math.sqrt(n)


def hill_tail_index(r: np.ndarray, tail_fraction: float = 0.05) -> float:
    """Hill estimate of the tail index alpha of ``|r|`` (``P(|r| > x) ~ x**-alpha``).

    Choice of k: zero returns carry no tail information (a tick-level mid often does not move)
    and are dropped first; of the ``m`` remaining values, the ``k = max(1, floor(tail_fraction *
    m))`` largest are the tail. With order statistics ``X(1) >= X(2) >= ...``::

        alpha = 1 / ( (1/k) * sum_{i<=k} log(X(i) / X(k+1)) )

    The default 5% is a common compromise between variance (small k) and bias from the body of
    the distribution (large k). Raises ValueError if fewer than two non-zero returns remain;
    NaN if the k + 1 largest values are all equal (a discrete, tick-sized tail).
    """
    if not 0.0 < tail_fraction < 1.0:
        raise ValueError(f"tail_fraction must be in (0, 1), got {tail_fraction}")
    a = np.abs(_as_1d_float(r, "r"))
    if not np.isfinite(a).all():
        raise ValueError("r must be finite")
    a = a[a > 0]
    m = a.size
    if m < 2:
        raise ValueError(f"hill_tail_index needs at least 2 non-zero returns, got {m}")
    k = max(1, int(math.floor(tail_fraction * m)))
    k = min(k, m - 1)
    top = np.sort(a)[::-1][: k + 1]
    mean_log = float(np.mean(np.log(top[:k] / top[k])))
    if mean_log <= 0.0:
        return float("nan")
    return 1.0 / mean_log


# ---------------------------------------------------------------------------------- the facts
@dataclass
class StylisedFacts:
    """The stylised facts of one return series (one asset of one run, or a reference).

    ``acf_abs[i]`` / ``acf_raw[i]`` are the autocorrelations of |r| / r at lag ``i + 1`` (lags
    are in units of ``return_interval`` steps). ``mean_spread_ticks`` and ``mean_volume`` are NaN
    where they do not apply (e.g. the S&P 500 reference). ``garch_persistence`` (alpha + beta of
    a GARCH(1,1) fit) is filled in by ``marl_market.lab.analysis``; it stays None in the core.
    """

    return_interval: int
    n_returns: int
    excess_kurtosis: float
    acf_abs: list[float] = field(default_factory=list)
    acf_raw: list[float] = field(default_factory=list)
    hill_tail_index: float = float("nan")
    mean_spread_ticks: float = float("nan")
    mean_volume: float = float("nan")
    return_std: float = float("nan")
    garch_persistence: float | None = None

    @property
    def max_lag(self) -> int:
        """Number of ACF lags stored."""
        return len(self.acf_abs)

    def as_dict(self) -> dict:
        """Plain-Python dict of the facts; non-finite floats become None (strict JSON)."""
        return finite_or_none(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> StylisedFacts:
        """Inverse of ``as_dict``: None goes back to NaN (except ``garch_persistence``)."""

        def unclean(v: object) -> object:
            if v is None:
                return float("nan")
            if isinstance(v, list):
                return [unclean(u) for u in v]
            return v

        kwargs = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            kwargs[f.name] = v if f.name == "garch_persistence" else unclean(v)
        return cls(**kwargs)


def _float_list(a: np.ndarray) -> list[float]:
    return [float(v) for v in a]


def facts_from_returns(
    r: np.ndarray,
    return_interval: int,
    max_lag: int = 50,
    mean_spread_ticks: float = float("nan"),
    mean_volume: float = float("nan"),
) -> StylisedFacts:
    """The stylised facts of a log-return series ``r`` (see ``compute_facts``)."""
    r = _as_1d_float(r, "r")
    if not np.isfinite(r).all():
        raise ValueError("returns must be finite")
    n = r.size
    if n < MIN_RETURNS:
        raise ValueError(
            f"too few returns for stylised facts: got {n}, need at least {MIN_RETURNS} "
            f"(use a longer run or a shorter return_interval)"
        )
    if max_lag < 1:
        raise ValueError(f"max_lag must be >= 1, got {max_lag}")
    lags = min(max_lag, n - LAG_MARGIN)
    try:
        hill = hill_tail_index(r)
    except ValueError:  # fewer than two non-zero returns: the price (almost) never moved
        hill = float("nan")
    return StylisedFacts(
        return_interval=int(return_interval),
        n_returns=int(n),
        excess_kurtosis=excess_kurtosis(r),
        acf_abs=_float_list(acf(np.abs(r), lags)),
        acf_raw=_float_list(acf(r, lags)),
        hill_tail_index=float(hill),
        mean_spread_ticks=float(mean_spread_ticks),
        mean_volume=float(mean_volume),
        return_std=float(np.std(r)),
        garch_persistence=None,
    )


def _nanmean(x: np.ndarray | None) -> float:
    """Mean ignoring NaN; NaN (without a RuntimeWarning) if nothing is left."""
    if x is None:
        return float("nan")
    return nanmean(_as_1d_float(x, "array"))


def compute_facts(
    mid: np.ndarray,
    spread: np.ndarray | None,
    volume: np.ndarray | None,
    return_interval: int,
    max_lag: int = 50,
) -> StylisedFacts:
    """Stylised facts of one asset's per-step ``mid``, ``spread`` and ``volume`` series.

    Returns are log returns of ``mid`` every ``return_interval`` steps. ACFs cover lags
    ``1..max_lag``; with fewer than ``max_lag + 10`` returns the number of lags is reduced to
    ``n_returns - 10`` instead of failing. Raises ValueError with fewer than 20 returns.
    ``mean_spread_ticks`` ignores NaN spreads (steps with an empty side); ``mean_volume`` is the
    mean volume per step. ``spread`` / ``volume`` may be None (the fact is then NaN).
    """
    r = log_returns(mid, return_interval)
    return facts_from_returns(
        r,
        return_interval,
        max_lag=max_lag,
        mean_spread_ticks=_nanmean(spread),
        mean_volume=_nanmean(volume),
    )


# ---------------------------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    eps = 1e-16
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    max_iter = 10_000 + int(20 * math.sqrt(max(a, b)))
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b})")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)``; ``y = 1 - x`` is passed for accuracy."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def student_t_sf(t: float, df: float) -> float:
    """Survival function ``P(T > t)`` of Student's t with ``df > 0`` degrees of freedom."""
    if not df > 0:
        raise ValueError(f"df must be positive, got {df}")
    if t == 0.0:
        return 0.5
    t2 = t * t
    x = df / (df + t2)
    y = t2 / (df + t2)
    tail = 0.5 * _betainc(0.5 * df, 0.5, x, y)  # P(T > |t|)
    return tail if t > 0 else 1.0 - tail


def _student_t_pdf(t: float, df: float) -> float:
    log_pdf = (
        math.lgamma(0.5 * (df + 1.0))
        - math.lgamma(0.5 * df)
        - 0.5 * math.log(df * math.pi)
        - 0.5 * (df + 1.0) * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def student_t_ppf(p: float, df: float) -> float:
    """Quantile function of Student's t: the ``t`` with ``P(T <= t) = p``.

    Solves ``P(T > t) = 1 - p`` on ``t >= 0`` (by symmetry for ``p < 0.5``) with Newton steps
    safeguarded by bisection; the tail probability comes from the regularised incomplete beta
    function evaluated with a continued fraction. Agrees with ``scipy.stats.t.ppf`` to ~1e-12
    relative.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"df must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    q = 1.0 - p  # target upper-tail probability, in (0, 0.5)
    # Bracket the root: sf is decreasing in t.
    lo, hi = 0.0, 1.0
    while student_t_sf(hi, df) > q:
        lo, hi = hi, 2.0 * hi
        if hi > 1e300:
            raise ArithmeticError("Student t quantile is out of floating-point range")
    t = 0.5 * (lo + hi)
    for _ in range(200):
        f = student_t_sf(t, df) - q
        if f > 0:
            lo = t
        else:
            hi = t
        pdf = _student_t_pdf(t, df)
        step = f / pdf if pdf > 0 else math.inf
        t_new = t + step  # d sf / dt = -pdf, so the Newton step is t + f / pdf
        if not lo < t_new < hi:
            t_new = 0.5 * (lo + hi)
        if abs(t_new - t) <= 1e-15 * max(abs(t_new), 1e-300) or hi - lo <= 1e-15 * hi:
            return t_new
        t = t_new
    return t


# ---------------------------------------------------------------------------------- over seeds
def _finite_samples(samples: object) -> np.ndarray:
    a = np.asarray(samples, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("need at least one sample")
    if not np.isfinite(a).all():
        raise ValueError("samples must be finite (drop missing seeds before summarising)")
    return a


def mean_ci(samples: object, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``samples`` (e.g. one fact over seeds) with a Student-t confidence interval.

    Returns ``(mean, low, high)`` where the half-width is ``t_{(1+c)/2, n-1} * s / sqrt(n)``
    with ``s`` the sample standard deviation (ddof=1). For a single sample the interval is
    undefined: ``(mean, nan, nan)``. Raises ValueError for no samples or non-finite ones.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a = _finite_samples(samples)
    n = a.size
    mean = float(a.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    sd = float(a.std(ddof=1))
    half = student_t_ppf(0.5 * (1.0 + confidence), n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def sign_fraction(samples: object, sign: int) -> float:
    """Share of ``samples`` with the given strict sign: ``sign > 0`` counts ``x > 0``,
    ``sign < 0`` counts ``x < 0`` (zeros count for neither)."""
    if sign == 0 or not math.isfinite(sign):
        raise ValueError(f"sign must be positive or negative, got {sign}")
    a = _finite_samples(samples)
    hits = a > 0 if sign > 0 else a < 0
    return float(np.mean(hits))
