"""Pair arbitrageurs: trade two correlated assets on the z-score of their log-price spread.

One decision covers both legs: the arbitrageur's turn is a multi-asset turn, a list of
``(asset, op)`` legs the market plays back to back (``Market._play_legs``), so nobody trades
between its two legs. Between spread trades it re-hedges: leg b is kept at minus leg a, so
a leg that filled only partly is topped up on the next turn.
"""

from __future__ import annotations

import math

import numpy as np

from marl_market.core.agents import ORDER, MarketView
from marl_market.core.config import ArbParams
from marl_market.core.draws import turn_key_streams


def arbitrage_pairs(n_members: int, n_assets: int) -> list[tuple[int, int]]:
    """Member i trades (i mod n, (i + 1) mod n): with 2 assets every member trades (0, 1)."""
    return [(i % n_assets, (i + 1) % n_assets) for i in range(n_members)]


def leg_order(asset: int, qty: int) -> tuple[int, tuple]:
    """A market order leg buying (qty > 0) or selling (qty < 0) ``|qty|`` shares of ``asset``."""
    return (asset, (ORDER, qty > 0, abs(qty), None, 0, False))


class SpreadTracker:
    """Exponentially weighted mean and variance of one pair's log-price spread."""

    def __init__(self, halflife: float):
        self.weight = 1.0 - 0.5 ** (1.0 / halflife)
        self.mean = math.nan
        self.var = 0.0

    def update(self, spread: float) -> float:
        """Add this step's spread; return its z-score against the statistics before it."""
        if math.isnan(self.mean):
            self.mean = spread
            return 0.0
        deviation = spread - self.mean
        z = deviation / math.sqrt(self.var) if self.var > 0 else 0.0
        self.mean += self.weight * deviation
        self.var = (1.0 - self.weight) * (self.var + self.weight * deviation * deviation)
        return z


class PairArbitrageurs:
    """Fixed-rule pair arbitrageurs (``ArbParams``): in past ``entry_z``, out inside ``exit_z``."""

    kind = "arb"

    def __init__(
        self, agent_ids: list[int], n_assets: int, params: ArbParams, seed: np.random.SeedSequence
    ):
        self.ids = agent_ids
        self.params = params
        self.pairs = arbitrage_pairs(len(agent_ids), n_assets)
        self.trackers = [SpreadTracker(params.halflife) for _ in agent_ids]
        self.draws = turn_key_streams(seed, len(agent_ids))

    def decide(self, views: list[MarketView], step: int, inventory: list[list[int]], turns) -> None:
        p = self.params
        for agent_id, (a, b), tracker, draws in zip(
            self.ids, self.pairs, self.trackers, self.draws, strict=True
        ):
            (key,) = draws.at(step, 0)
            view_a, view_b = views[a], views[b]
            spread = view_a.log_mid - view_b.log_mid
            deviation = spread - tracker.mean
            z = tracker.update(spread)
            if step < p.warmup:
                continue
            held_a, held_b = inventory[a][agent_id], inventory[b][agent_id]
            # Worth it only if the mispricing pays both legs' costs in and out.
            costs = 2.0 * (view_a.taker_cost + view_b.taker_cost)
            target = held_a
            if abs(z) < p.exit_z:
                target = 0
            elif abs(z) > p.entry_z and abs(deviation) > costs:
                # Spread too high: a is rich, sell a and buy b (and the reverse).
                step_qty = -p.order_size if z > 0 else p.order_size
                target = max(-p.max_position, min(p.max_position, held_a + step_qty))
            legs = []
            if target != held_a:
                legs.append(leg_order(a, target - held_a))
            if -target != held_b:
                legs.append(leg_order(b, -target - held_b))
            if legs:
                turns.append((key, agent_id, None, legs, None))
