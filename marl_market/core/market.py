"""The market: one order book per asset, fundamentals, rules, the agents and the step loop.

A step, for every asset: (0) the normal / stress regime chain moves, if it switches
(``core.regimes``), (1) scheduled events fire (e.g. a scenario pulls the makers), (2) resting
orders whose lifetime ran out are cancelled, (3) every agent type decides from the market as it
stands and hands over its turns, (4) all turns are played in the order of their random arrival
times within the step - each order checked against position limits and the rules, matched, and
its fills settled in cash and inventory with fees and taxes, (5) the fundamentals evolve, their
shocks correlated across assets if configured (``core.fundamentals``), (6) the step is recorded
(rewards are not computed per step: ``cumulative_reward`` derives them when read).

Determinism: every random stream is a ``numpy.random.Generator`` spawned from one
``SeedSequence(seed)``: one per purpose (the fundamental, the initial book, the regime chain)
and per agent type (one per maker), each type spawning its own per purpose (initial state,
arrivals). Every stream
draws the same count of numbers whatever the market state (``marl_market.core.draws``): activity
thins a fixed-rate arrival stream instead of changing its rate, and each turn carries its own
random arrival time within the step, drawn by the acting type, instead of being shuffled with
however many other turns there are. So two runs of one config and seed are identical bit for
bit, and a scenario run shares with its baseline every random number the intervention does not
itself change (common random numbers): the fundamental path, who considers acting when and with
which numbers; only the decisions that depend on the market differ.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
from collections.abc import Callable
from operator import itemgetter

import numpy as np

from marl_market.core.agents import (
    CANCEL,
    MarketMakers,
    MarketView,
    MomentumTraders,
    NoiseTraders,
    ValueTraders,
)
from marl_market.core.arbs import PairArbitrageurs
from marl_market.core.book import OrderBook
from marl_market.core.config import (
    AGENT_KINDS,
    FundamentalParams,
    MarketConfig,
    NoiseParams,
    Rules,
)
from marl_market.core.draws import PerStep
from marl_market.core.fundamentals import book_fundamentals, correlation_factor, mix
from marl_market.core.learners import LearnerSlots
from marl_market.core.recorder import Columns
from marl_market.core.regimes import NORMAL, STRESS, RegimeChain, check_regimes, stress_regime
from marl_market.core.results import (
    AGENT_COLUMNS,
    AGENT_STEP_COLUMNS,
    POSITION_COLUMNS,
    REWARD_COMPONENTS,
    REWARD_NAMES,
    STEP_COLUMNS,
    TRADE_COLUMNS,
    RunResult,
)
from marl_market.core.takers import ExecutionTakers, check_takers
from marl_market.core.zi import ZeroIntelligenceTraders

INITIAL_ORDERS_PER_NOISE_TRADER = 10  # per side, so a run starts with a live book
# The recorded step columns after step and asset, in the order ``_record`` writes them.
_RECORDED = tuple(name for name in STEP_COLUMNS if name not in ("step", "asset"))
_TURN_KEY = itemgetter(0)


def _ewma_weight(halflife: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife)


class Market:
    """A multi-asset continuous double-auction market with fixed-rule agents.

    ``Market(config, seed)`` builds the books, the agents and the fundamentals; ``run()`` plays
    ``config.steps`` steps and returns a ``RunResult``; ``step()`` plays one. Scenarios schedule
    interventions with ``at(step, action)`` or call ``pull_market_makers()`` directly. With
    ``record=False`` the market keeps no history (memory flat in the step count) and has no
    ``result()``: for callers that read the market as it stands, such as an environment.
    """

    def __init__(self, config: MarketConfig, seed: int, record: bool = True):
        if config.steps <= 0:
            raise ValueError(f"steps must be positive, got {config.steps}")
        if config.n_assets <= 0:
            raise ValueError(f"n_assets must be positive, got {config.n_assets}")
        if config.population.total <= 0:
            raise ValueError("the population is empty: at least one agent is needed")
        self.config = config  # the rules and regime in force now (interventions replace it)
        self.initial_config = config  # what the run was started with (``RunResult.config``)
        self.interventions: list[dict] = []  # what changed when, in order
        self.seed = seed
        # One child per purpose; a type's child spawns its own (per maker, per purpose). New
        # purposes go at the end, so existing streams keep their numbers.
        (
            fund_seed,
            init_seed,
            maker_seed,
            mom_seed,
            value_seed,
            noise_seed,
            zi_seed,
            regime_seed,
            taker_seed,
            arb_seed,
            learner_seed,
        ) = np.random.SeedSequence(seed).spawn(11)
        # The fundamental of each book (venue books of one asset share one).
        self._fundamental_of = book_fundamentals(config.listings, config.n_assets)
        n_fundamentals = max(self._fundamental_of) + 1
        self._fundamental_draws = PerStep(np.random.default_rng(fund_seed), n_fundamentals, 1, 3)
        # The Cholesky factor mixing the fundamentals' shocks (None: independent, not mixed).
        self._correlation = correlation_factor(config.fundamental_correlation, n_fundamentals)
        n_assets = config.n_assets
        max_activity = config.feedback.max_activity

        # Agent ids: the fixed-rule types in ``AGENT_KINDS`` order (makers first), then the
        # learner slots, so adding a learner renumbers nobody.
        population = config.population
        counts = population.counts()
        ids: dict[str, list[int]] = {}
        kinds: list[str] = []
        for kind in AGENT_KINDS:
            ids[kind] = list(range(len(kinds), len(kinds) + counts[kind]))
            kinds.extend([kind] * counts[kind])
        learner_ids = list(range(len(kinds), len(kinds) + len(population.learners)))
        kinds.extend(population.learners)
        self.agent_kinds = kinds
        self.agent_ids = ids
        # "fixed" for a fixed-rule agent, "learner" for a slot acting through ``act``.
        self.agent_policies = ["fixed"] * (len(kinds) - len(learner_ids)) + ["learner"] * len(
            learner_ids
        )
        n_agents = len(kinds)
        if population.takers:
            check_takers(config.taker)
        if population.arbs and n_assets < 2:
            raise ValueError("arbitrageurs trade pairs: they need at least two assets")
        self.makers = MarketMakers(ids["maker"], n_assets, config.maker, maker_seed)
        self.momentum = MomentumTraders(
            ids["momentum"], n_assets, config.momentum, max_activity, mom_seed
        )
        self.value = ValueTraders(ids["value"], n_assets, config.value, max_activity, value_seed)
        self.noise = NoiseTraders(ids["noise"], n_assets, config.noise, noise_seed)
        self.zi = ZeroIntelligenceTraders(ids["zi"], n_assets, config.zi, zi_seed)
        self.takers = ExecutionTakers(
            ids["taker"], n_assets, config.taker, config.steps, taker_seed
        )
        self.arbs = PairArbitrageurs(ids["arb"], n_assets, config.arb, arb_seed)
        self.learners = LearnerSlots(learner_ids, config, learner_seed)
        # Who is rewarded for what (spec 000): makers for presence, takers for their remaining
        # target, arbitrageurs for unhedged exposure - fixed agents and learners alike.
        self._maker_agents = [i for i, kind in enumerate(kinds) if kind == "maker"]
        self._arb_agents = [i for i, kind in enumerate(kinds) if kind == "arb"]
        self._tasks = self.takers.tasks + list(self.learners.tasks.values())
        params = [config.agent_params(kind) for kind in kinds]
        self.position_limit = [p.position_limit for p in params]
        # Shares each agent owns at the start. ``inventory`` below is the position relative to
        # it (what strategies, limits and PnL use); a short ban looks at endowment + position.
        self.endowment = [p.endowment for p in params]
        # Per-agent weights of each type's own reward terms (see ``cumulative_reward``).
        # Per agent: the weights of its reward terms (inventory, liquidity, delay, unhedged).
        self._reward_weights = [
            (
                p.inventory_penalty,
                config.maker.liquidity_bonus if kind == "maker" else 0.0,
                config.taker.delay_penalty if kind == "taker" else 0.0,
                config.arb.unhedged_penalty if kind == "arb" else 0.0,
            )
            for p, kind in zip(params, kinds, strict=True)
        ]

        # Accounts (Python lists: scalar updates per fill are the hot path).
        self.cash = [0.0] * n_agents
        self.inventory = [[0] * n_agents for _ in range(n_assets)]
        self.open_buy = [[0] * n_agents for _ in range(n_assets)]
        self.open_sell = [[0] * n_agents for _ in range(n_assets)]
        self.agent_trades = [0] * n_agents
        self.agent_rejections = [0] * n_agents
        # Charges per agent, in ticks x shares: taker fees paid, maker rebates received, taxes.
        self.fees_paid = [0.0] * n_agents
        self.rebates_received = [0.0] * n_agents
        self.taxes_paid = [0.0] * n_agents
        # The inventory penalty's running sum, kept lazily: inventory changes only on fills,
        # so each fill adds old_inventory^2 x the steps it was held ("since" = from which step).
        self._inv_sq_sum = [[0] * n_agents for _ in range(n_assets)]
        self._inv_since = [[0] * n_agents for _ in range(n_assets)]
        # Reward terms summed over the steps played: makers' presence (share of books quoted
        # both sides near the mid), takers' |remaining target|, arbitrageurs' sum |inventory|.
        self._presence_sum = [0.0] * n_agents
        self._remaining_sum = [0.0] * n_agents
        self._exposure_sum = [0.0] * n_agents

        self.books = [OrderBook() for _ in range(n_assets)]
        # Live resting orders per asset: order_id -> (is_buy, owner), to keep open qty right.
        self._resting: list[dict[int, tuple[bool, int]]] = [{} for _ in range(n_assets)]
        self._expiries: dict[int, list[tuple[int, int]]] = {}
        self._schedule: dict[int, list[Callable[[Market], None]]] = {}
        # Rejections by cause; book events (submits and cancels) are the hot path's counter,
        # kept as a plain int and merged into ``counters`` when read.
        self._counts = {"rejected_position_limit": 0, "rejected_short_ban": 0}
        self._book_events = 0

        # Fundamentals, and what agents observe.
        f = config.fundamental
        log_p0 = math.log(f.initial_price)
        self.log_fair = [log_p0] * n_fundamentals  # per fundamental, not per book
        self.anchor = [log_p0] * n_fundamentals
        self.views = [MarketView() for _ in range(n_assets)]
        for view in self.views:
            view.mid = view.ema_mid = float(f.initial_price)
            view.log_mid = view.log_fair = log_p0
            view.sigma_fast = view.sigma_slow = f.volatility
        self._price_rules(config.rules)
        self._activity_range = (config.feedback.min_activity, config.feedback.max_activity)
        self._w_fast = _ewma_weight(config.feedback.fast_halflife)
        self._w_slow = _ewma_weight(config.feedback.slow_halflife)
        self._w_ema = _ewma_weight(config.maker.ema_halflife)

        # Records, in chunked numpy columns (``recorder``): memory flat in the step count and a
        # fork that shares the history instead of copying it.
        self.t = 0
        # The log mids the momentum lookbacks reach back to: entry i (the mid after step i - 1,
        # entry 0 the start) lives at ``i % len(ring)``.
        ring = config.momentum.lookback_max + 1
        self._log_mid_ring = [[log_p0] * ring for _ in range(n_assets)]
        self.record = record
        self._steps = Columns(len(_RECORDED), np.float64, record)  # one row per (step, asset)
        # int32 while recorded (ticks, shares, ids and steps all fit), int64 in the result.
        self._trades = Columns(len(TRADE_COLUMNS), np.int32, record)
        # (step, asset, inventory, pnl) per agent and asset; pnl is the whole account's.
        self._agent_samples = Columns(4, np.float64, record)
        self._volume = [0] * n_assets
        self._flow = [0] * n_assets  # signed by the aggressor: order-flow imbalance
        self._n_trades = [0] * n_assets

        # Regimes: a chain only if it can ever be in stress, so default runs draw nothing; set
        # before the initial book, so a run that starts in stress seeds a stressed book.
        check_regimes(config.regimes)
        self.regime = NORMAL
        self._regime_chain = None
        self._normal_regime = (config.fundamental, config.noise)  # restored on leaving stress
        if config.regimes.switching:
            self._regime_chain = RegimeChain(config.regimes, np.random.default_rng(regime_seed))
            if self._regime_chain.state == STRESS:
                self._switch_regime(STRESS)
        self._seed_book(np.random.default_rng(init_seed))
        for task in self._tasks:  # the mid each parent order's shortfall is measured from
            task.arrival_mid = self.views[task.asset].mid

    # ------------------------------------------------------------------ set-up
    def _seed_book(self, rng: np.random.Generator) -> None:
        """Noise traders' deep layer on both sides, so the first step has a book to trade on."""
        p = self.config.noise
        for asset, view in enumerate(self.views):
            for agent_id in self.agent_ids["noise"]:
                for is_buy in (True, False):
                    for _ in range(INITIAL_ORDERS_PER_NOISE_TRADER):
                        offset = p.limit_offset_min + rng.exponential(p.limit_offset_mean_extra)
                        price = round(view.mid - offset) if is_buy else round(view.mid + offset)
                        qty = min(p.size_cap, int(rng.random() ** (-1.0 / p.size_pareto_alpha)))
                        lifetime = int(rng.integers(1, p.order_lifetime + 1))
                        if price > 0:
                            self._place(agent_id, asset, is_buy, qty, price, lifetime, False)
            self._observe(asset)

    # ------------------------------------------------------------------ scheduling
    def at(self, step: int, action: Callable[[Market], None]) -> None:
        """Run ``action(market)`` at the start of ``step`` (before anyone acts)."""
        self._schedule.setdefault(step, []).append(action)

    def pull_market_makers(self) -> None:
        """Every market maker leaves now: its quotes are cancelled and it stops quoting."""
        self._log("pull_market_makers", {})
        for asset, order_id in self.makers.pull():
            self._cancel(asset, order_id)

    def return_market_makers(self) -> None:
        """The market makers come back and quote again from the next decision on."""
        self._log("return_market_makers", {})
        self.makers.active = True

    def set_rules(self, rules: Rules) -> None:
        """Change the market's rules (fees, Tobin tax, short ban) from now on."""
        self._log("set_rules", _changes(self.config.rules, rules))
        self.config = self.config.replace(rules=rules)
        self._price_rules(rules)

    def _price_rules(self, rules: Rules) -> None:
        """Tell every agent what trading costs now, aggressive and resting (fractions)."""
        for view in self.views:
            view.cost = rules.tobin_tax
            view.taker_cost = rules.tobin_tax + rules.taker_fee
            view.maker_cost = rules.tobin_tax - rules.maker_rebate
        # What the order path reads on every order and fill, unpacked once per change.
        self._short_ban = rules.short_ban
        charges = (rules.taker_fee, rules.maker_rebate, rules.tobin_tax)
        self._charges = charges if any(charges) else None

    def set_regime(self, fundamental: FundamentalParams, noise: NoiseParams) -> None:
        """Switch the fundamental's and the noise traders' parameters (e.g. to stress)."""
        self._log(
            "set_regime",
            {
                "fundamental": _changes(self.config.fundamental, fundamental),
                "noise": _changes(self.config.noise, noise),
            },
        )
        self.config = self.config.replace(fundamental=fundamental, noise=noise)
        self.noise.set_params(self.t, noise)

    def scale_noise(self, factor: float) -> None:
        """Scale the noise traders' participation (1 = normal; a drought is well below 1)."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"noise participation factor must be in [0, 1], got {factor}")
        self._log("scale_noise", {"factor": factor})
        self.noise.rate_scale = factor

    def shock_fundamental(self, log_jump: float, asset: int = 0) -> None:
        """Jump the fair value of ``asset`` by ``log_jump`` (e.g. -0.03 for about -3%)."""
        self._log("shock_fundamental", {"log_jump": log_jump, "asset": asset})
        fundamental = self._fundamental_of[asset]  # every venue of the asset moves with it
        self.log_fair[fundamental] += log_jump
        self.anchor[fundamental] += log_jump

    def _switch_regime(self, regime: int) -> None:
        """Enter ``regime`` (the chain's move: recorded per step, not as an intervention).

        Entering stress keeps the parameters in force as the normal ones and applies
        ``stress_regime`` of them; leaving stress restores them. A ``set_regime`` in between
        sets the parameters in force until the chain next switches.
        """
        if regime == STRESS:
            self._normal_regime = (self.config.fundamental, self.config.noise)
            factor = self.config.regimes.stress_factor
            fundamental, noise = stress_regime(self.config, factor)
        else:
            fundamental, noise = self._normal_regime
        self.regime = regime
        for view in self.views:
            view.stressed = regime == STRESS
        self.config = self.config.replace(fundamental=fundamental, noise=noise)
        self.noise.set_params(self.t, noise)

    def _log(self, action: str, changes: dict) -> None:
        self.interventions.append({"step": self.t, "action": action, "changes": changes})

    # ------------------------------------------------------------------ the step
    def step(self) -> None:
        """Play one step of every asset."""
        t = self.t
        if t >= self.config.steps:
            raise RuntimeError("the run is over: all configured steps have been played")
        chain = self._regime_chain
        if chain is not None and t > 0 and chain.advance(t):
            self._switch_regime(chain.state)
        for action in self._schedule.pop(t, ()):
            action(self)
        for asset, order_id in self._expiries.pop(t, ()):
            self._cancel(asset, order_id)

        turns: list = []
        makers, momentum, value, noise, zi = (
            self.makers,
            self.momentum,
            self.value,
            self.noise,
            self.zi,
        )
        for asset, view in enumerate(self.views):
            inventory = self.inventory[asset]
            if makers.ids:
                makers.decide(view, asset, t, inventory, turns)
            if momentum.ids:
                momentum.decide(view, asset, t, self._log_mid_ring[asset], inventory, turns)
            if value.ids:
                value.decide(view, asset, t, inventory, turns)
            if noise.ids:
                noise.decide(view, asset, t, turns)
            if zi.ids:
                zi.decide(view, asset, t, inventory, turns)
        # Types whose one decision spans assets (a taker's asset is its own; an arbitrageur's
        # turn places both legs; a learner's action covers every asset).
        if self.takers.ids:
            self.takers.decide(self.views, t, self.inventory, turns)
        if self.arbs.ids:
            self.arbs.decide(self.views, t, self.inventory, turns)
        if self.learners.ids:
            self.learners.decide(self.views, t, self.inventory, turns)
        # Turns in the order of their random arrival times within the step (each drawn by the
        # acting type), so no type always moves first.
        turns.sort(key=_TURN_KEY)
        play, play_legs = self._play, self._play_legs
        for turn in turns:
            if turn[2] is None:
                play_legs(turn)
            else:
                play(turn)

        self._evolve_fundamentals(t)
        for asset in range(self.config.n_assets):
            self._observe(asset)
            self._record(asset)
        if self._maker_agents:
            self._add_presence()
        for task in self._tasks:
            remaining = task.remaining(self.inventory[task.asset][task.agent_id])
            self._remaining_sum[task.agent_id] += abs(remaining)
        for agent_id in self._arb_agents:
            self._exposure_sum[agent_id] += sum(abs(inv[agent_id]) for inv in self.inventory)
        if self.record and t % self.config.agent_record_interval == 0:
            self._record_agents(t)
        self.t = t + 1
        self._steps.flush_if_full()
        self._trades.flush_if_full()
        self._agent_samples.flush_if_full()

    def fork(self) -> Market:
        """An independent copy of the market as it stands now (books, agents, random streams).

        Playing the copy gives exactly what this market would give from here, so scenarios can
        branch off a shared history instead of replaying it; a copy taken once and forked again
        later is a snapshot to restore. The copy shares the recorded history's finished chunks
        (never written again), so a fork costs O(books + agents), not O(steps played).
        """
        return copy.deepcopy(self)

    def run(self, progress: Callable[[int, int], None] | None = None) -> RunResult:
        """Play all remaining steps and return the run's record (``advance`` plays without)."""
        if not self.record:
            raise RuntimeError("this market keeps no record: play it with advance()")
        self.advance(self.config.steps, progress)
        return self.result()

    def advance(self, until: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Play steps until ``until`` steps have been played (or the run is over)."""
        total = self.config.steps
        until = min(until, total)
        # The step loop makes millions of short-lived objects and no reference cycles, so the
        # cyclic collector would only cost time here.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            while self.t < until:
                self.step()
                if progress is not None and (self.t % 1000 == 0 or self.t == total):
                    progress(self.t, total)
        finally:
            if gc_was_enabled:
                gc.enable()

    # ------------------------------------------------------------------ orders
    def _play(self, turn: tuple) -> None:
        _, agent_id, asset, ops, on_placed = turn
        placed = []
        place = self._place
        for op in ops:
            if op[0] is CANCEL:
                # ``_cancel``, inlined: every turn of a quoting or replacing agent cancels.
                order_id = op[1]
                resting = self._resting[asset].pop(order_id, None)
                if resting is None:  # filled, cancelled or expired already
                    continue
                qty = self.books[asset].cancel(order_id)
                self._book_events += 1
                if qty:
                    if resting[0]:
                        self.open_buy[asset][resting[1]] -= qty
                    else:
                        self.open_sell[asset][resting[1]] -= qty
            else:
                _, is_buy, qty, price, lifetime, post_only = op
                order_id = place(agent_id, asset, is_buy, qty, price, lifetime, post_only)
                if order_id:
                    placed.append((is_buy, order_id))
        if on_placed is not None:
            on_placed(agent_id, asset, placed)

    def _play_legs(self, turn: tuple) -> None:
        """A turn spanning assets: its ``(asset, op)`` legs back to back, nobody in between."""
        _, agent_id, _, legs, on_placed = turn
        placed = []
        place, cancel = self._place, self._cancel
        for asset, op in legs:
            if op[0] is CANCEL:
                cancel(asset, op[1])
            else:
                _, is_buy, qty, price, lifetime, post_only = op
                order_id = place(agent_id, asset, is_buy, qty, price, lifetime, post_only)
                if order_id:
                    placed.append((asset, is_buy, order_id))
        if on_placed is not None:
            on_placed(agent_id, placed)

    def _place(self, agent_id, asset, is_buy, qty, price, lifetime, post_only) -> int:
        """Check, submit and settle one order; return its id if a remainder rests, else 0."""
        inv = self.inventory[asset][agent_id]
        if is_buy:
            open_side = self.open_buy[asset]
            room = self.position_limit[agent_id] - inv - open_side[agent_id]
        else:
            open_side = self.open_sell[asset]
            room = self.position_limit[agent_id] + inv - open_side[agent_id]
            if self._short_ban and self.endowment[agent_id] + inv - open_side[agent_id] < qty:
                self._counts["rejected_short_ban"] += 1
                self.agent_rejections[agent_id] += 1
                return 0
        if room <= 0:
            self._counts["rejected_position_limit"] += 1
            self.agent_rejections[agent_id] += 1
            return 0
        if qty > room:
            qty = room
        book = self.books[asset]
        if post_only and price is not None:
            # Post-only: a quote that would cross is moved one tick behind the opposite best.
            if is_buy:
                best = book.best_ask()
                if best is not None and price >= best:
                    price = best - 1
            else:
                best = book.best_bid()
                if best is not None and price <= best:
                    price = best + 1
            if price <= 0:
                return 0
        order_id, trades = book.submit_fast(is_buy, qty, price, agent_id)
        self._book_events += 1
        if trades:
            qty -= self._settle(asset, trades, is_buy)
        if price is None or qty == 0:
            return 0
        open_side[agent_id] += qty
        self._resting[asset][order_id] = (is_buy, agent_id)
        if lifetime:
            self._expiries.setdefault(self.t + lifetime, []).append((asset, order_id))
        return order_id

    def _cancel(self, asset: int, order_id: int) -> None:
        resting = self._resting[asset].pop(order_id, None)
        if resting is None:  # filled, cancelled or expired already
            return
        is_buy, owner = resting
        qty = self.books[asset].cancel(order_id)
        self._book_events += 1
        if qty:
            if is_buy:
                self.open_buy[asset][owner] -= qty
            else:
                self.open_sell[asset][owner] -= qty

    def _settle(self, asset: int, trades: list, aggressor_buys: bool) -> int:
        """Book every fill in cash and inventory (with fees and taxes); return the qty filled."""
        charges = self._charges
        if charges:
            taker_fee, rebate, tax = charges
        cash = self.cash
        inventory = self.inventory[asset]
        resting_open = self.open_sell[asset] if aggressor_buys else self.open_buy[asset]
        resting = self._resting[asset]
        live = self.books[asset].live_orders
        agent_trades = self.agent_trades
        log = self._trades.rows
        t = self.t
        sq_sum, since = self._inv_sq_sum[asset], self._inv_since[asset]
        aggressor = 1 if aggressor_buys else -1
        filled = 0
        for trade in trades:
            price, qty, buyer, seller = trade.price, trade.qty, trade.buy_agent, trade.sell_agent
            notional = price * qty
            # The inventory each side held until now counts for every step since it changed.
            held = inventory[buyer]
            sq_sum[buyer] += held * held * (t - since[buyer])
            since[buyer] = t
            held = inventory[seller]
            sq_sum[seller] += held * held * (t - since[seller])
            since[seller] = t
            cash[buyer] -= notional
            cash[seller] += notional
            inventory[buyer] += qty
            inventory[seller] -= qty
            if aggressor_buys:
                taker, maker, resting_id = buyer, seller, trade.sell_order_id
            else:
                taker, maker, resting_id = seller, buyer, trade.buy_order_id
            resting_open[maker] -= qty
            if resting_id not in live:  # filled in full
                resting.pop(resting_id, None)
            if charges:
                cash[taker] -= (taker_fee + tax) * notional
                cash[maker] += (rebate - tax) * notional
                self.fees_paid[taker] += taker_fee * notional
                self.rebates_received[maker] += rebate * notional
                self.taxes_paid[taker] += tax * notional
                self.taxes_paid[maker] += tax * notional
            agent_trades[buyer] += 1
            agent_trades[seller] += 1
            log.append((t, asset, price, qty, buyer, seller, aggressor))
            filled += qty
        self._volume[asset] += filled
        self._flow[asset] += aggressor * filled
        self._n_trades[asset] += len(trades)
        return filled

    # ------------------------------------------------------------------ state
    def _evolve_fundamentals(self, t: int) -> None:
        f = self.config.fundamental
        draws = self._fundamental_draws
        n_fundamentals = len(self.log_fair)
        rows = [draws.at(t, fundamental) for fundamental in range(n_fundamentals)]
        if self._correlation is not None:
            # Correlated assets: the same standard normals, mixed by the Cholesky factor.
            anchors = mix(self._correlation, [row[1] for row in rows])
            shocks = mix(self._correlation, [row[2] for row in rows])
            rows = [(row[0], a, s, row[3]) for row, a, s in zip(rows, anchors, shocks, strict=True)]
        for fundamental in range(n_fundamentals):
            # Every number is drawn each step, so the fundamental path never depends on the
            # market (a regime change scales the same shocks).
            jump_u, anchor_shock, shock, jump = rows[fundamental]
            self.anchor[fundamental] += f.anchor_volatility * anchor_shock
            x = self.log_fair[fundamental]
            x += f.mean_reversion * (self.anchor[fundamental] - x) + f.volatility * shock
            if jump_u < f.jump_probability:
                x += f.jump_size * jump
            self.log_fair[fundamental] = x

    def _observe(self, asset: int) -> None:
        """Refresh what agents see of ``asset``: quotes, mid, volatility, activity."""
        view = self.views[asset]
        book = self.books[asset]
        bid, ask = book.best_bid(), book.best_ask()
        view.best_bid, view.best_ask = bid, ask
        if bid is not None and ask is not None:
            mid = 0.5 * (bid + ask)
            log_mid = math.log(mid)
            ret = abs(log_mid - view.log_mid)
            view.mid, view.log_mid = mid, log_mid
        else:
            ret = 0.0  # a one-sided book keeps the last mid
        view.sigma_fast += self._w_fast * (ret - view.sigma_fast)
        view.sigma_slow += self._w_slow * (ret - view.sigma_slow)
        low, high = self._activity_range
        ratio = view.sigma_fast / view.sigma_slow if view.sigma_slow > 0 else 1.0
        view.activity = min(high, max(low, ratio))
        view.ema_mid += self._w_ema * (view.mid - view.ema_mid)
        view.log_fair = self.log_fair[self._fundamental_of[asset]]

    def _add_presence(self) -> None:
        """Each maker's presence this step: the share of books it quotes on both sides within
        ``presence_ticks`` of the mid (spec 000's liquidity bonus pays for this, not for being
        in the market: a maker quoting nothing, or far away, earns none)."""
        distance = self.config.maker.presence_ticks
        n_assets = len(self.books)
        fixed = self.makers.member_of
        learners = self.learners
        lives = [book.live_orders for book in self.books]
        for agent_id in self._maker_agents:
            member = fixed.get(agent_id)
            if member is not None:
                quotes = self.makers.quotes[member]
            else:
                quotes = learners.quotes[learners.slot_of[agent_id]]
            present = 0
            for (bid_id, ask_id), live, view in zip(quotes, lives, self.views, strict=True):
                if not bid_id or not ask_id:
                    continue
                bid, ask = live.get(bid_id), live.get(ask_id)  # entries: [qty, id, agent, price]
                if bid is not None and ask is not None and view.mid - bid[3] <= distance:
                    present += ask[3] - view.mid <= distance
            if present:
                self._presence_sum[agent_id] += present / n_assets

    def _record(self, asset: int) -> None:
        view = self.views[asset]
        if self.record:
            self._record_row(asset, view)
        view.volume = self._volume[asset]
        view.flow = self._flow[asset]
        self._volume[asset] = 0
        self._flow[asset] = 0
        self._n_trades[asset] = 0
        ring = self._log_mid_ring[asset]
        ring[(self.t + 1) % len(ring)] = view.log_mid

    def _record_row(self, asset: int, view: MarketView) -> None:
        """The step's row of ``asset`` (a market kept without a record skips the depth scans)."""
        book = self.books[asset]
        bid, ask = view.best_bid, view.best_ask
        mid = view.mid
        # Liquidity near the price: quantity within `depth_band` ticks of the mid. (The best
        # N *levels* would not show a crash: they just move out to the deep noise layer.)
        band = self.config.depth_band
        # Only prices up to the best bid (from the best ask) hold quantity, so the scan starts
        # there, and a touch outside the band means no depth at all (a wide book: no scan).
        low, high = math.ceil(mid - band), math.floor(mid)
        bid_depth = (
            0 if bid is None or bid < low else book.quantity_between("buy", low, min(bid, high))
        )
        low, high = math.ceil(mid), math.floor(mid + band)
        ask_depth = (
            0 if ask is None or ask > high else book.quantity_between("sell", max(ask, low), high)
        )
        # One row in ``_RECORDED`` order.
        self._steps.rows.append(
            (
                mid,
                math.nan if bid is None else bid,
                math.nan if ask is None else ask,
                math.nan if bid is None or ask is None else ask - bid,
                math.exp(self.log_fair[self._fundamental_of[asset]]),
                self._volume[asset],
                self._n_trades[asset],
                bid_depth,
                ask_depth,
                len(self.makers.ids) if self.makers.active else 0,
                self.regime,
            )
        )

    @property
    def counters(self) -> dict[str, int]:
        """Book events (orders submitted and cancelled) and rejections by cause, so far."""
        return {"book_events": self._book_events, **self._counts}

    def fair_values(self) -> list[float]:
        """Every book's fair value now, in ticks: for monitors and measures (no agent sees it)."""
        return [math.exp(self.log_fair[fundamental]) for fundamental in self._fundamental_of]

    def mark_to_market(self) -> np.ndarray:
        """Each agent's cash plus inventory valued at the current mids (ticks x shares)."""
        mtm = np.array(self.cash)
        for asset, view in enumerate(self.views):
            mtm += np.array(self.inventory[asset]) * view.mid
        return mtm

    def reward_components(self, agent_ids: list[int] | None = None) -> dict[str, np.ndarray]:
        """Each agent's reward so far, term by term (spec 000), summed over the steps played.

        The per-step reward is the change in mark-to-market PnL plus each type's own terms:
        maker:    dMTM - lambda_inv ||inventory||^2 + lambda_liq presence
        taker:    dMTM - lambda_inv ||inventory||^2 - lambda_delay |remaining target|
        arb:      dMTM - lambda_inv ||inventory||^2 - lambda_unhedged sum |inventory|
        momentum, value: dMTM - lambda_inv ||inventory||^2;  noise, zi: dMTM
        (``REWARD_COMPONENTS``; ``reward`` is their sum). The dMTM terms sum to the current MTM
        (every account starts at 0), inventory changes only on fills (``_settle`` keeps the
        running sum of inventory^2), and the other terms are summed as the steps are played.
        Fees, rebates and taxes are inside dMTM (they move cash) and are listed beside it.
        ``agent_ids`` restricts the arrays to those agents, in that order (default: everyone).
        """
        ids = range(len(self.agent_kinds)) if agent_ids is None else agent_ids
        rows = self.reward_rows(ids)
        columns = zip(*rows, strict=True) if rows else [()] * len(REWARD_NAMES)
        return {
            name: np.array(column, dtype=np.float64)
            for name, column in zip(REWARD_NAMES, columns, strict=True)
        }

    def reward_rows(self, agent_ids) -> list[tuple[float, ...]]:
        """``reward_components`` as one tuple per agent in ``agent_ids`` (``REWARD_NAMES``
        order), for a caller that reads a few agents every step (an environment)."""
        t = self.t
        ids = agent_ids
        weights = self._reward_weights
        mids = [view.mid for view in self.views]
        # Plain Python over the agents asked for: an environment reads a few learners' terms
        # every step, and numpy's per-call overhead would dominate at that size.
        rows = []
        for i in ids:
            inv_sq = 0
            value = self.cash[i]
            for inventory, sq_sum, since, mid in zip(
                self.inventory, self._inv_sq_sum, self._inv_since, mids, strict=True
            ):
                held = inventory[i]
                inv_sq += sq_sum[i] + held * held * (t - since[i])
                value += held * mid
            inv_weight, liq_weight, delay_weight, unhedged_weight = weights[i]
            terms = (
                value,
                -inv_weight * inv_sq,
                liq_weight * self._presence_sum[i],
                -delay_weight * self._remaining_sum[i],
                -unhedged_weight * self._exposure_sum[i],
            )
            rows.append(
                (
                    *terms,
                    terms[0] + terms[1] + terms[2] + terms[3] + terms[4],
                    self.fees_paid[i],
                    self.rebates_received[i],
                    self.taxes_paid[i],
                )
            )
        return rows

    @property
    def cumulative_reward(self) -> np.ndarray:
        """Each agent's reward summed over the steps played (``reward_components``' sum)."""
        return self.reward_components()["reward"]

    # ------------------------------------------------------------------ learners
    @property
    def learner_names(self) -> list[str]:
        """The learner slots' names (``maker_0``, ``taker_0``, ...), in agent-id order."""
        return list(self.learners.names)

    def learner_id(self, name: str) -> int:
        """The agent id of the learner slot called ``name``."""
        try:
            return self.learners.ids[self.learners.names.index(name)]
        except ValueError:
            raise ValueError(
                f"no learner called {name!r}; this market has {self.learners.names}"
            ) from None

    def act(self, name: str, action: object) -> None:
        """Give the learner ``name`` its typed action (``core.actions``) for the next step."""
        self.learners.act(self.learner_id(name), action)

    def execution_report(self) -> list[dict]:
        """Per execution taker (fixed and learning): target, filled and shortfall so far."""
        report = []
        for task in self._tasks:
            position = self.inventory[task.asset][task.agent_id]
            report.append(
                {
                    "agent": task.agent_id,
                    "asset": task.asset,
                    "style": self.config.taker.style
                    if self.agent_policies[task.agent_id] == "fixed"
                    else "learner",
                    "side": "buy" if task.side > 0 else "sell",
                    "target": task.target,
                    "filled": task.filled(position),
                    "horizon": task.horizon,
                    "arrival_mid": task.arrival_mid,
                    "shortfall_bp": task.shortfall_bp(position, self.cash[task.agent_id]),
                }
            )
        return report

    def _record_agents(self, t: int) -> None:
        """A sample of every agent's inventory in each asset and its mark-to-market PnL (the
        whole account's, cash and every asset, repeated on each of the agent's asset rows)."""
        cash = self.cash
        if len(self.inventory) == 1:
            held = self.inventory[0]
            mid = self.views[0].mid
            rows = [(t, 0, q, c + q * mid) for q, c in zip(held, cash, strict=True)]
        else:
            mids = [view.mid for view in self.views]
            rows = []
            for q, c in zip(zip(*self.inventory, strict=True), cash, strict=True):
                pnl = c + sum(x * m for x, m in zip(q, mids, strict=True))
                rows.extend((t, asset, x, pnl) for asset, x in enumerate(q))
        self._agent_samples.rows.extend(rows)

    # ------------------------------------------------------------------ result
    def recorded_steps(self, start: int = 0) -> dict[str, np.ndarray]:
        """The step table (``RunResult.steps``' columns) of the steps from ``start`` on.

        A live view reads each chunk with this as it is played, at a cost in the chunk's
        length, instead of rebuilding the whole record with ``result()``.
        """
        if not self.record:
            raise RuntimeError("this market keeps no record: build it with record=True")
        start = max(0, min(start, self.t))
        n_assets = self.config.n_assets
        steps = {
            "step": np.repeat(np.arange(start, self.t, dtype=np.int64), n_assets),
            "asset": np.tile(np.arange(n_assets, dtype=np.int64), self.t - start),
        }
        columns = self._steps.columns([STEP_COLUMNS[name] for name in _RECORDED], start * n_assets)
        steps.update(zip(_RECORDED, columns, strict=True))
        return steps

    def result(self) -> RunResult:
        """The record of the steps played so far (``config``: the one the run started with)."""
        steps = self.recorded_steps()
        trades = dict(
            zip(TRADE_COLUMNS, self._trades.columns(list(TRADE_COLUMNS.values())), strict=True)
        )
        n_agents = len(self.agent_kinds)
        inventory = np.sum([np.array(inv) for inv in self.inventory], axis=0)
        rewards = self.reward_components()
        agents = {
            "agent_id": np.arange(n_agents, dtype=np.int64),
            "kind": np.array(self.agent_kinds, dtype=object),
            "policy": np.array(self.agent_policies, dtype=object),
            "cash": np.array(self.cash),
            "inventory": inventory.astype(np.int64),
            "pnl": rewards["mtm"],
            "reward": rewards["reward"],
            **{name: rewards[name] for name in REWARD_COMPONENTS if name != "mtm"},
            "fees_paid": rewards["fees_paid"],
            "rebates_received": rewards["rebates_received"],
            "taxes_paid": rewards["taxes_paid"],
            "n_trades": np.array(self.agent_trades, dtype=np.int64),
            "rejected_orders": np.array(self.agent_rejections, dtype=np.int64),
        }
        n_assets = len(self.inventory)
        positions = {
            "agent_id": np.repeat(np.arange(n_agents, dtype=np.int64), n_assets),
            "asset": np.tile(np.arange(n_assets, dtype=np.int64), n_agents),
            "inventory": np.array(self.inventory, dtype=np.int64).T.reshape(-1),
        }
        sample_step, sample_asset, sample_inventory, sample_pnl = self._agent_samples.columns(
            [np.int64, np.int64, np.int64, np.float64]
        )
        per_sample = np.repeat(np.arange(n_agents, dtype=np.int64), n_assets)
        agent_steps = {
            "step": sample_step,
            "agent_id": np.tile(per_sample, len(sample_step) // max(1, per_sample.size)),
            "asset": sample_asset,
            "inventory": sample_inventory,
            "pnl": sample_pnl,
        }
        assert set(agents) == set(AGENT_COLUMNS) and set(agent_steps) == set(AGENT_STEP_COLUMNS)
        assert set(positions) == set(POSITION_COLUMNS)
        return RunResult(
            config=self.initial_config,
            seed=self.seed,
            steps=steps,
            trades=trades,
            agents=agents,
            agent_steps=agent_steps,
            positions=positions,
            counters=self.counters,
            interventions=copy.deepcopy(self.interventions),
        )


def _changes(old, new) -> dict:
    """The fields of a config dataclass that ``new`` sets differently from ``old``."""
    return {
        f.name: getattr(new, f.name)
        for f in dataclasses.fields(new)
        if getattr(new, f.name) != getattr(old, f.name)
    }


def simulate(
    config: MarketConfig, seed: int, progress: Callable[[int, int], None] | None = None
) -> RunResult:
    """Run ``config`` with ``seed`` from start to end."""
    return Market(config, seed).run(progress)
