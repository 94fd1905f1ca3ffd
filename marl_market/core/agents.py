"""Fixed-rule agent behaviours, one class per type, each deciding for all its agents at once.

Every step each type looks at the market as it stands at the start of the step and hands the
market a list of *turns*: ``(key, agent_id, asset, ops, on_placed)``. ``key`` is the turn's
random arrival time within the step, drawn from the acting type's own stream, and the market
plays all turns of all types in key order, so no type always moves first and the order of two
turns never depends on how many other turns there are. An op is one of
  ("cancel", order_id)
  ("order", is_buy, qty, price_or_None, lifetime_steps_or_0, post_only)
Types with many members (1,000 noise traders) draw the *total* number of candidate actions for
the step from one Poisson law and hand each to a uniformly chosen member - the superposition of
the members' Poisson clocks - so a step costs O(actions), not O(agents). The rate is fixed and
state-dependent activity thins it, so every type draws the same numbers whatever the market does
(``marl_market.core.draws``: common random numbers).

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
from marl_market.core.draws import Arrivals, PerStep

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
        "taker_cost",
        "maker_cost",
        "volume",
        "flow",
        "stressed",
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
        self.taker_cost = 0.0  # what an aggressive order pays per unit notional (tax + fee)
        self.maker_cost = 0.0  # what a resting order pays (tax - rebate; negative: earns)
        self.volume = 0  # shares traded on the asset during the last step
        self.flow = 0  # buyer- minus seller-initiated shares during the last step
        self.stressed = False  # the regime is stress (spec 000: observable, a node feature)


def _rngs(seed: np.random.SeedSequence, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seed.spawn(n)]


class MarketMakers:
    """Quote both sides each step; skew by inventory; withdraw when volatility spikes."""

    kind = "maker"

    def __init__(
        self,
        agent_ids: list[int],
        n_assets: int,
        params: MakerParams,
        seed: np.random.SeedSequence,
    ):
        self.ids = agent_ids
        self.member_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.params = params
        # One stream per maker, three numbers per step and asset (skip, half-spread, turn key)
        # whether it quotes, skips or is away: maker i draws the same numbers however many
        # makers there are and whatever happened, so adding or pulling a maker changes the
        # market only through what that maker does.
        self.draws = [PerStep(rng, n_assets, 3) for rng in _rngs(seed, len(agent_ids))]
        # Live quote ids per (member, asset): [bid_id, ask_id] (0 = none).
        self.quotes = [[[0, 0] for _ in range(n_assets)] for _ in agent_ids]
        self.active = True

    def decide(
        self, view: MarketView, asset: int, step: int, inventory: list[int], turns: list
    ) -> None:
        if not self.active or view.best_bid is None and view.best_ask is None and view.mid <= 0:
            return
        p = self.params
        withdraw = min(p.withdraw_max, max(0.0, view.activity - p.withdraw_threshold))
        size = max(1, int(p.quote_size / max(1.0, view.activity)))
        sigma_ticks = view.sigma_fast * view.mid
        vol_term = min(p.max_vol_half_spread, p.vol_half_spread * sigma_ticks)
        cost_ticks = view.maker_cost * view.mid
        stress_factor = p.stress_spread_factor if view.stressed else 1.0
        centre_base = p.mid_weight * view.mid + (1.0 - p.mid_weight) * view.ema_mid
        low, width = p.base_half_spread_low, p.base_half_spread_high - p.base_half_spread_low
        for member, agent_id in enumerate(self.ids):
            skip_u, half_u, key = self.draws[member].at(step, asset)
            if skip_u < withdraw:
                continue
            half = (low + width * half_u + vol_term) * stress_factor + cost_ticks
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
            turns.append((key, agent_id, asset, ops, self.record_quotes))

    def record_quotes(self, agent_id: int, asset: int, placed: list[tuple[bool, int]]) -> None:
        """Called by the market with the (is_buy, order_id) of the quotes that rested."""
        live = self.quotes[self.member_of[agent_id]][asset]
        live[0] = live[1] = 0
        for is_buy, order_id in placed:
            live[0 if is_buy else 1] = order_id

    def pull(self) -> list[tuple[int, int]]:
        """Leave the market: return every live quote as ``(asset, order_id)`` (to cancel).

        Order ids are per book, so the asset is part of a quote's identity.
        """
        self.active = False
        quotes = [
            (asset, order_id)
            for per_asset in self.quotes
            for asset, pair in enumerate(per_asset)
            for order_id in pair
            if order_id
        ]
        for per_asset in self.quotes:
            for pair in per_asset:
                pair[0] = pair[1] = 0
        return quotes


class MomentumTraders:
    """Chase the trend over each member's own lookback with market orders."""

    kind = "momentum"

    def __init__(
        self,
        agent_ids: list[int],
        n_assets: int,
        params: MomentumParams,
        max_activity: float,
        seed: np.random.SeedSequence,
    ):
        self.ids = agent_ids
        self.params = params
        init_rng, arrival_rng = _rngs(seed, 2)
        self.lookbacks = init_rng.integers(
            params.lookback_min, params.lookback_max + 1, len(agent_ids)
        ).tolist()
        # Candidates at the highest rate activity allows, thinned by activity / max_activity.
        self.max_activity = max_activity
        self.arrivals = Arrivals(
            arrival_rng, len(agent_ids), params.act_probability * max_activity, n_assets, 2
        )

    def decide(self, view, asset, step, log_mid_ring, inventory, turns) -> None:
        p = self.params
        keep = view.activity / self.max_activity
        ring_size = len(log_mid_ring)
        for member, accept_u, key in self.arrivals.at(step, asset):
            if accept_u >= keep:
                continue
            lookback = self.lookbacks[member]
            if step < lookback:
                continue
            trend = view.log_mid - log_mid_ring[(step - lookback) % ring_size]
            if abs(trend) <= view.taker_cost:  # not worth paying the tax and fee for
                continue
            scale = p.signal_scale * max(view.sigma_slow, 1e-9) * math.sqrt(lookback)
            target = round(p.position_limit * math.tanh(trend / scale))
            agent_id = self.ids[member]
            want = target - inventory[agent_id]
            if want == 0:
                continue
            qty = min(abs(want), p.max_order)
            turns.append((key, agent_id, asset, [(ORDER, want > 0, qty, None, 0, False)], None))


class ValueTraders:
    """Trade toward a persistent, noisy private view of the fair value."""

    kind = "value"

    def __init__(
        self,
        agent_ids: list[int],
        n_assets: int,
        params: ValueParams,
        max_activity: float,
        seed: np.random.SeedSequence,
    ):
        self.ids = agent_ids
        self.member_of = {agent_id: i for i, agent_id in enumerate(agent_ids)}
        self.params = params
        init_rng, arrival_rng = _rngs(seed, 2)
        n = len(agent_ids)
        # Each member's log-error about fair value: an OU process, moved at every candidate
        # (kept or not), so the views are the same in a scenario run and its baseline.
        self.view_error = [
            init_rng.normal(0.0, params.view_noise, n).tolist() if n else []
            for _ in range(n_assets)
        ]
        self.last_update = [[0] * n for _ in range(n_assets)]
        self.resting = [[0] * n for _ in range(n_assets)]  # live limit order id per member
        self.max_activity = max_activity
        self.arrivals = Arrivals(
            arrival_rng, n, params.act_probability * max_activity, n_assets, 2, normals=1
        )

    def decide(self, view, asset, step, inventory, turns) -> None:
        p = self.params
        keep = view.activity / self.max_activity
        errors = self.view_error[asset]
        last = self.last_update[asset]
        reversion, noise = p.view_reversion, p.view_noise
        for member, accept_u, key, normal in self.arrivals.at(step, asset):
            # Exact OU transition over the steps since this member's last candidate.
            elapsed = step - last[member]
            if elapsed:
                decay = math.exp(-reversion * elapsed)
                errors[member] = errors[member] * decay + normal * noise * math.sqrt(
                    1.0 - decay * decay
                )
                last[member] = step
            if accept_u >= keep:
                continue
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
                if abs(mispricing) > p.aggressive_threshold + 2.0 * view.taker_cost:
                    ops.append((ORDER, is_buy, qty, None, 0, False))
                elif abs(mispricing) > 2.0 * view.maker_cost:
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
                turns.append((key, agent_id, asset, ops, self.record_resting))

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

    def __init__(
        self, agent_ids: list[int], n_assets: int, params: NoiseParams, seed: np.random.SeedSequence
    ):
        self.ids = agent_ids
        self.params = params
        self.rate_scale = 1.0  # scenarios (drought) scale the intensity
        (arrival_rng,) = _rngs(seed, 1)
        # Per action: keep, turn key, side, market-or-limit, size; and the limit offset.
        self.arrivals = Arrivals(
            arrival_rng, len(agent_ids), params.orders_per_step, n_assets, 5, exponentials=1
        )

    def set_params(self, step: int, params: NoiseParams) -> None:
        """New parameters from ``step`` on (a new rate redraws the stream from there)."""
        if params.orders_per_step != self.params.orders_per_step:
            self.arrivals.set_rate(step, params.orders_per_step)
        self.params = params

    def decide(self, view, asset, step, turns) -> None:
        p = self.params
        # Costs (a Tobin tax) deter uninformed trading: participation x exp(-cost / sensitivity).
        participation = math.exp(-view.taker_cost * 1e4 / p.tax_sensitivity_bp) * self.rate_scale
        inv_alpha = -1.0 / p.size_pareto_alpha
        offset_min, offset_mean = p.limit_offset_min, p.limit_offset_mean_extra
        market_share, size_cap, lifetime = p.market_order_share, p.size_cap, p.order_lifetime
        mid = view.mid
        ids = self.ids
        # Actions arrive at the full rate and each is kept with probability `participation`
        # (Poisson thinning): a tax or a drought changes which actions happen, not the stream.
        for member, keep_u, key, side_u, market_u, size_u, exp1 in self.arrivals.at(step, asset):
            if keep_u >= participation:
                continue
            is_buy = side_u < 0.5
            qty = min(size_cap, int((1.0 - size_u) ** inv_alpha))
            if market_u < market_share:
                op = (ORDER, is_buy, qty, None, 0, False)
            else:
                offset = offset_min + offset_mean * exp1
                price = round(mid - offset) if is_buy else round(mid + offset)
                if price <= 0:
                    continue
                op = (ORDER, is_buy, qty, price, lifetime, False)
            turns.append((key, ids[member], asset, [op], None))
