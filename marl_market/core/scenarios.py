"""Scenarios: an intervention in the market, and how its effect is measured.

A scenario is a schedule of interventions on an otherwise default market (pull the makers,
switch on a rule, change the regime, jump the fair value) plus a measurement of what happened.
Each scenario run is paired with a *baseline* run of the same config and seed: every random
stream is spawned from the same seed and draws the same numbers whatever the market does, so
until the intervention the two runs are the same step for step, and afterwards they still share
every random draw the intervention does not itself change (the fundamental path, every trader's
candidate actions and their numbers): the difference comes from the intervention, not from luck
(common random numbers, which is what makes the paired intervals narrow).

Every intervention starts at ``start_at`` (default: the middle of the run). The measurement
compares the *event window* ``[start_at, start_at + window)`` with the *pre-event* history of
the same run (every step before ``start_at`` after a short warm-up: a shorter yardstick is
easily inflated by one volatile spell), and with the same event window in the baseline.

numpy + stdlib only: the browser build runs these same scenarios.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from marl_market.core.config import MarketConfig
from marl_market.core.facts import mean_ci, sign_fraction
from marl_market.core.market import Market
from marl_market.core.numbers import nanmean
from marl_market.core.regimes import stress_regime
from marl_market.core.results import RunResult

SCENARIO_KINDS = ("flash_crash", "short_ban", "tobin_tax", "stress", "drought", "shock")

METRICS = (
    "spread_blowup",  # mean spread in the event window / before the event (same run)
    "depth_ratio",  # mean depth within 5 ticks of the mid, event window / before the event
    "max_drawdown_pct",  # largest peak-to-trough fall of the mid in the event window, %
    "recovery_steps",  # steps until the spread stays within 1.5x its pre mean (see below)
    "price_recovery_steps",  # steps until the mid stays within the band of fair value
    "volume_change_pct",  # event-window volume against the baseline's, %
    "tracking_error",  # RMS of mid - fair value in the event window, ticks
    "mean_spread",  # mean spread in the event window, ticks
)

# The sign each intervention's effect on a metric is documented to have (scenario - baseline).
EXPECTED_SIGNS: dict[str, dict[str, int]] = {
    "flash_crash": {"spread_blowup": 1, "depth_ratio": -1},
    "short_ban": {"volume_change_pct": -1, "tracking_error": 1},
    "tobin_tax": {"volume_change_pct": -1, "mean_spread": 1},
    "stress": {"spread_blowup": 1, "tracking_error": 1},
    # Volume is not: a thinner deep book makes prices jumpier and traders more active.
    "drought": {"depth_ratio": -1, "tracking_error": 1},
    "shock": {"max_drawdown_pct": 1, "tracking_error": 1},
}

# Interventions that last to the end of the run: measured over all the steps after them.
PERMANENT = ("short_ban", "tobin_tax", "stress")

WARMUP_STEPS = 100  # steps skipped at the start of a run when taking pre-event means
RECOVERY_RATIO = 1.5  # the spread has recovered when it stays within 1.5x its pre-event mean ...
RECOVERY_HOLD = 50  # ... for this many consecutive steps
PRICE_BAND_MIN_TICKS = 5.0  # the price band is max(2 x pre-event RMS(mid - fair), this)


@dataclass(frozen=True)
class Scenario:
    """One intervention and its timing. ``None`` timings take defaults from the run length.

    - ``flash_crash``: every market maker leaves at ``start_at`` (the pull) and, if
      ``end_at`` is set, returns then.
    - ``short_ban``: from ``start_at`` no agent may sell more than it owns.
    - ``tobin_tax``: from ``start_at`` both sides of every trade pay ``tax_bp`` of its notional.
    - ``stress``: from ``start_at`` the fundamental is ``stress_factor`` x more volatile, noise
      orders are larger and placed ``stress_factor`` x further from the mid, and noise traders
      are 1.5x as active (spec's "stress regime").
    - ``drought``: noise traders' activity falls to ``drought_level`` from ``start_at`` to
      ``end_at`` (default: the end of the window).
    - ``shock``: the fair value jumps by ``shock_size`` (log) at ``start_at``.
    """

    kind: str
    start_at: int | None = None
    end_at: int | None = None
    window: int | None = None
    tax_bp: float = 10.0
    stress_factor: float = 3.0
    drought_level: float = 0.1
    shock_size: float = -0.03

    def resolved(self, steps: int) -> Scenario:
        """This scenario with its timings filled in and checked against a run of ``steps``."""
        if self.kind not in SCENARIO_KINDS:
            raise ValueError(f"unknown scenario {self.kind!r}; choose from {SCENARIO_KINDS}")
        start = steps // 2 if self.start_at is None else self.start_at
        if not 0 < start < steps:
            raise ValueError(
                f"the intervention step {start} must lie inside the run (1..{steps - 1})"
            )
        if self.window is not None:
            window = self.window
        elif self.kind in PERMANENT:  # a rule or regime that stays: measure to the end
            window = steps - start
        else:
            window = min(1_000, steps - start)
        if window <= 0:
            raise ValueError(f"the measurement window must be positive, got {window}")
        window = min(window, steps - start)
        end = self.end_at
        if self.kind == "drought" and end is None:
            end = start + window
        if end is not None and not start < end <= steps:
            raise ValueError(
                f"the end step {end} must come after the start ({start}) and within the run"
            )
        if self.tax_bp < 0:
            raise ValueError(f"the Tobin tax must not be negative, got {self.tax_bp} bp")
        if not 0.0 <= self.drought_level <= 1.0:
            raise ValueError(f"drought_level must be in [0, 1], got {self.drought_level}")
        if self.stress_factor < 1.0:
            raise ValueError(f"stress_factor must be >= 1, got {self.stress_factor}")
        return dataclasses.replace(self, start_at=start, end_at=end, window=window)

    def schedule(self, market: Market) -> None:
        """Register this (resolved) scenario's interventions on ``market``."""
        for step, action in self._actions():
            market.at(step, action)

    def _actions(self) -> list[tuple[int, Callable[[Market], None]]]:
        start, end = self.start_at, self.end_at
        if self.kind == "flash_crash":
            actions = [(start, Market.pull_market_makers)]
            if end is not None:
                actions.append((end, Market.return_market_makers))
            return actions
        if self.kind == "short_ban":
            return [
                (start, lambda m: m.set_rules(dataclasses.replace(m.config.rules, short_ban=True)))
            ]
        if self.kind == "tobin_tax":
            tax = self.tax_bp * 1e-4
            return [
                (start, lambda m: m.set_rules(dataclasses.replace(m.config.rules, tobin_tax=tax)))
            ]
        if self.kind == "stress":
            return [(start, lambda m: m.set_regime(*stress_regime(m.config, self.stress_factor)))]
        if self.kind == "drought":
            level = self.drought_level
            return [(start, lambda m: m.scale_noise(level)), (end, lambda m: m.scale_noise(1.0))]
        return [(start, lambda m: m.shock_fundamental(self.shock_size))]  # shock

    @property
    def recovery_from(self) -> int:
        """The step recovery is timed from: the end of the intervention, else its start."""
        return self.end_at if self.end_at is not None else self.start_at


def run_scenario(config: MarketConfig, scenario: Scenario, seed: int) -> RunResult:
    """Run ``config`` with ``scenario``'s interventions (the scenario must be resolved)."""
    market = Market(config, seed)
    scenario.schedule(market)
    return market.run()


def run_with_baseline(
    config: MarketConfig, scenarios: list[Scenario], seed: int
) -> tuple[RunResult, list[RunResult]]:
    """The baseline and every (resolved) scenario for one seed, sharing their common history.

    Until its intervention a scenario run is the baseline step for step, so the baseline is
    played once and each scenario forks off it at its ``start_at``: the same results as
    ``run_scenario``, for a fraction of the work.
    """
    market = Market(config, seed)
    runs: dict[int, RunResult] = {}
    for i in sorted(range(len(scenarios)), key=lambda i: scenarios[i].start_at):
        market.advance(scenarios[i].start_at)
        branch = market.fork()
        scenarios[i].schedule(branch)
        runs[i] = branch.run()
    baseline = market.run()
    return baseline, [runs[i] for i in range(len(scenarios))]


# ------------------------------------------------------------------------------ measurement
def _window_mean(x: np.ndarray, start: int, end: int) -> float:
    return nanmean(x[start:end])


def _ratio(a: float, b: float) -> float | None:
    if not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return None
    return a / b


def first_sustained(condition: np.ndarray, start: int, hold: int) -> int | None:
    """Steps from ``start`` until ``condition`` first holds for ``hold`` steps in a row."""
    run = 0
    for i in range(start, len(condition)):
        run = run + 1 if condition[i] else 0
        if run >= hold:
            return i - hold + 1 - start
    return None


def pre_event_start(start: int) -> int:
    """First step of the pre-event yardstick of an event at ``start`` (after the warm-up)."""
    return min(WARMUP_STEPS, start // 2)


def spread_recovery_steps(
    spread: np.ndarray, start: int, recovery_from: int, checked_until: int = 0
) -> int | None:
    """Steps from ``recovery_from`` until the spread stays within ``RECOVERY_RATIO`` x its
    pre-event mean (steps ``pre_event_start(start)`` to ``start``) for ``RECOVERY_HOLD`` steps
    in a row; None if that has not happened in ``spread``. NaN (a one-sided book) is outside.

    The one definition of spread recovery, for scenario runs and the live market alike. A
    caller that re-checks a growing series may pass ``checked_until``, the length it last
    checked without a recovery, so only the new steps are scanned.
    """
    pre_spread = _window_mean(spread, pre_event_start(start), start)
    first = max(recovery_from, checked_until - RECOVERY_HOLD + 1)
    within = np.nan_to_num(spread[first:], nan=np.inf) <= RECOVERY_RATIO * pre_spread
    found = first_sustained(within, 0, RECOVERY_HOLD)
    return None if found is None else found + first - recovery_from


def max_drawdown_pct(prices: np.ndarray) -> float:
    """Largest peak-to-trough fall of ``prices`` in percent of the peak (0 if it never fell)."""
    if len(prices) == 0:
        return 0.0
    peaks = np.maximum.accumulate(prices)
    return float(np.max((peaks - prices) / peaks) * 100.0)


def measure(result: RunResult, scenario: Scenario, baseline: RunResult | None = None) -> dict:
    """The scenario's metrics from its run (and the paired baseline, for volume change).

    ``scenario`` must be resolved for this run. Ratios whose denominator is empty or zero, and
    recoveries that never happen within the run, are None.
    """
    start, window = scenario.start_at, scenario.window
    end = start + window
    pre = pre_event_start(start)  # the pre-event yardstick runs from here to start
    # The flash crash window is the makers' absence, if they come back sooner.
    crash_end = (
        min(end, scenario.end_at) if scenario.kind == "flash_crash" and scenario.end_at else end
    )
    spread = result.asset_series("spread")
    depth = result.asset_series("bid_depth") + result.asset_series("ask_depth")
    mid = result.asset_series("mid")
    fair = result.asset_series("fair_value")
    volume = result.asset_series("volume")

    pre_spread = _window_mean(spread, pre, start)
    deviation = mid - fair
    pre_te = float(np.sqrt(np.mean(deviation[pre:start] ** 2)))
    band = max(2.0 * pre_te, PRICE_BAND_MIN_TICKS)
    within_band = np.abs(deviation) <= band
    metrics = {
        "spread_blowup": _ratio(_window_mean(spread, start, crash_end), pre_spread),
        "depth_ratio": _ratio(float(depth[start:crash_end].mean()), float(depth[pre:start].mean())),
        # Measured from the last pre-event mid, so a fall at the very first step counts.
        "max_drawdown_pct": max_drawdown_pct(mid[start - 1 : end]),
        "recovery_steps": spread_recovery_steps(spread, start, scenario.recovery_from),
        "price_recovery_steps": first_sustained(within_band, scenario.recovery_from, RECOVERY_HOLD),
        "volume_change_pct": None,
        "tracking_error": float(np.sqrt(np.mean(deviation[start:end] ** 2))),
        "mean_spread": _window_mean(spread, start, end),
    }
    if baseline is not None:
        base_volume = float(baseline.asset_series("volume")[start:end].sum())
        scenario_volume = float(volume[start:end].sum())
        change = _ratio(scenario_volume - base_volume, base_volume)
        metrics["volume_change_pct"] = None if change is None else 100.0 * change
    return metrics


def baseline_metrics(baseline: RunResult, scenario: Scenario) -> dict:
    """The same measurement on the baseline run, with the scenario's windows (no event)."""
    metrics = measure(baseline, scenario, baseline)
    metrics["volume_change_pct"] = 0.0
    return metrics


# ------------------------------------------------------------------------------ over seeds
def summarise(kind: str, pairs: list[tuple[dict, dict]], confidence: float = 0.95) -> dict:
    """Statistics over seeds of one scenario's metrics against its paired baselines.

    ``pairs`` holds ``(scenario_metrics, baseline_metrics)`` per seed. For each metric:
    ``mean`` (the scenario's mean), ``baseline_mean``, ``diff_mean`` (scenario - baseline) with
    its ``ci_low`` / ``ci_high`` (Student-t interval over seeds of the paired difference),
    ``sign_fraction`` (share of seeds whose difference has ``expected_sign``: the documented
    sign if there is one, else the sign of ``diff_mean``), and ``n`` (seeds with a value in both
    runs: a recovery that never happens has none).
    """
    summary = {}
    for metric in METRICS:
        both = [
            (s[metric], b[metric])
            for s, b in pairs
            if s.get(metric) is not None and b.get(metric) is not None
        ]
        documented = EXPECTED_SIGNS.get(kind, {}).get(metric)
        entry = {
            "mean": None,
            "baseline_mean": None,
            "diff_mean": None,
            "ci_low": None,
            "ci_high": None,
            "sign_fraction": None,
            "expected_sign": documented,
            "documented": documented is not None,
            "n": len(both),
            "n_missing": len(pairs) - len(both),
        }
        if both:
            values = np.array(both, dtype=float)
            diff = values[:, 0] - values[:, 1]
            mean_diff, low, high = mean_ci(diff, confidence)
            sign = documented if documented is not None else (1 if mean_diff >= 0 else -1)
            entry.update(
                mean=float(values[:, 0].mean()),
                baseline_mean=float(values[:, 1].mean()),
                diff_mean=mean_diff,
                ci_low=None if np.isnan(low) else low,
                ci_high=None if np.isnan(high) else high,
                sign_fraction=sign_fraction(diff, sign),
                expected_sign=sign,
            )
        summary[metric] = entry
    return summary
