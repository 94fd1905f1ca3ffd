"""Typed actions of the learnable agents (spec 000's names), and the orders each one becomes.

A learner slot (``core.learners``) holds one of these per step, set from outside through
``Market.act``; when the slot's turn comes, ``legs`` turns it into the same ops the fixed
agents hand the market (``core.agents``), one ``(asset, op)`` per leg, so a learner's orders
take the one path to the book every fixed agent's orders take.

Every field is in market units (ticks, shares); an environment maps its ``Box`` actions onto
them (``marl_market.rl.env``). Values outside their range are clipped, not refused: a policy's
Gaussian sample may land anywhere, and a clipped action is what a real venue would let through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from marl_market.core.agents import CANCEL, ORDER, MarketView

# |direction| below this means "do nothing" for takers, arbitrageurs and traders.
DEAD_ZONE = 1.0 / 3.0
TRADER_LIMIT_LIFETIME = 10  # steps a learning trader's limit order rests
TRADER_MAX_OFFSET = 10.0  # ticks from the touch of a learning trader's least aggressive order


@dataclass(frozen=True)
class MakerAction:
    """Two-sided quotes on every asset: offsets from the mid (ticks) and a size (shares).

    A size of 0 on an asset withdraws from it. Each turn cancels the maker's previous quotes
    and places the new ones post-only (a quote that would cross is moved behind the touch).
    """

    bid_offset: tuple[float, ...]
    ask_offset: tuple[float, ...]
    size: tuple[int, ...]


@dataclass(frozen=True)
class TakerAction:
    """A market order on the taker's asset: ``direction`` > 1/3 buys, < -1/3 sells, else waits."""

    direction: float
    size: int


@dataclass(frozen=True)
class ArbitrageAction:
    """Trade the pair (a, b): ``direction`` > 1/3 buys a and sells b, < -1/3 the reverse.

    ``close`` flattens both legs instead (it wins over ``direction``). Both legs are market
    orders of ``size`` shares placed in the same turn.
    """

    direction: float
    close: bool
    size: int


@dataclass(frozen=True)
class TraderAction:
    """A momentum, value or noise trader's order per asset.

    ``direction`` picks the side (dead zone: no order), ``size`` the shares and
    ``aggressiveness`` in [0, 1] the price: 1 is a market order, lower values rest a limit
    order ``(1 - aggressiveness) x 10`` ticks behind the opposite touch for 10 steps.
    """

    aggressiveness: tuple[float, ...]
    direction: tuple[float, ...]
    size: tuple[int, ...]


def _clip(value: float, low: float, high: float) -> float:
    if not math.isfinite(value):
        return low
    return min(high, max(low, value))


def _size(value: float, cap: int) -> int:
    return int(_clip(round(value) if math.isfinite(value) else 0, 0, cap))


def maker_legs(
    action: MakerAction, views: list[MarketView], live: list[list[int]], max_size: int
) -> list[tuple[int, tuple]]:
    """Cancel the live quotes (``live[asset] = [bid_id, ask_id]``), then quote per ``action``."""
    legs = []
    for asset, view in enumerate(views):
        bid_id, ask_id = live[asset]
        if bid_id:
            legs.append((asset, (CANCEL, bid_id)))
        if ask_id:
            legs.append((asset, (CANCEL, ask_id)))
        size = _size(action.size[asset], max_size)
        if size == 0 or view.mid <= 0:
            continue
        bid = math.floor(view.mid - _clip(action.bid_offset[asset], 0.5, 1_000.0))
        ask = math.ceil(view.mid + _clip(action.ask_offset[asset], 0.5, 1_000.0))
        if bid > 0:
            legs.append((asset, (ORDER, True, size, bid, 0, True)))
        legs.append((asset, (ORDER, False, size, ask, 0, True)))
    return legs


def taker_legs(action: TakerAction, asset: int, max_size: int) -> list[tuple[int, tuple]]:
    """One market order on the taker's asset, or none inside the dead zone."""
    size = _size(action.size, max_size)
    direction = _clip(action.direction, -1.0, 1.0)
    if size == 0 or abs(direction) < DEAD_ZONE:
        return []
    return [(asset, (ORDER, direction > 0, size, None, 0, False))]


def arbitrage_legs(
    action: ArbitrageAction, pair: tuple[int, int], held: tuple[int, int], max_size: int
) -> list[tuple[int, tuple]]:
    """Both legs of the pair in one list: a spread trade, or the close of what is ``held``."""
    a, b = pair
    if action.close:
        return [
            (asset, (ORDER, position < 0, abs(position), None, 0, False))
            for asset, position in ((a, held[0]), (b, held[1]))
            if position
        ]
    size = _size(action.size, max_size)
    direction = _clip(action.direction, -1.0, 1.0)
    if size == 0 or abs(direction) < DEAD_ZONE:
        return []
    buy_a = direction > 0
    return [
        (a, (ORDER, buy_a, size, None, 0, False)),
        (b, (ORDER, not buy_a, size, None, 0, False)),
    ]


def trader_legs(
    action: TraderAction, views: list[MarketView], live: list[int], max_size: int
) -> list[tuple[int, tuple]]:
    """Cancel the last limit orders (``live[asset]``), then one order per asset per ``action``."""
    legs = []
    for asset, view in enumerate(views):
        if live[asset]:
            legs.append((asset, (CANCEL, live[asset])))
        size = _size(action.size[asset], max_size)
        direction = _clip(action.direction[asset], -1.0, 1.0)
        if size == 0 or abs(direction) < DEAD_ZONE:
            continue
        is_buy = direction > 0
        aggressiveness = _clip(action.aggressiveness[asset], 0.0, 1.0)
        touch = view.best_ask if is_buy else view.best_bid
        if aggressiveness >= 1.0 or touch is None:
            legs.append((asset, (ORDER, is_buy, size, None, 0, False)))
            continue
        behind = round((1.0 - aggressiveness) * TRADER_MAX_OFFSET)
        price = touch - behind if is_buy else touch + behind
        if price > 0:
            legs.append((asset, (ORDER, is_buy, size, price, TRADER_LIMIT_LIFETIME, False)))
    return legs
