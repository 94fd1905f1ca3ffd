"""Hand-built RunResult objects for store tests (no simulator needed)."""

from __future__ import annotations

import numpy as np

from marl_market.core.config import MarketConfig
from marl_market.core.results import RunResult


def make_run_result(seed: int, n_steps: int, n_trades: int, n_assets: int = 1) -> RunResult:
    """A RunResult with random but well-typed tables: n_steps x n_assets step rows.

    Values are random (not sorted) so a store that reorders rows is caught; some best bids are
    NaN, as when a side of the book is empty.
    """
    rng = np.random.default_rng(seed)
    config = MarketConfig(steps=n_steps, n_assets=n_assets)

    step = np.repeat(np.arange(n_steps, dtype=np.int64), n_assets)
    asset = np.tile(np.arange(n_assets, dtype=np.int64), n_steps)
    n = step.size
    mid = 10_000 + np.cumsum(rng.normal(0, 1, n))
    best_bid = np.floor(mid - rng.uniform(0.5, 2, n))
    best_bid[rng.random(n) < 0.02] = np.nan
    best_ask = np.ceil(mid + rng.uniform(0.5, 2, n))
    steps = {
        "step": step,
        "asset": asset,
        "mid": mid,
        "best_bid": best_bid,
        "best_ask": best_ask,
        "spread": best_ask - best_bid,
        "fair_value": mid + rng.normal(0, 3, n),
        "volume": rng.integers(0, 500, n),
        "n_trades": rng.integers(0, 20, n),
        "bid_depth": rng.integers(0, 1_000, n),
        "ask_depth": rng.integers(0, 1_000, n),
        "makers_active": rng.integers(0, 3, n),
        "regime": rng.integers(0, 2, n),
    }

    n_agents = config.population.total
    trades = {
        "step": np.sort(rng.integers(0, max(n_steps, 1), n_trades)),
        "asset": rng.integers(0, n_assets, n_trades),
        "price": rng.integers(9_900, 10_100, n_trades),
        "qty": rng.integers(1, 100, n_trades),
        "buy_agent": rng.integers(0, n_agents, n_trades),
        "sell_agent": rng.integers(0, n_agents, n_trades),
        "aggressor": rng.choice(np.array([-1, 1], dtype=np.int8), n_trades),
    }

    kinds = [kind for kind, count in config.population.counts().items() for _ in range(count)]
    agents = {
        "agent_id": np.arange(n_agents, dtype=np.int64),
        "kind": np.array(kinds, dtype=object),
        "cash": rng.normal(0, 1e5, n_agents),
        "inventory": rng.integers(-50, 50, n_agents),
        "pnl": rng.normal(0, 1e3, n_agents),
        "reward": rng.normal(0, 10, n_agents),
        "policy": np.array(["fixed"] * n_agents, dtype=object),
        "inventory_penalty": -rng.exponential(1.0, n_agents),
        "liquidity_bonus": rng.exponential(1.0, n_agents),
        "delay_penalty": np.zeros(n_agents),
        "unhedged_penalty": np.zeros(n_agents),
        "fees_paid": rng.exponential(1.0, n_agents),
        "rebates_received": rng.exponential(1.0, n_agents),
        "taxes_paid": np.zeros(n_agents),
        "n_trades": rng.integers(0, 1_000, n_agents),
        "rejected_orders": rng.integers(0, 10, n_agents),
    }
    positions = {
        "agent_id": np.repeat(np.arange(n_agents, dtype=np.int64), n_assets),
        "asset": np.tile(np.arange(n_assets, dtype=np.int64), n_agents),
        "inventory": rng.integers(-50, 50, n_agents * n_assets),
    }

    sampled = np.arange(0, n_steps, config.agent_record_interval, dtype=np.int64)
    rows = n_agents * n_assets  # one row per agent and asset per sample
    agent_steps = {
        "step": np.repeat(sampled, rows),
        "agent_id": np.tile(np.repeat(np.arange(n_agents, dtype=np.int64), n_assets), sampled.size),
        "asset": np.tile(np.arange(n_assets, dtype=np.int64), n_agents * sampled.size),
        "inventory": rng.integers(-50, 50, sampled.size * rows),
        "pnl": rng.normal(0, 1e3, sampled.size * rows),
    }
    return RunResult(
        config=config,
        seed=seed,
        steps=steps,
        trades=trades,
        agents=agents,
        agent_steps=agent_steps,
        positions=positions,
        counters={"events": int(n_trades)},
    )
