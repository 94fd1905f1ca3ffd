"""The plain order book our engine is measured against (DESIGN.md §5).

Per side a dict ``price -> deque`` of resting entries plus a heap of prices with lazy deletion,
and one dict of live orders, so finding the best price is O(1) amortised and a cancel is O(1).
It is the book a competent engineer writes in an afternoon: no validation, no ``Trade``
objects (fills are plain tuples), no per-level quantity totals. Measuring against a slower book
(best price by ``min()``/``max()`` over the keys, cancels that scan a level) would flatter any
ratio taken against it.

Same semantics as ``marl_market.core.book.OrderBook``: strict price-time priority, trades at the
resting price, a limit remainder rests, a market remainder is dropped, and every submitted
order (limit or market) takes the next id 1, 2, 3, ...
"""

from __future__ import annotations

from collections import deque
from heapq import heappop, heappush

# A fill: (price, qty, buy_agent, sell_agent, buy_order_id, sell_order_id).
Fill = tuple[int, int, int, int, int, int]


class PlainBook:
    """Dict-of-deques book with heaps of prices (lazy deletion) and O(1) cancels."""

    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque], dict[int, deque]] = ({}, {})  # [is_buy]
        self.heaps: tuple[list[int], list[int]] = ([], [])  # asks as +price, bids as -price
        self.live: dict[int, list] = {}  # order_id -> [qty, order_id, agent_id, price, is_buy]
        self.next_id = 1

    def submit(
        self, is_buy: bool, qty: int, price: int | None, agent_id: int
    ) -> tuple[int, list[Fill]]:
        """Match an order, rest a limit remainder; return ``(order_id, fills)``."""
        order_id = self.next_id
        self.next_id += 1
        fills: list[Fill] = []
        levels = self.levels[not is_buy]
        heap = self.heaps[not is_buy]
        live = self.live
        while qty and heap:
            best = heap[0] if is_buy else -heap[0]
            level = levels.get(best)
            if not level:  # stale heap entry, or a level emptied by cancels
                heappop(heap)
                if level is not None:
                    del levels[best]
                continue
            if price is not None and (best > price if is_buy else best < price):
                break
            while qty and level:
                entry = level[0]
                resting = entry[0]
                if resting == 0:  # cancelled: skipped when it reaches the front
                    level.popleft()
                    continue
                fill = resting if resting < qty else qty
                if is_buy:
                    fills.append((best, fill, agent_id, entry[2], order_id, entry[1]))
                else:
                    fills.append((best, fill, entry[2], agent_id, entry[1], order_id))
                qty -= fill
                if fill == resting:
                    level.popleft()
                    del live[entry[1]]
                else:
                    entry[0] = resting - fill
        if qty and price is not None:
            entry = [qty, order_id, agent_id, price, is_buy]
            live[order_id] = entry
            own = self.levels[is_buy]
            level = own.get(price)
            if level is None:
                own[price] = deque((entry,))
                heappush(self.heaps[is_buy], -price if is_buy else price)
            else:
                level.append(entry)
        return order_id, fills

    def cancel(self, order_id: int) -> int:
        """Cancel a live order in O(1): zero it in place; return the quantity removed."""
        entry = self.live.pop(order_id, None)
        if entry is None:
            return 0
        qty = entry[0]
        entry[0] = 0
        return qty

    def depth(self, is_buy: bool) -> list[tuple[int, int]]:
        """All live levels of one side as ``(price, total_qty)``, best first (for checks)."""
        totals: dict[int, int] = {}
        for qty, _, _, price, buy in self.live.values():
            if buy == is_buy:
                totals[price] = totals.get(price, 0) + qty
        return sorted(totals.items(), reverse=is_buy)

    def best(self, is_buy: bool) -> int | None:
        """Best live price of one side (pops stale heap entries), or None."""
        levels, heap = self.levels[is_buy], self.heaps[is_buy]
        while heap:
            price = -heap[0] if is_buy else heap[0]
            level = levels.get(price)
            if level and any(entry[0] for entry in level):
                return price
            heappop(heap)
            levels.pop(price, None)
        return None

    def __len__(self) -> int:
        return len(self.live)
