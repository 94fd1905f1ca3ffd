"""The order stream every book in the bench replays: ours, the plain baseline and ABIDES's.

An operation is ``(kind, is_buy, qty_or_target, price, agent_id)`` with plain Python values:
``LIMIT`` (priced 0-``LIMIT_BAND`` ticks from the current mid: behind it on the order's own
side, where it rests, or - with a probability that rises with the number of resting orders,
``resting / (resting + AGGRESSION_SCALE)`` - through it, where it trades and may rest the
rest),  ``CANCEL`` (of a uniformly random earlier order that
is still resting; ``qty_or_target`` is its order id, ids numbering every submitted order 1, 2,
... as our book and the baseline number them) or ``MARKET`` (``price`` None). Sizes are 1-10.
Mix: 57% limit, 28% cancel, 15% market.

The mid and the set of live orders depend on the book, so the generator replays the stream
through the plain baseline book while it draws it (set-up, never timed). The stream is a pure
function of ``(n, seed)``. Random-live cancels and market orders remove about a fixed amount per
operation, so a fixed mix would drain the book or grow it without bound; the size-dependent
aggression (a crude stand-in for a real book's size-dependent cancel hazard) keeps it at about
two to three thousand resting orders over roughly 40 levels a side.
"""

from __future__ import annotations

import numpy as np

from marl_market.bench.baseline import PlainBook

LIMIT, CANCEL, MARKET = 0, 1, 2
MIX = {LIMIT: 0.57, CANCEL: 0.28, MARKET: 0.15}
LIMIT_BAND = 20  # ticks either side of the mid
AGGRESSION_SCALE = 20_000
START_MID = 10_000
MAX_QTY = 10

Op = tuple[int, bool, int, int | None, int]


def generate_stream(n: int, seed: int) -> list[Op]:
    """``n`` operations drawn from ``numpy.random.default_rng(seed)`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n, p=[MIX[LIMIT], MIX[CANCEL], MIX[MARKET]]).tolist()
    is_buy = (rng.random(n) < 0.5).tolist()
    qtys = rng.integers(1, MAX_QTY + 1, size=n).tolist()
    offsets = rng.integers(0, LIMIT_BAND + 1, size=n).tolist()
    aggression = rng.random(n).tolist()
    picks = rng.random(n).tolist()
    agents = rng.integers(0, 100, size=n).tolist()

    book = PlainBook()
    candidates: list[int] = []  # ids that may still rest; dead ones are dropped when picked
    mid = START_MID
    ops: list[Op] = []
    for i in range(n):
        kind, buy = kinds[i], is_buy[i]
        if kind == CANCEL:
            target = 0  # an id no engine knows (a no-op cancel) when nothing rests
            while candidates:
                j = int(picks[i] * len(candidates))
                order_id = candidates[j]
                candidates[j] = candidates[-1]  # swap-remove: O(1)
                candidates.pop()
                if order_id in book.live:
                    target = order_id
                    book.cancel(order_id)
                    break
            ops.append((CANCEL, buy, target, None, 0))
            continue
        if kind == LIMIT:
            bid, ask = book.best(True), book.best(False)
            if bid is not None and ask is not None:
                mid = (bid + ask) // 2
            resting = len(book)
            through = aggression[i] < resting / (resting + AGGRESSION_SCALE)
            offset = offsets[i] if buy == through else -offsets[i]
            price = max(1, mid + offset)
            order_id, _ = book.submit(buy, qtys[i], price, agents[i])
            if order_id in book.live:
                candidates.append(order_id)
            ops.append((LIMIT, buy, qtys[i], price, agents[i]))
        else:
            book.submit(buy, qtys[i], None, agents[i])
            ops.append((MARKET, buy, qtys[i], None, agents[i]))
    return ops


def stream_mix(ops: list[Op]) -> dict[str, float]:
    """The shares of limit, cancel and market operations in ``ops``."""
    counts = [0, 0, 0]
    for op in ops:
        counts[op[0]] += 1
    total = max(1, len(ops))
    return {"limit": counts[0] / total, "cancel": counts[1] / total, "market": counts[2] / total}
