"""A market played live, a chunk at a time, with interventions at the step it has reached.

The one live market of the project: the app's Scenarios page and ``dashboard.html`` (through
Pyodide, hence numpy + stdlib only) both keep a ``LiveMarket`` per session and call
``advance()`` when they play on. Interventions are idempotent - a click that the browser replays
or merges with a timer tick pulls the makers once, at the step recorded the first time - and
each is logged as an event for the charts (``marl_market.plots.add_events`` draws them).

A chunk costs the same late in a long run as early: each one reads only its own steps from the
market (``Market.recorded_steps``), and the live market keeps the spread, mid and volume of
every step (24 bytes a step, for the recovery measure and the facts) and the full step table
only for the last ``window`` steps the charts show. (The ``Market``'s own record of the run
grows with it; its memory per step is the market's business.)

Spread recovery is the scenarios' measure (``core.scenarios.spread_recovery_steps``): the
spread back within ``RECOVERY_RATIO`` x its pre-pull mean for ``RECOVERY_HOLD`` steps in a row,
counted from the makers' return (from the pull while they are away), exactly what
``marlsim scenario --kind flash_crash`` reports.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from marl_market.core.config import MarketConfig, Rules
from marl_market.core.market import Market
from marl_market.core.numbers import fmt, is_number, nanmean
from marl_market.core.scenarios import (
    RECOVERY_HOLD,
    RECOVERY_RATIO,
    pre_event_start,
    spread_recovery_steps,
)

CHUNK = 200  # steps one advance() plays (one timer tick or click of the pages)
CHART_WINDOW = 2_000  # latest steps whose full step table is kept for the charts
# Relative widths of the gauges' columns (``LiveMarket.gauges`` order): the spread's delta text
# says which way is good and needs the room.
GAUGE_WIDTHS = (0.8, 2.0, 1.1, 1.0, 1.3)
SERIES = ("spread", "mid", "volume")  # kept for every step (asset 0)


@dataclass(frozen=True)
class Gauge:
    """What one ``st.metric`` shows; ``kwargs()`` are its arguments (core has no streamlit)."""

    label: str
    value: str
    delta: str | None = None
    delta_color: str = "normal"
    help: str | None = None

    def kwargs(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class LiveMarket:
    """One market played live, its interventions and when they happened.

    ``key`` identifies the settings it was started with (the pages start a new run when it
    changes). ``return_after``: steps after the pull at which the makers come back (None: only
    on ``bring_back()``); it may be changed while the run goes on.
    """

    key: tuple
    market: Market
    warmup: int
    chunk: int = CHUNK
    return_after: int | None = None
    window: int = CHART_WINDOW
    pulled_at: int | None = None
    returned_at: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)
    warmup_seconds: float = 0.0
    last_chunk_seconds: float = 0.0
    _series: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _recent: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _recovery: tuple[int, int | None, int] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls, key: tuple, config: MarketConfig, seed: int, warmup: int, length: int, **options
    ) -> LiveMarket:
        """A live market of ``config`` that runs ``length`` steps in all, the first ``warmup``
        of them played at once."""
        if not 0 < warmup < length:
            raise ValueError(
                f"the warm-up ({warmup:,} steps) must be shorter than the run ({length:,})"
            )
        market = Market(config.replace(steps=length), seed)
        live = cls(key=key, market=market, warmup=warmup, **options)
        live._series = {name: np.full(length, np.nan) for name in SERIES}
        live.warmup_seconds = live._play(warmup)
        return live

    # ------------------------------------------------------------------ playing
    @property
    def t(self) -> int:
        """Steps played so far."""
        return self.market.t

    @property
    def length(self) -> int:
        """Steps the run plays in all (its configured length)."""
        return self.market.config.steps

    @property
    def full(self) -> bool:
        """True once every configured step has been played."""
        return self.t >= self.length

    @property
    def return_due(self) -> int | None:
        """The step the makers are due back at, while they are away and a return is set."""
        if self.pulled_at is None or self.returned_at is not None or not self.return_after:
            return None
        return self.pulled_at + self.return_after

    def advance(self, steps: int | None = None) -> int:
        """Play the next chunk (or ``steps``), up to the run's end; return the steps played."""
        before = self.t
        self.last_chunk_seconds = self._play(self.chunk if steps is None else steps)
        return self.t - before

    def _play(self, n: int) -> float:
        started = time.perf_counter()
        target = min(self.t + n, self.length)
        due = self.return_due
        if due is not None and due < target:
            # The makers come back at the start of step ``due``, even inside a chunk (or now,
            # if the setting was shortened past the step the run has reached).
            self._advance_to(max(due, self.t))
            self.bring_back()
        self._advance_to(target)
        return time.perf_counter() - started

    def _advance_to(self, until: int) -> None:
        since = self.t
        self.market.advance(until)
        if self.t == since:
            return
        rows = self.market.recorded_steps(since)
        first = rows["asset"] == 0
        for name in SERIES:
            self._series[name][since : self.t] = rows[name][first]
        oldest = self.t - self.window
        if self._recent:
            rows = {name: np.concatenate([self._recent[name], rows[name]]) for name in rows}
        keep = rows["step"] >= oldest
        self._recent = {name: column[keep] for name, column in rows.items()}

    # ------------------------------------------------------------------ what was played
    def series(self, name: str) -> np.ndarray:
        """``name`` (one of ``SERIES``) of asset 0 for every step played so far (read-only)."""
        view = self._series[name][: self.t]
        view.flags.writeable = False
        return view

    def recent_steps(self) -> dict[str, np.ndarray]:
        """The step table (``RunResult.steps`` columns) of the last ``window`` steps."""
        return dict(self._recent)

    def recent_events(self) -> list[tuple[int, str]]:
        """The events inside the charts' window (older ones would stretch the x axis)."""
        oldest = self.t - self.window
        return [(step, text) for step, text in self.events if step >= oldest]

    # ------------------------------------------------------------------ interventions
    def pull(self) -> bool:
        """Every market maker leaves now. Only the first call does anything (returns True)."""
        if self.pulled_at is not None:
            return False
        self.market.pull_market_makers()
        self.pulled_at = self.t
        self.events.append((self.pulled_at, "makers pulled"))
        return True

    def bring_back(self) -> bool:
        """The makers return now (once, and only after a pull); returns True if they did."""
        if self.pulled_at is None or self.returned_at is not None:
            return False
        self.market.return_market_makers()
        self.returned_at = self.t
        self.events.append((self.returned_at, "makers back"))
        return True

    def apply_rules(self, short_ban: bool, tobin_tax_bp: float) -> bool:
        """Switch the short-selling ban and the Tobin tax from this step on, if they changed."""
        old = self.market.config.rules
        new = dataclasses.replace(old, short_ban=bool(short_ban), tobin_tax=tobin_tax_bp * 1e-4)
        if new == old:
            return False
        self.market.set_rules(new)
        if old.short_ban != new.short_ban:
            self.events.append((self.t, "short ban " + ("on" if new.short_ban else "off")))
        if old.tobin_tax != new.tobin_tax:
            self.events.append((self.t, f"Tobin tax {tobin_tax_bp:g} bp"))
        return True

    @property
    def rules(self) -> Rules:
        return self.market.config.rules

    # ------------------------------------------------------------------ measurements
    def spread_now(self) -> float:
        """Mean spread (ticks) over the last chunk played."""
        return nanmean(self.series("spread")[-self.chunk :])

    def spread_before(self) -> float:
        """The yardstick: the pre-pull mean spread of the recovery measure, or, while the makers
        are still there, the same mean over the run before the last chunk."""
        end = self.pulled_at if self.pulled_at is not None else max(1, self.t - self.chunk)
        return nanmean(self.series("spread")[pre_event_start(end) : end])

    def spread_change(self) -> float | None:
        """Relative change of ``spread_now`` against ``spread_before`` (+3.0 = four times)."""
        now, before = self.spread_now(), self.spread_before()
        if not (is_number(now) and is_number(before)) or before <= 0:
            return None
        return now / before - 1.0

    @property
    def recovery_from(self) -> int | None:
        """The step recovery is counted from: the makers' return, else the pull (as a
        ``flash_crash`` scenario's ``recovery_from``)."""
        return self.returned_at if self.returned_at is not None else self.pulled_at

    def recovery_steps(self) -> int | None:
        """Steps from ``recovery_from`` until the spread has stayed within 1.5x its pre-pull
        mean for 50 steps in a row; None until that has happened."""
        start = self.recovery_from
        if start is None:
            return None
        if self._recovery is not None and self._recovery[0] == start:
            _, found, checked = self._recovery
            if found is not None or checked == self.t:
                return found
        else:
            checked = 0
        # Once found, the first recovery never changes; until then only new steps are scanned.
        found = spread_recovery_steps(self.series("spread"), self.pulled_at, start, checked)
        self._recovery = (start, found, self.t)
        return found

    def gauges(self) -> list[Gauge]:
        """Step, spread (against its yardstick), the yardstick, depth and recovery."""
        pulled = self.pulled_at is not None
        versus = "vs pre-pull" if pulled else "vs run so far"
        change = self.spread_change()
        recent = self._recent
        first = recent["asset"] == 0
        depth = (recent["bid_depth"][first] + recent["ask_depth"][first])[-self.chunk :]
        recovery = self.recovery_steps()
        if not pulled:
            recovered = "-"
        elif recovery is None:
            recovered = "not yet"
        else:
            recovered = f"after {recovery:,} steps"
        since = "the makers' return" if self.returned_at is not None else "the pull"
        return [
            Gauge("Step", f"{self.t:,}", help=f"of {self.length:,} in the run"),
            Gauge(
                "Spread (ticks)",
                fmt(self.spread_now(), "{:.1f}"),
                # The sign leads, so the arrow follows the change; lower spreads are better,
                # hence "inverse": a fall is green, a rise red.
                delta=None if change is None else f"{change:+.0%} {versus} (lower is better)",
                delta_color="inverse",
                help=f"Mean best ask - best bid over the last {self.chunk} steps.",
            ),
            Gauge(
                "Pre-pull spread (ticks)" if pulled else "Spread so far (ticks)",
                fmt(self.spread_before(), "{:.1f}"),
                help=f"Mean spread from step {pre_event_start(self.pulled_at):,} to the pull."
                if pulled
                else "Mean spread of the run before the last chunk.",
            ),
            Gauge("Depth near the mid", fmt(nanmean(depth), "{:.0f}")),
            Gauge(
                "Spread recovery",
                recovered,
                help=f"Steps from {since} until the spread stays within {RECOVERY_RATIO:g}x "
                f"its pre-pull mean for {RECOVERY_HOLD} steps in a row (the measure "
                "`marlsim scenario` reports).",
            ),
        ]

    def status(self) -> str:
        """One line on the interventions so far (empty before the pull)."""
        parts = []
        if self.pulled_at is not None:
            parts.append(f"Makers pulled at step **{self.pulled_at:,}**")
        if self.returned_at is not None:
            parts.append(f"back at step **{self.returned_at:,}**")
        elif self.return_due is not None:
            parts.append(f"returning at step {self.return_due:,}")
        elif self.pulled_at is not None:
            parts.append('away until you click "Bring makers back"')
        return "; ".join(parts)
