"""Fixed-rule agent behaviours, one class per type, each deciding for all its agents at once.

Every step each type looks at the market as it stands at the start of the step and hands the
market a list of *turns*: ``(agent_id, asset, ops)``. The market then plays all turns of all
types in one seeded random order, so no type always moves first. An op is one of
  ("cancel", order_id)
  ("order", is_buy, qty, price_or_None, lifetime_steps_or_0, post_only)
Types with many members (1,000 noise traders) draw the *total* number of actions for the step
from one Poisson law and hand each action to a uniformly chosen member - the superposition of
the members' Poisson clocks - so a step costs O(actions), not O(agents).

The mechanisms, and which stylised fact each one drives (README: "The model"):
- makers quote around a blend of mid and its EMA, skew by inventory, and *withdraw* in volatile
  spells by skipping requotes (old quotes stay, unrefilled): liquidity dries up exactly when it
  is needed -> fat tails; more makers -> tighter best quotes -> spread falls with their number;
- momentum traders chase their own lookback's trend -> amplification, volatility clustering;
- value traders trade toward a noisy view of fair value, with a near-touch limit layer when the
  mispricing is small and market orders when it is large -> mean reversion, price discovery;
- noise traders build a deep book far from the mid and send random market orders -> the book
  stays alive and a flash crash has a floor;
- everyone but the noise traders speeds up with volatility relative to its slow average
  (``activity``), which makes bursts cluster and then decay.
"""

from __future__ import annotations

import math

import numpy as np

from marl_market.core.config import MakerParams, MomentumParams, NoiseParams, ValueParams

CANCEL = "cancel"
ORDER = "order"


class MarketView:
    """What agents may observe about one asset at the start of a step (set by the market)."""

    __slots__ = (
        "mid",
        "log_mid",
        "best_bid",
        "best_ask",
        "ema_mid",
        "sigma_fast",
        "sigma_slow",
        "activity",
        "log_fair",
        "cost",
    )

    def __init__(self) -> None:
        self.mid = 0.0
        self.log_mid = 0.0
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.ema_mid = 0.0
        self.sigma_fast = 0.0  # EWMA of |per-step log return|
        self.sigma_slow = 0.0
        self.activity = 1.0
        self.log_fair = 0.0  # seen only by value traders, through their noisy views
        self.cost = 0.0  # extra cost per unit notional of trading (Tobin tax), a fraction


def poisson_superposition(rng: np.random.Generator, n_agents: int, rate: float) -> list[int]:
    """Members acting this step: Poisson(n * rate) actions, each to a uniform member."""
    if n_agents == 0 or rate <= 0.0:
        return []
    n = int(rng.poisson(n_agents * rate))
    if n == 0:
        return []
    return rng.integers(0, n_agents, n).tolist()


class MarketMakers:
    """Quote both sides each step; skew by inventory; withdraw when volatility spikes."""

    kind = "maker"

    def __init__(self, agent_ids: list[int], n_assets: int, params: MakerParams, rngs: list):
        self.ids = agent_ids
        self.member_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.params = params
        # One stream per maker: maker i draws the same numbers however many makers there are,
        # so adding a maker changes the market only through what that maker does.
        self.rngs = rngs
        # Live quote ids per (member, asset): [bid_id, ask_id] (0 = none).
        self.quotes = [[[0, 0] for _ in range(n_assets)] for _ in agent_ids]
        self.active = True

    def decide(self, view: MarketView, asset: int, inventory: list[int], turns: list) -> None:
        if not self.active or view.best_bid is None and view.best_ask is None and view.mid <= 0:
            return
        p = self.params
        withdraw = min(p.withdraw_max, max(0.0, view.activity - p.withdraw_threshold))
        size = max(1, int(p.quote_size / max(1.0, view.activity)))
        sigma_ticks = view.sigma_fast * view.mid
        vol_term = min(p.max_vol_half_spread, p.vol_half_spread * sigma_ticks)
        cost_ticks = view.cost * view.mid
        centre_base = p.mid_weight * view.mid + (1.0 - p.mid_weight) * view.ema_mid
        for member, agent_id in enumerate(self.ids):
            # Draw both numbers every step so the random stream does not depend on state.
            rng = self.rngs[member]
            skip = rng.random() < withdraw
            half = rng.uniform(p.base_half_spread_low, p.base_half_spread_high)
            if skip:
                continue
            half += vol_term + cost_ticks
            inv = inventory[agent_id]
            half += p.inventory_widening * abs(inv)
            centre = centre_base - p.inventory_skew * inv
            bid = math.floor(centre - half)
            ask = math.ceil(centre + half)
            if ask <= bid:
                ask = bid + 1
            live = self.quotes[member][asset]
            ops = []
            if live[0]:
                ops.append((CANCEL, live[0]))
            if live[1]:
                ops.append((CANCEL, live[1]))
            if inv < p.position_limit and bid > 0:
                ops.append((ORDER, True, size, bid, 0, True))
            if inv > -p.position_limit:
                ops.append((ORDER, False, size, ask, 0, True))
            turns.append((agent_id, asset, ops, self.record_quotes))

    def record_quotes(self, agent_id: int, asset: int, placed: list[tuple[bool, int]]) -> None:
        """Called by the market with the (is_buy, order_id) of the quotes that rested."""
        live = self.quotes[self.member_of[agent_id]][asset]
        live[0] = live[1] = 0
        for is_buy, order_id in placed:
            live[0 if is_buy else 1] = order_id

    def pull(self) -> list[int]:
        """Leave the market: return every live quote id (for the market to cancel)."""
        self.active = False
        ids = [oid for per_asset in self.quotes for pair in per_asset for oid in pair if oid]
        for per_asset in self.quotes:
            for pair in per_asset:
                pair[0] = pair[1] = 0
        return ids


class MomentumTraders:
    """Chase the trend over each member's own lookback with market orders."""

    kind = "momentum"

    def __init__(self, agent_ids: list[int], params: MomentumParams, rng):
        self.ids = agent_ids
        self.params = params
        self.rng = rng
        self.lookbacks = rng.integers(params.lookback_min, params.lookback_max + 1, len(agent_ids))
        self.lookbacks = self.lookbacks.tolist()

    def decide(self, view, asset, step, log_mid_history, inventory, turns) -> None:
        p = self.params
        for member in poisson_superposition(
            self.rng, len(self.ids), p.act_probability * view.activity
        ):
            lookback = self.lookbacks[member]
            if step < lookback:
                continue
            trend = view.log_mid - log_mid_history[step - lookback]
            if abs(trend) <= view.cost:  # not worth paying the tax for
                continue
            scale = p.signal_scale * max(view.sigma_slow, 1e-9) * math.sqrt(lookback)
            target = round(p.position_limit * math.tanh(trend / scale))
            agent_id = self.ids[member]
            want = target - inventory[agent_id]
            if want == 0:
                continue
            qty = min(abs(want), p.max_order)
            turns.append((agent_id, asset, [(ORDER, want > 0, qty, None, 0, False)], None))


class ValueTraders:
    """Trade toward a persistent, noisy private view of the fair value."""

    kind = "value"

    def __init__(self, agent_ids: list[int], n_assets: int, params: ValueParams, rng):
        self.ids = agent_ids
        self.member_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.params = params
        self.rng = rng
        n = len(agent_ids)
        # Each member's log-error about fair value (an OU process updated lazily when it acts).
        self.view_error = [
            rng.normal(0.0, params.view_noise, n).tolist() if n else [] for _ in range(n_assets)
        ]
        self.last_update = [[0] * n for _ in range(n_assets)]
        self.resting = [[0] * n for _ in range(n_assets)]  # live limit order id per member

    def decide(self, view, asset, step, inventory, turns) -> None:
        p = self.params
        rng = self.rng
        errors = self.view_error[asset]
        last = self.last_update[asset]
        for member in poisson_superposition(rng, len(self.ids), p.act_probability * view.activity):
            # Exact OU transition over the steps since this member last looked.
            decay = math.exp(-p.view_reversion * (step - last[member]))
            shock = rng.normal() * p.view_noise * math.sqrt(1.0 - decay * decay)
            errors[member] = errors[member] * decay + shock
            last[member] = step
            mispricing = view.log_fair + errors[member] - view.log_mid
            agent_id = self.ids[member]
            target = max(-p.position_limit, min(p.position_limit, round(p.gain * mispricing)))
            want = target - inventory[agent_id]
            ops = []
            previous = self.resting[asset][member]
            if previous:
                ops.append((CANCEL, previous))
                self.resting[asset][member] = 0
            if want != 0:
                is_buy = want > 0
                qty = min(abs(want), p.max_order)
                if abs(mispricing) > p.aggressive_threshold + 2.0 * view.cost:
                    ops.append((ORDER, is_buy, qty, None, 0, False))
                elif abs(mispricing) > 2.0 * view.cost:
                    price = self._inside_price(view, is_buy)
                    # Never post beyond its own valuation less a margin: with the makers gone,
                    # value traders refill the touch only at prices they like.
                    view_price = math.exp(view.log_fair + errors[member])
                    if is_buy:
                        cap = math.floor(view_price * (1.0 - p.limit_margin))
                        price = None if price is None else min(price, cap)
                    else:
                        floor_ = math.ceil(view_price * (1.0 + p.limit_margin))
                        price = None if price is None else max(price, floor_)
                    if price is not None and price > 0:
                        ops.append((ORDER, is_buy, qty, price, p.limit_lifetime, True))
            if ops:
                turns.append((agent_id, asset, ops, self.record_resting))

    @staticmethod
    def _inside_price(view: MarketView, is_buy: bool) -> int | None:
        """One tick inside the spread on the trader's side (or at the touch if it is 1 tick)."""
        bid, ask = view.best_bid, view.best_ask
        if is_buy:
            if bid is None:
                return None if ask is None else ask - 1
            return bid + 1 if ask is None or bid + 1 < ask else bid
        if ask is None:
            return None if bid is None else bid + 1
        return ask - 1 if bid is None or ask - 1 > bid else ask

    def record_resting(self, agent_id: int, asset: int, placed: list[tuple[bool, int]]) -> None:
        self.resting[asset][self.member_of[agent_id]] = placed[-1][1] if placed else 0


class NoiseTraders:
    """Random market orders and a deep layer of far limit orders with a finite lifetime."""

    kind = "noise"

    def __init__(self, agent_ids: list[int], params: NoiseParams, rng):
        self.ids = agent_ids
        self.params = params
        self.rng = rng
        self.rate_scale = 1.0  # scenarios (drought) scale the intensity

    def decide(self, view, asset, turns) -> None:
        p = self.params
        rng = self.rng
        # Costs (a Tobin tax) deter uninformed trading: participation x exp(-cost / sensitivity).
        participation = math.exp(-view.cost * 1e4 / p.tax_sensitivity_bp) * self.rate_scale
        inv_alpha = -1.0 / p.size_pareto_alpha
        # Actions arrive at the full rate and each is kept with probability `participation`
        # (Poisson thinning): every number is drawn whatever the participation, so a tax or a
        # drought changes which actions happen, not the random stream (common random numbers).
        for member in poisson_superposition(rng, len(self.ids), p.orders_per_step):
            keep = rng.random() < participation
            is_buy = rng.random() < 0.5
            is_market = rng.random() < p.market_order_share
            offset = p.limit_offset_min + rng.exponential(p.limit_offset_mean_extra)
            qty = min(p.size_cap, int(rng.random() ** inv_alpha))
            if not keep:
                continue
            if is_market:
                op = (ORDER, is_buy, qty, None, 0, False)
            else:
                price = round(view.mid - offset) if is_buy else round(view.mid + offset)
                if price <= 0:
                    continue
                op = (ORDER, is_buy, qty, price, p.order_lifetime, False)
            turns.append((self.ids[member], asset, [op], None))
