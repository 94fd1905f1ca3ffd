"""Execution takers: work a parent order of ``target`` shares on one asset by a horizon.

Each taker (fixed-rule or learning) has an ``ExecutionTask``: its asset, side, target, horizon
and the mid when the order arrived. The fixed-rule forms are TWAP (fills on a straight line to
the target) and POV (a share of the market's volume); both sweep what is left on the horizon's
last step. The measure is implementation shortfall against the arrival mid, in basis points:
what the fills cost (fees and taxes included) beyond buying or selling at that mid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from marl_market.core.agents import ORDER, MarketView
from marl_market.core.config import TAKER_STYLES, TakerParams
from marl_market.core.draws import turn_key_streams


@dataclass
class ExecutionTask:
    """One taker's parent order: ``side`` +1 buys, -1 sells ``target`` shares of ``asset``."""

    agent_id: int
    asset: int
    side: int
    target: int
    horizon: int  # the last step to trade on is horizon - 1
    arrival_mid: float = math.nan  # set when the taker first looks at the market

    def filled(self, position: int) -> int:
        """Shares done so far: the position taken in the target's direction."""
        return max(0, self.side * position)

    def remaining(self, position: int) -> int:
        """Shares still to do (negative if it overshot the target)."""
        return self.target - self.side * position

    def shortfall_bp(self, position: int, cash: float) -> float:
        """Implementation shortfall of the fills so far against the arrival mid, in bp.

        For a buy, the average price paid (cash out per share, fees and taxes included) above
        the arrival mid; for a sell, the average received below it. NaN before any fill.
        """
        filled = self.filled(position)
        if filled == 0 or not self.arrival_mid > 0:
            return math.nan
        average = -cash / position  # cash per share, signed so a buy's price is positive
        return self.side * (average - self.arrival_mid) / self.arrival_mid * 1e4


def execution_tasks(
    agent_ids: list[int], n_assets: int, params: TakerParams, steps: int
) -> list[ExecutionTask]:
    """Member i works asset i mod n_assets, buying if i is even and selling if it is odd."""
    horizon = max(1, min(params.horizon, steps))
    return [
        ExecutionTask(agent_id, i % n_assets, 1 if i % 2 == 0 else -1, params.target, horizon)
        for i, agent_id in enumerate(agent_ids)
    ]


def check_takers(params: TakerParams) -> None:
    """Raise ``ValueError`` for a taker configuration that cannot work."""
    if params.style not in TAKER_STYLES:
        raise ValueError(
            f"taker style must be one of {', '.join(TAKER_STYLES)}, got {params.style!r}"
        )
    if params.target <= 0:
        raise ValueError(f"taker target must be a positive number of shares, got {params.target}")
    if params.horizon <= 0:
        raise ValueError(f"taker horizon must be positive, got {params.horizon}")
    if not 0.0 < params.pov_rate <= 1.0:
        raise ValueError(f"taker pov_rate must be in (0, 1], got {params.pov_rate}")
    if params.max_child <= 0:
        raise ValueError(f"taker max_child must be positive, got {params.max_child}")
    if params.position_limit < params.target:
        raise ValueError(
            f"taker position_limit ({params.position_limit}) is below its target ({params.target})"
        )


class ExecutionTakers:
    """Fixed-rule execution takers: TWAP or POV child market orders toward the target."""

    kind = "taker"

    def __init__(
        self,
        agent_ids: list[int],
        n_assets: int,
        params: TakerParams,
        steps: int,
        seed: np.random.SeedSequence,
    ):
        self.ids = agent_ids
        self.params = params
        self.tasks = execution_tasks(agent_ids, n_assets, params, steps)
        # One stream per taker: its turn key each step, drawn whether it trades or not.
        self.draws = turn_key_streams(seed, len(agent_ids))

    def decide(self, views: list[MarketView], step: int, inventory: list[list[int]], turns) -> None:
        p = self.params
        for task, draws in zip(self.tasks, self.draws, strict=True):
            view = views[task.asset]
            if step >= task.horizon:
                continue
            (key,) = draws.at(step, 0)
            position = inventory[task.asset][task.agent_id]
            remaining = task.remaining(position)
            if remaining <= 0:
                continue
            if step == task.horizon - 1:
                qty = remaining  # the final sweep
            elif p.style == "twap":
                due = math.ceil(task.target * (step + 1) / task.horizon)
                qty = min(p.max_child, due - task.filled(position))
            else:  # pov
                qty = min(p.max_child, remaining, math.ceil(p.pov_rate * view.volume))
            if qty > 0:
                order = (ORDER, task.side > 0, qty, None, 0, False)
                turns.append((key, task.agent_id, task.asset, [order], None))
