"""Learner slots: agents of the market's population whose decisions come from outside.

A slot has a type (``LEARNER_KINDS``) and is rewarded like the fixed agents of that type. Each
step an outside policy may hand it one typed action (``core.actions``) through
``Market.act``; when the step is played, the slot's turn comes at its own random arrival time
among everyone else's and its action becomes ordinary legs through the market's one order path.
A slot without an action that step does nothing. Each slot draws its turn key from a stream
of its own (one number per step, acted or not), so adding a slot shifts no one else's draws.
"""

from __future__ import annotations

import numpy as np

from marl_market.core.actions import (
    ArbitrageAction,
    MakerAction,
    TakerAction,
    TraderAction,
    arbitrage_legs,
    maker_legs,
    taker_legs,
    trader_legs,
)
from marl_market.core.agents import MarketView
from marl_market.core.arbs import arbitrage_pairs
from marl_market.core.config import LEARNER_KINDS, MarketConfig
from marl_market.core.draws import turn_key_streams
from marl_market.core.takers import execution_tasks

ACTION_TYPES = {
    "maker": MakerAction,
    "taker": TakerAction,
    "arb": ArbitrageAction,
    "momentum": TraderAction,
    "value": TraderAction,
    "noise": TraderAction,
}


def learner_names(kinds: tuple[str, ...]) -> list[str]:
    """``<type>_<index>`` per slot, the index counting slots of that type (``maker_0``, ...)."""
    seen: dict[str, int] = {}
    names = []
    for kind in kinds:
        names.append(f"{kind}_{seen.get(kind, 0)}")
        seen[kind] = seen.get(kind, 0) + 1
    return names


def check_learners(kinds: tuple[str, ...], n_assets: int) -> None:
    """Raise ``ValueError`` for an unknown learner type or an arbitrageur without a pair."""
    for kind in kinds:
        if kind not in LEARNER_KINDS:
            raise ValueError(
                f"unknown learner type {kind!r}: choose from {', '.join(LEARNER_KINDS)}"
            )
    if "arb" in kinds and n_assets < 2:
        raise ValueError("a learning arbitrageur needs at least two assets")


class LearnerSlots:
    """Every learner slot of a market: their pending actions, live orders and tasks."""

    def __init__(
        self, agent_ids: list[int], config: MarketConfig, seed: np.random.SeedSequence
    ) -> None:
        kinds = config.population.learners
        check_learners(kinds, config.n_assets)
        n_assets = config.n_assets
        self.ids = agent_ids
        self.kinds = kinds
        self.names = learner_names(kinds)
        self.slot_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.config = config
        self.draws = turn_key_streams(seed, len(kinds))
        self.pending: list[object | None] = [None] * len(kinds)
        # Live orders per slot and asset: makers' [bid_id, ask_id], traders' last limit order.
        self.quotes = [[[0, 0] for _ in range(n_assets)] for _ in kinds]
        self.resting = [[0] * n_assets for _ in kinds]
        # Takers' parent orders and arbitrageurs' pairs, assigned as for the fixed types by
        # the slot's index among slots of its type.
        taker_ids = [a for a, k in zip(agent_ids, kinds, strict=True) if k == "taker"]
        self.tasks = {
            task.agent_id: task
            for task in execution_tasks(taker_ids, n_assets, config.taker, config.steps)
        }
        arb_ids = [a for a, k in zip(agent_ids, kinds, strict=True) if k == "arb"]
        self.pairs = dict(zip(arb_ids, arbitrage_pairs(len(arb_ids), n_assets), strict=True))

    def act(self, agent_id: int, action: object) -> None:
        """Set the slot's action for the next step (replacing one set before)."""
        slot = self.slot_of.get(agent_id)
        if slot is None:
            raise ValueError(f"agent {agent_id} is not a learner slot")
        kind = self.kinds[slot]
        expected = ACTION_TYPES[kind]
        if not isinstance(action, expected):
            raise TypeError(
                f"a learning {kind} takes a {expected.__name__}, got {type(action).__name__}"
            )
        n_assets = self.config.n_assets
        for field in ("bid_offset", "ask_offset", "size", "aggressiveness", "direction"):
            value = getattr(action, field, None)
            if isinstance(value, tuple) and len(value) != n_assets:
                raise ValueError(
                    f"{field} needs one value per asset ({n_assets}), got {len(value)}"
                )
        self.pending[slot] = action

    def decide(
        self, views: list[MarketView], step: int, inventory: list[list[int]], turns: list
    ) -> None:
        """Hand the market a turn for every slot with an action; actions last one step."""
        c = self.config
        for slot, agent_id in enumerate(self.ids):
            (key,) = self.draws[slot].at(step, 0)
            action = self.pending[slot]
            if action is None:
                continue
            self.pending[slot] = None
            kind = self.kinds[slot]
            if kind == "maker":
                legs = maker_legs(action, views, self.quotes[slot], 5 * c.maker.quote_size)
            elif kind == "taker":
                task = self.tasks[agent_id]
                legs = taker_legs(action, task.asset, c.taker.max_child)
            elif kind == "arb":
                pair = self.pairs[agent_id]
                held = (inventory[pair[0]][agent_id], inventory[pair[1]][agent_id])
                legs = arbitrage_legs(action, pair, held, c.arb.order_size * 5)
            else:
                max_order = {
                    "momentum": c.momentum.max_order,
                    "value": c.value.max_order,
                    "noise": c.noise.size_cap,
                }[kind]
                legs = trader_legs(action, views, self.resting[slot], max_order)
            if legs:
                turns.append((key, agent_id, None, legs, self.record_placed))

    def record_placed(self, agent_id: int, placed: list[tuple[int, bool, int]]) -> None:
        """Keep the ids of what rested, to cancel next turn (and to measure presence)."""
        slot = self.slot_of[agent_id]
        if self.kinds[slot] == "maker":
            quotes = self.quotes[slot]
            for pair in quotes:
                pair[0] = pair[1] = 0
            for asset, is_buy, order_id in placed:
                quotes[asset][0 if is_buy else 1] = order_id
        else:
            resting = self.resting[slot]
            for asset in range(len(resting)):
                resting[asset] = 0
            for asset, _, order_id in placed:
                resting[asset] = order_id
