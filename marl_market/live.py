"""A live market: played a chunk at a time, with interventions at the step it has reached.

The Scenarios page keeps one ``LiveRun`` per session and advances it on every rerun, so the
crash after "Pull market makers" shows on the very rerun the click causes (no timers needed).
Interventions are idempotent - a click that the browser replays or merges with a timer tick
pulls the makers once, at the step recorded the first time - and every one is logged as an
event, so the charts can mark it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from marl_market.core.config import MarketConfig, Rules
from marl_market.core.market import Market
from marl_market.core.results import RunResult
from marl_market.core.scenarios import RECOVERY_HOLD, RECOVERY_RATIO, first_sustained

CHUNK = 200  # steps each rerun (or timer tick) plays
HEADROOM = 20_000  # steps the run may go on after its warm-up (100 chunks)
PRE_PULL_WINDOW = 500  # steps before the pull whose mean spread is the yardstick


def nanmean(x: np.ndarray) -> float:
    """Mean ignoring NaN (a one-sided book has no spread); NaN if nothing is left."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


@dataclass
class LiveRun:
    """One market played live, its interventions and when they happened.

    ``key`` identifies the settings it was started with (a change of settings starts a new run).
    ``return_after``: steps after the pull at which the makers come back (None: only on request).
    """

    key: tuple
    market: Market
    warmup: int
    chunk: int = CHUNK
    return_after: int | None = 500
    pulled_at: int | None = None
    returned_at: int | None = None
    events: list[tuple[int, str]] = field(default_factory=list)
    last_chunk_seconds: float = 0.0
    warmup_seconds: float = 0.0
    _result: RunResult | None = None
    _result_t: int = -1

    @classmethod
    def start(
        cls,
        key: tuple,
        config: MarketConfig,
        seed: int,
        warmup: int,
        headroom: int = HEADROOM,
        **options,
    ) -> LiveRun:
        """A new live market of ``config`` with ``warmup`` steps already played."""
        market = Market(config.replace(steps=warmup + headroom), seed)
        live = cls(key=key, market=market, warmup=warmup, **options)
        live.warmup_seconds = live._play(warmup)
        return live

    # ------------------------------------------------------------------ playing
    @property
    def t(self) -> int:
        """Steps played so far."""
        return self.market.t

    @property
    def full(self) -> bool:
        """True when every step the run has room for has been played."""
        return self.market.t >= self.market.config.steps

    def advance(self, steps: int | None = None) -> int:
        """Play the next chunk (or ``steps``); return how many steps were played."""
        before = self.market.t
        self.last_chunk_seconds = self._play(self.chunk if steps is None else steps)
        return self.market.t - before

    def _play(self, n: int) -> float:
        started = time.perf_counter()
        self.market.advance(self.market.t + n)  # stops at the end of the run
        return time.perf_counter() - started

    def result(self) -> RunResult:
        """The record of the steps played so far (rebuilt only when the run has moved on)."""
        if self._result is None or self._result_t != self.market.t:
            self._result = self.market.result()
            self._result_t = self.market.t
        return self._result

    # ------------------------------------------------------------------ interventions
    def pull(self) -> bool:
        """Every market maker leaves now. Only the first call does anything (returns True)."""
        if self.pulled_at is not None:
            return False
        self.market.pull_market_makers()
        self.pulled_at = self.market.t
        self.events.append((self.pulled_at, "makers pulled"))
        if self.return_after:
            # Scheduled on the market itself, so they come back at that exact step even if it
            # falls inside a chunk.
            self.market.at(self.pulled_at + self.return_after, self._scheduled_return)
        return True

    def bring_back(self) -> bool:
        """The makers return now (once, and only after a pull); returns True if they did."""
        if self.pulled_at is None or self.returned_at is not None:
            return False
        self.market.return_market_makers()
        self.returned_at = self.market.t
        self.events.append((self.returned_at, "makers back"))
        return True

    def _scheduled_return(self, market: Market) -> None:
        self.bring_back()

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
        spread = self.result().asset_series("spread")
        return nanmean(spread[-self.chunk :])

    def spread_before(self) -> float:
        """The yardstick: mean spread over the ``PRE_PULL_WINDOW`` steps before the pull, or
        over everything before the last chunk while the makers are still there."""
        spread = self.result().asset_series("spread")
        if self.pulled_at is not None:
            return nanmean(spread[max(0, self.pulled_at - PRE_PULL_WINDOW) : self.pulled_at])
        return nanmean(spread[: -self.chunk]) if len(spread) > self.chunk else nanmean(spread)

    def recovery_steps(self) -> int | None:
        """Steps from the makers' return until the spread stays within 1.5x its pre-pull mean
        for 50 steps (the scenarios' definition); None before that has happened."""
        if self.returned_at is None:
            return None
        spread = self.result().asset_series("spread")
        within = np.nan_to_num(spread, nan=np.inf) <= RECOVERY_RATIO * self.spread_before()
        return first_sustained(within, self.returned_at, RECOVERY_HOLD)
