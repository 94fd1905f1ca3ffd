"""Order-book snapshots: depth by price level over time, recorded on request.

The per-step record (``RunResult.steps``) keeps only the quantity within 5 ticks of the mid, which
is what storage and the facts need. The app's book heatmap and ladder want more: the best
``levels`` price levels of each side, every ``every`` steps. Recording that on every run would
cost time and space nobody asked for, so it is opt-in and lives outside the core: a
``SnapshotRecorder`` rides on the market's public scheduling hook (``Market.at``), which runs an
action at the start of a step, i.e. on the book as the previous step left it. Actions only read
the book, so a run with snapshots is identical, bit for bit, to the same run without them.

A multi-asset run records every asset's book (one ``BookSnapshots`` each, reached through
``of_asset``); a one-asset run records exactly what it always did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from marl_market.core.config import MarketConfig
from marl_market.core.market import Market
from marl_market.core.results import RunResult
from marl_market.core.scenarios import Scenario

DEFAULT_LEVELS = 10  # price levels per side in every snapshot
DEFAULT_MAX_SNAPSHOTS = 500  # the default interval keeps a run's snapshots around this many


@dataclass
class BookSnapshots:
    """The best ``levels`` price levels of each side of one asset's book at sampled steps.

    Row ``i`` is the book at the end of step ``step[i]``. Prices are ticks, best level first;
    a side with fewer levels is padded with NaN prices and zero quantities.
    """

    every: int
    levels: int
    step: np.ndarray  # (n,) int64
    mid: np.ndarray  # (n,) float64: the mid the agents saw (the last one if a side was empty)
    bid_price: np.ndarray  # (n, levels) float64
    bid_qty: np.ndarray  # (n, levels) int64
    ask_price: np.ndarray  # (n, levels) float64
    ask_qty: np.ndarray  # (n, levels) int64
    asset: int = 0  # the asset these snapshots are of
    # The other recorded assets' snapshots (same steps), so one object carries a run's books.
    others: dict[int, BookSnapshots] = field(default_factory=dict, repr=False)

    @property
    def assets(self) -> list[int]:
        """Every asset with snapshots here, in order."""
        return sorted({self.asset, *self.others})

    def of_asset(self, asset: int) -> BookSnapshots:
        """The snapshots of ``asset``'s book; ``ValueError`` if it was not recorded."""
        if asset == self.asset:
            return self
        if asset not in self.others:
            raise ValueError(f"no book snapshots of asset {asset}: recorded {self.assets}")
        return self.others[asset]

    def __len__(self) -> int:
        return len(self.step)

    def index_at(self, step: int) -> int:
        """The row of the last snapshot taken at or before ``step`` (the first one if none)."""
        return max(0, int(np.searchsorted(self.step, step, side="right")) - 1)

    def ladder(self, step: int) -> dict[str, np.ndarray | int | float]:
        """The book at (or just before) ``step``: each side's levels without the padding."""
        i = self.index_at(step)
        bids = ~np.isnan(self.bid_price[i])
        asks = ~np.isnan(self.ask_price[i])
        return {
            "step": int(self.step[i]),
            "mid": float(self.mid[i]),
            "bid_price": self.bid_price[i][bids],
            "bid_qty": self.bid_qty[i][bids],
            "ask_price": self.ask_price[i][asks],
            "ask_qty": self.ask_qty[i][asks],
        }

    def grid(
        self, max_rows: int = 160, max_cols: int = 400
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Depth on a (price x time) grid for a heatmap: ``(steps, prices, bids, asks)``.

        ``bids[j, i]`` / ``asks[j, i]`` is the resting quantity of that side in price bin ``j``
        at snapshot column ``i``, NaN where nothing rests. Prices are binned (the bin's lowest
        price in ``prices``) and snapshots thinned so the grid stays at most ``max_rows`` x
        ``max_cols``: a browser draws that quickly, while a grid of every tick and every
        snapshot of a long run would be megabytes of JSON. The sides are kept apart because a
        bin wider than the spread can hold both.
        """
        n = len(self)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
        stride = max(1, math.ceil(n / max_cols))
        cols = np.arange(0, n, stride)
        prices = np.concatenate([self.bid_price[cols].ravel(), self.ask_price[cols].ravel()])
        prices = prices[~np.isnan(prices)]
        if prices.size == 0:
            empty = np.zeros((0, len(cols)))
            return self.step[cols], np.zeros(0), empty, empty
        low, high = int(prices.min()), int(prices.max())
        width = max(1, math.ceil((high - low + 1) / max_rows))
        n_rows = (high - low) // width + 1
        sides = []
        for price, qty in ((self.bid_price, self.bid_qty), (self.ask_price, self.ask_qty)):
            p, q = price[cols], qty[cols]
            ok = ~np.isnan(p)
            rows = ((p[ok] - low) // width).astype(np.int64)
            col_index = np.broadcast_to(np.arange(len(cols))[:, None], p.shape)[ok]
            depth = np.zeros((n_rows, len(cols)))
            np.add.at(depth, (rows, col_index), q[ok])
            filled = np.zeros((n_rows, len(cols)), dtype=bool)
            filled[rows, col_index] = True
            depth[~filled] = np.nan
            sides.append(depth)
        prices = low + width * np.arange(n_rows, dtype=np.float64)
        return self.step[cols], prices, sides[0], sides[1]


class SnapshotRecorder:
    """Records the best ``levels`` of each side of the ``assets``' books whenever it is called.

    Call it with a market (or let ``schedule`` make the market call it); each call records the
    books as they stand, labelled with the last step played (``market.t - 1``).
    """

    def __init__(
        self, every: int, levels: int = DEFAULT_LEVELS, assets: Sequence[int] = (0,)
    ) -> None:
        if every < 1:
            raise ValueError(f"the snapshot interval must be at least 1 step, got {every}")
        if levels < 1:
            raise ValueError(f"a snapshot needs at least 1 price level, got {levels}")
        assets = tuple(int(a) for a in assets)
        if not assets or min(assets) < 0 or len(set(assets)) != len(assets):
            raise ValueError(f"snapshot assets must be distinct asset indices, got {assets}")
        self.every = every
        self.levels = levels
        self.assets = assets
        self._rows: dict[int, list[tuple[int, float, list, list]]] = {a: [] for a in assets}

    def __call__(self, market: Market) -> None:
        for asset in self.assets:
            book = market.books[asset]
            self._rows[asset].append(
                (
                    market.t - 1,
                    float(market.views[asset].mid),
                    book.depth("buy", self.levels),
                    book.depth("sell", self.levels),
                )
            )

    def schedule(self, market: Market) -> None:
        """Have ``market`` call this recorder after every ``every``-th step of its run."""
        if max(self.assets) >= market.config.n_assets:
            raise ValueError(
                f"cannot snapshot asset {max(self.assets)}: the market has "
                f"{market.config.n_assets} asset(s)"
            )
        # An action at the start of step t sees the book step t - 1 left: steps 0, k, 2k, ...
        for t in range(1, market.config.steps, self.every):
            market.at(t, self)

    def snapshots(self) -> BookSnapshots:
        """Everything recorded so far, as arrays: the first asset's snapshots, the others'
        through ``of_asset``."""
        first, *rest = (self._asset_snapshots(a) for a in self.assets)
        first.others = {book.asset: book for book in rest}
        return first

    def _asset_snapshots(self, asset: int) -> BookSnapshots:
        rows = self._rows[asset]
        n, levels = len(rows), self.levels
        bid_price = np.full((n, levels), np.nan)
        ask_price = np.full((n, levels), np.nan)
        bid_qty = np.zeros((n, levels), dtype=np.int64)
        ask_qty = np.zeros((n, levels), dtype=np.int64)
        for i, (_, _, bids, asks) in enumerate(rows):
            for j, (price, qty) in enumerate(bids):
                bid_price[i, j], bid_qty[i, j] = price, qty
            for j, (price, qty) in enumerate(asks):
                ask_price[i, j], ask_qty[i, j] = price, qty
        return BookSnapshots(
            every=self.every,
            levels=levels,
            step=np.array([r[0] for r in rows], dtype=np.int64),
            mid=np.array([r[1] for r in rows], dtype=np.float64),
            bid_price=bid_price,
            bid_qty=bid_qty,
            ask_price=ask_price,
            ask_qty=ask_qty,
            asset=asset,
        )


def default_interval(steps: int, max_snapshots: int = DEFAULT_MAX_SNAPSHOTS) -> int:
    """A snapshot interval that keeps a run of ``steps`` to about ``max_snapshots`` snapshots."""
    return max(1, math.ceil(steps / max_snapshots))


def simulate_with_snapshots(
    config: MarketConfig,
    seed: int,
    every: int | None = None,
    levels: int = DEFAULT_LEVELS,
    scenario: Scenario | None = None,
    progress: Callable[[int, int], None] | None = None,
    assets: Sequence[int] | None = None,
) -> tuple[RunResult, BookSnapshots]:
    """Run ``config`` with ``seed`` (and a resolved ``scenario``, if any) and snapshot its books.

    The run is the same as ``simulate`` / ``run_scenario`` would give; the snapshots are taken
    every ``every`` steps (default: about ``DEFAULT_MAX_SNAPSHOTS`` over the run) and after the
    last step, of ``assets`` (default: every asset; asset 0's are returned, the others'
    through ``BookSnapshots.of_asset``).
    """
    market = Market(config, seed)
    if assets is None:
        assets = range(config.n_assets)
    recorder = SnapshotRecorder(every or default_interval(config.steps), levels, assets)
    # Registered first, so a snapshot sees the book before an intervention at the same step.
    recorder.schedule(market)
    if scenario is not None:
        scenario.schedule(market)
    result = market.run(progress)
    recorder(market)  # the book at the end of the last step
    return result, recorder.snapshots()
