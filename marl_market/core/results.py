"""What a finished run hands back: columnar numpy arrays, ready for facts, plots and storage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marl_market.core.config import MarketConfig

# Column names and dtypes of each table, in storage order. The store and the plots rely on them.
STEP_COLUMNS = {
    "step": np.int64,
    "asset": np.int64,
    "mid": np.float64,  # ticks; the last mid carries over while a side is empty
    "best_bid": np.float64,  # ticks; NaN when there are no bids
    "best_ask": np.float64,  # ticks; NaN when there are no asks
    "spread": np.float64,  # ticks; NaN when a side is empty
    "fair_value": np.float64,  # ticks
    "volume": np.int64,  # shares traded during the step
    "n_trades": np.int64,
    "bid_depth": np.int64,  # resting bid quantity within `depth_band` (5) ticks of the mid
    "ask_depth": np.int64,  # resting ask quantity within `depth_band` ticks of the mid
    "makers_active": np.int64,  # market makers still in the market
    "regime": np.int64,  # 0 normal, 1 stress (``MarketConfig.regimes``)
}
TRADE_COLUMNS = {
    "step": np.int64,
    "asset": np.int64,
    "price": np.int64,
    "qty": np.int64,
    "buy_agent": np.int64,
    "sell_agent": np.int64,
    "aggressor": np.int8,  # +1 buyer-initiated, -1 seller-initiated
}
# The terms of an agent's reward (``Market.reward_components``); ``reward`` is their sum.
REWARD_COMPONENTS = (
    "mtm",
    "inventory_penalty",
    "liquidity_bonus",
    "delay_penalty",
    "unhedged_penalty",
)
# What ``Market.reward_components`` returns: the terms, their sum, then the charges.
REWARD_NAMES = (*REWARD_COMPONENTS, "reward", "fees_paid", "rebates_received", "taxes_paid")
AGENT_COLUMNS = {
    "agent_id": np.int64,
    "kind": object,  # "maker" | "momentum" | "value" | "noise" | "zi" | "taker" | "arb"
    "policy": object,  # "fixed" (a fixed rule) | "learner" (acts through ``Market.act``)
    "cash": np.float64,  # ticks x shares, fees, rebates and taxes included
    "inventory": np.int64,  # net shares summed over assets (per asset: ``positions``)
    "pnl": np.float64,  # mark-to-market at the last mids, ticks x shares (the reward's mtm)
    "reward": np.float64,  # cumulative own reward: pnl plus the four terms below
    "inventory_penalty": np.float64,  # - lambda_inv x sum of ||inventory||^2 (<= 0)
    "liquidity_bonus": np.float64,  # makers: + lambda_liq x presence summed (>= 0)
    "delay_penalty": np.float64,  # takers: - lambda_delay x sum of |remaining target| (<= 0)
    "unhedged_penalty": np.float64,  # arbitrageurs: - lambda_unhedged x sum of sum|inv| (<= 0)
    "fees_paid": np.float64,  # taker fees paid, ticks x shares (inside cash and pnl)
    "rebates_received": np.float64,  # maker rebates received
    "taxes_paid": np.float64,  # Tobin tax paid
    "n_trades": np.int64,
    "rejected_orders": np.int64,  # refused by position limits or rules
}
POSITION_COLUMNS = {  # one row per agent and asset at the end of the run
    "agent_id": np.int64,
    "asset": np.int64,
    "inventory": np.int64,  # shares of this asset, relative to the endowment
}
AGENT_STEP_COLUMNS = {
    "step": np.int64,
    "agent_id": np.int64,
    "asset": np.int64,  # one row per agent and asset; pnl is the agent's whole account
    "inventory": np.int64,
    "pnl": np.float64,
}


@dataclass
class RunResult:
    """The record of one market run (all tables in long format, one row per step x asset).

    ``config`` is the config the run started with; ``interventions`` lists what changed later.
    """

    config: MarketConfig
    seed: int
    steps: dict[str, np.ndarray]
    trades: dict[str, np.ndarray]
    agents: dict[str, np.ndarray]
    agent_steps: dict[str, np.ndarray]
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # ``POSITION_COLUMNS``
    counters: dict[str, int] = field(default_factory=dict)  # book events, rejections, ...
    # What changed during the run, in order: {"step", "action", "changes"}, e.g.
    # {"step": 2500, "action": "set_rules", "changes": {"short_ban": True}}. ``config`` is the
    # config the run started with; replaying it with these interventions gives this run.
    interventions: list[dict] = field(default_factory=list)

    def asset_series(self, column: str, asset: int = 0) -> np.ndarray:
        """One step column for one asset, in step order."""
        return self.steps[column][self.steps["asset"] == asset]
