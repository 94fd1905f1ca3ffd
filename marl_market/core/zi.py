"""A zero-intelligence crowd, as in PyMarketSim's background traders (Wellman's ZI agents).

Each member arrives independently with probability ``arrival_probability`` per step. On
arrival it withdraws its previous order and places one 1-unit limit order, on a side chosen at
random, at its valuation shaded by U(shade_min, shade_max) ticks: a buy at
``fair + pv - shade``, a sell at ``fair + pv + shade``. ``pv`` is the member's private value of
its next unit: each member draws ``2 q_max`` values N(0, private_value_sd^2), sorted in
decreasing order (diminishing marginal value), and the next unit bought at position ``q`` is
worth value ``q + q_max``, the next unit sold value ``q + q_max - 1``; beyond ``q_max`` the
extreme value (or 0) applies. Unlike PyMarketSim's agents, which shrink a noisy estimate
toward the mean of a finite-horizon fundamental, a member here sees the fair value itself.

The arrivals are per-member geometric gaps (``draws.GeometricArrivals``), so a step costs
O(arrivals): 500 members at 0.005 make 2.5 arrivals a step, and a step pays for 2.5.
"""

from __future__ import annotations

import math

import numpy as np

from marl_market.core.agents import CANCEL, ORDER, MarketView
from marl_market.core.config import ZIParams
from marl_market.core.draws import GeometricArrivals, UniformRows


class ZeroIntelligenceTraders:
    """One 1-unit limit order per arrival around a private value; the previous one withdrawn."""

    kind = "zi"

    def __init__(
        self,
        agent_ids: list[int],
        n_assets: int,
        params: ZIParams,
        seed: np.random.SeedSequence,
    ):
        self.ids = agent_ids
        self.member_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.params = params
        value_rng, arrival_rng, decision_rng = (np.random.default_rng(s) for s in seed.spawn(3))
        n, q_max = len(agent_ids), params.q_max
        values = value_rng.normal(0.0, params.private_value_sd, (n, 2 * q_max))
        values = -np.sort(-values, axis=1)  # decreasing marginal value
        self.values = values.tolist()
        self.extra_buy = np.minimum(values[:, -1], 0.0).tolist() if n else []
        self.extra_sell = np.maximum(values[:, 0], 0.0).tolist() if n else []
        self.arrivals = GeometricArrivals(arrival_rng, n, params.arrival_probability, n_assets)
        self.decisions = UniformRows(decision_rng, 3)  # side, shade, turn key per arrival
        self.resting = [[0] * n for _ in range(n_assets)]  # live order id per member

    def private_value(self, member: int, position: int, is_buy: bool) -> float:
        """The member's value of the next unit bought (or sold) at ``position``."""
        index = position + self.params.q_max - (0 if is_buy else 1)
        values = self.values[member]
        if index >= len(values):
            return self.extra_buy[member]
        if index < 0:
            return self.extra_sell[member]
        return values[index]

    def decide(
        self, view: MarketView, asset: int, step: int, inventory: list[int], turns: list
    ) -> None:
        members = self.arrivals.due(step, asset)
        if not members:
            return
        p = self.params
        fair = math.exp(view.log_fair)
        shade_low, shade_width = p.shade_min, p.shade_max - p.shade_min
        q_max = p.q_max
        top = 2 * q_max
        resting = self.resting[asset]
        ids, all_values = self.ids, self.values
        decisions = self.decisions
        record = self.record_resting
        for member in members:
            side_u, shade_u, key = decisions.next()
            agent_id = ids[member]
            # The private value of the next unit (``private_value``, inlined: the hot path).
            index = inventory[agent_id] + q_max
            if side_u < 0.5:
                if index >= top:
                    value = self.extra_buy[member]
                else:
                    value = all_values[member][index] if index >= 0 else self.extra_sell[member]
                price = round(fair + value - shade_low - shade_width * shade_u)
                order = (ORDER, True, 1, price, 0, False)
            else:
                index -= 1
                if index >= top:
                    value = self.extra_buy[member]
                else:
                    value = all_values[member][index] if index >= 0 else self.extra_sell[member]
                price = round(fair + value + shade_low + shade_width * shade_u)
                order = (ORDER, False, 1, price, 0, False)
            previous = resting[member]
            if previous:
                resting[member] = 0
                ops = [(CANCEL, previous), order] if price > 0 else [(CANCEL, previous)]
            else:
                ops = [order] if price > 0 else []
            turns.append((key, agent_id, asset, ops, record))

    def record_resting(self, agent_id: int, asset: int, placed: list[tuple[bool, int]]) -> None:
        self.resting[asset][self.member_of[agent_id]] = placed[-1][1] if placed else 0
