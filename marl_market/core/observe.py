"""Read-only observations of a market: what a trader could see, as small float32 arrays.

``MarketObserver(market)`` precomputes what never changes (scales, each agent's task and
position limit) and then reads, every step, only the market's public state: each asset's
``MarketView`` (mid, best quotes, volatility, last step's volume and order flow, the stress
flag) and order book (sizes at and near the touch), and an agent's own account. It never reads
the true fundamental (``log_fair``): no observer shows it. Nothing here changes the market.

Two readings, both cheap enough to run every step for every learner:
- ``nodes()``: one row per asset (``NODE_FEATURES``), the node features of the market graph;
- ``vector(agent_id, columns)``: one agent's own features (``vector_names`` gives the layout).
"""

from __future__ import annotations

import math

import numpy as np

# One node per asset. Scaled so a typical value is of order one (see ``MarketObserver.nodes``).
NODE_FEATURES = (
    "log_mid",  # log(mid / initial price)
    "spread",  # best ask - best bid, in units of SPREAD_SCALE ticks
    "best_bid_size",  # shares at the best bid / SIZE_SCALE
    "best_ask_size",  # shares at the best ask / SIZE_SCALE
    "depth",  # mean of bid and ask shares within DEPTH_TICKS of the mid / SIZE_SCALE
    "volatility",  # EWMA of |log return| of the mid / the fundamental's per-step sd
    "imbalance",  # last step's (buyer- minus seller-initiated) / traded shares, in [-1, 1]
    "stressed",  # 1 in the stress regime, else 0
)
DEPTH_TICKS = 5  # the band around the mid whose resting shares make "depth"
SPREAD_SCALE = 10.0  # ticks
SIZE_SCALE = 100.0  # shares
CASH_SCALE = 100.0  # cash is shown in units of this many shares at the initial price
# A book with a side missing shows this spread (ticks): wide, but finite for a network.
MISSING_SPREAD_TICKS = 100.0


def vector_size(n_assets: int) -> int:
    """Length of an agent's vector: time, cash, remaining target, 5 per asset, regime."""
    return 4 + 5 * n_assets


class MarketObserver:
    """Observation accessors over one ``Market``; build one per market (it caches constants)."""

    def __init__(self, market) -> None:
        self.market = market
        config = market.initial_config
        fundamental = config.fundamental
        self.n_assets = config.n_assets
        self._log_p0 = math.log(fundamental.initial_price)
        self._vol_scale = 1.0 / fundamental.volatility if fundamental.volatility > 0 else 1.0
        self._cash_scale = 1.0 / (fundamental.initial_price * CASH_SCALE)
        self._inv_scale = [1.0 / max(1, limit) for limit in market.position_limit]
        self._steps = config.steps
        # Execution tasks of every taker, fixed-rule and learning, by agent id.
        tasks = {task.agent_id: task for task in market.takers.tasks}
        tasks.update(market.learners.tasks)
        self._tasks = tasks

    @property
    def vector_size(self) -> int:
        """Length of ``vector`` (``vector_size`` of the market's assets)."""
        return vector_size(self.n_assets)

    def vector_names(self) -> list[str]:
        """The name of every entry of ``vector``, in order."""
        n = range(self.n_assets)
        per_asset = [
            f"{name}_{asset}"
            for name in ("inventory", "log_mid", "spread", "best_bid_size", "best_ask_size")
            for asset in n
        ]
        return ["time", "cash", "remaining_target", *per_asset, "regime"]

    def node_rows(self) -> list[list[float]]:
        """The node features (``NODE_FEATURES``) of every asset as Python lists."""
        market = self.market
        rows = []
        for view, book in zip(market.views, market.books, strict=True):
            bid, ask, mid = view.best_bid, view.best_ask, view.mid
            if bid is None:
                bid_size = bid_depth = 0
            else:
                bid_size = book.quantity_between("buy", bid, bid)
                # Only prices up to the best bid hold bids: the band scan starts there.
                low = math.ceil(mid - DEPTH_TICKS)
                bid_depth = 0 if bid < low else book.quantity_between("buy", low, bid)
            if ask is None:
                ask_size = ask_depth = 0
            else:
                ask_size = book.quantity_between("sell", ask, ask)
                high = math.floor(mid + DEPTH_TICKS)
                ask_depth = 0 if ask > high else book.quantity_between("sell", ask, high)
            spread = MISSING_SPREAD_TICKS if bid is None or ask is None else ask - bid
            volume = view.volume
            rows.append(
                [
                    view.log_mid - self._log_p0,
                    spread / SPREAD_SCALE,
                    bid_size / SIZE_SCALE,
                    ask_size / SIZE_SCALE,
                    0.5 * (bid_depth + ask_depth) / SIZE_SCALE,
                    view.sigma_fast * self._vol_scale,
                    view.flow / volume if volume else 0.0,
                    1.0 if view.stressed else 0.0,
                ]
            )
        return rows

    def nodes(self) -> tuple[np.ndarray, list[tuple[float, ...]]]:
        """The node feature matrix (assets x ``NODE_FEATURES``, float32) and its columns.

        The columns (one tuple per feature) are what ``vector`` copies per asset, so a step
        reads the books once however many agents observe it.
        """
        rows = self.node_rows()
        return np.array(rows, dtype=np.float32), list(zip(*rows, strict=True))

    def vector(self, agent_id: int, columns: list[tuple[float, ...]]) -> np.ndarray:
        """One agent's own features (``vector_names``) given this step's node ``columns``.

        Normalised time (steps played / run length), cash in units of ``CASH_SCALE`` shares at
        the initial price, the remaining target as a share of the target (takers; 0 for
        others), inventory per asset as a share of the agent's position limit, then per asset
        the mid, spread and best sizes as in the nodes, and the regime (1 = stress).
        """
        return self.vectors([agent_id], columns)[0]

    def vectors(self, agent_ids: list[int], columns: list[tuple[float, ...]]) -> np.ndarray:
        """``vector`` of every agent in ``agent_ids``, one row each (one array for all)."""
        market = self.market
        inventory, cash, tasks = market.inventory, market.cash, self._tasks
        # What every agent sees alike: time first, the market's per-asset features and regime.
        time = market.t / self._steps
        shared = [*columns[0], *columns[1], *columns[2], *columns[3], float(market.regime)]
        rows = []
        for agent_id in agent_ids:
            task = tasks.get(agent_id)
            if task is None or not task.target:
                remaining = 0.0
            else:
                remaining = task.remaining(inventory[task.asset][agent_id]) / task.target
            scale = self._inv_scale[agent_id]
            rows.append(
                [
                    time,
                    cash[agent_id] * self._cash_scale,
                    remaining,
                    *[held[agent_id] * scale for held in inventory],
                    *shared,
                ]
            )
        return np.array(rows, dtype=np.float32).reshape(len(agent_ids), self.vector_size)
