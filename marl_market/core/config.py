"""Configuration dataclasses for a market run.

Plain frozen dataclasses (numpy-free, stdlib only) so the browser build can use them; pydantic
validates them at the boundaries through ``TypeAdapter`` (see ``marl_market.store.records``).
Every behavioural constant of the model lives here, named after the mechanism it drives, so a
user can see - and change - which knob produces which stylised fact (README: "The model").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# The fixed-rule types, in agent-id order (new types go at the end, so ids stay put).
AGENT_KINDS = ("maker", "momentum", "value", "noise", "zi", "taker", "arb")
# The types a learner slot can take (``Population.learners``): a learner of a type is rewarded
# like it and acts through that type's typed action (``core.actions``).
LEARNER_KINDS = ("maker", "taker", "arb", "momentum", "value", "noise")


@dataclass(frozen=True)
class Population:
    """How many agents of each fixed-rule type trade on every asset."""

    makers: int = 2
    momentum: int = 4
    value: int = 3
    noise: int = 4
    zi: int = 0  # zero-intelligence traders (PyMarketSim's background crowd; none by default)
    takers: int = 0  # execution takers working a target quantity (``TakerParams``)
    arbs: int = 0  # pair arbitrageurs (``ArbParams``; need two assets)
    # Learner slots: one type per slot (``LEARNER_KINDS``), their decisions supplied from
    # outside each step (``Market.act``), ids after every fixed agent's.
    learners: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """How many fixed-rule agents of each type (``AGENT_KINDS`` order)."""
        return {
            "maker": self.makers,
            "momentum": self.momentum,
            "value": self.value,
            "noise": self.noise,
            "zi": self.zi,
            "taker": self.takers,
            "arb": self.arbs,
        }

    @property
    def total(self) -> int:
        return sum(self.counts().values()) + len(self.learners)


@dataclass(frozen=True)
class FundamentalParams:
    """The fair value: log F mean-reverts to a slowly drifting anchor, with rare jumps."""

    initial_price: int = 10_000  # ticks; one tick is 1 bp of the starting price
    volatility: float = 2e-4  # per-step sd of log F
    mean_reversion: float = 0.002  # pull of log F towards its anchor per step
    anchor_volatility: float = 5e-5  # per-step sd of the anchor's random walk
    jump_probability: float = 0.0005
    jump_size: float = 0.0025  # sd of a jump in log F


@dataclass(frozen=True)
class VolatilityFeedback:
    """Agents' activity scales with recent volatility relative to its own slow average.

    activity = clip(sigma_fast / sigma_slow, min_activity, max_activity). Normalising by a slow
    average (not a fixed level) lets bursts decay instead of running away: this is what
    produces volatility clustering without bistability.
    """

    fast_halflife: float = 20.0  # steps
    slow_halflife: float = 2_000.0  # steps
    min_activity: float = 0.25
    max_activity: float = 4.0


@dataclass(frozen=True)
class MakerParams:
    """Market makers quote both sides, skew by inventory and withdraw when volatility spikes."""

    base_half_spread_low: float = 0.0  # ticks; each requote draws U(low, high) ...
    base_half_spread_high: float = 1.5
    vol_half_spread: float = 0.3  # ... plus this x sigma_fast (ticks), capped below
    max_vol_half_spread: float = 4.0
    mid_weight: float = 1.0  # quote centre = w * mid + (1 - w) * EMA(mid); < 1 lags the mid
    ema_halflife: float = 20.0
    inventory_skew: float = 0.05  # ticks of centre shift per unit of inventory
    inventory_widening: float = 0.03  # extra half-spread (ticks) per unit of |inventory|
    quote_size: int = 10
    # Skip the requote w.p. min(withdraw_max, max(0, activity - withdraw_threshold)).
    withdraw_threshold: float = 1.5
    withdraw_max: float = 0.6
    position_limit: int = 200
    endowment: int = 50  # shares held at the start (what a short ban lets it sell)
    inventory_penalty: float = 1e-3  # reward: - lambda * inventory^2
    liquidity_bonus: float = 0.1  # reward: + bonus x presence (share of books quoted)
    # Presence on a book: a bid and an ask resting, each within this many ticks of the mid.
    presence_ticks: float = 10.0
    stress_spread_factor: float = 2.0  # half-spread x this while the regime is stress


@dataclass(frozen=True)
class MomentumParams:
    """Momentum traders chase the trend over their own lookback with market orders."""

    lookback_min: int = 10
    lookback_max: int = 200
    act_probability: float = 0.3  # x activity
    signal_scale: float = 1.0  # target = limit * tanh(trend / (scale * sigma * sqrt(lookback)))
    max_order: int = 10
    position_limit: int = 100
    endowment: int = 50  # shares held at the start (what a short ban lets it sell)
    inventory_penalty: float = 1e-4


@dataclass(frozen=True)
class ValueParams:
    """Value traders trade toward their own noisy view of the drifting fair value."""

    view_noise: float = 0.002  # sd of an agent's persistent log-error about fair value
    view_reversion: float = 0.01  # per-step mean reversion of that error
    act_probability: float = 0.5  # x activity
    aggressive_threshold: float = 0.003  # mispricing above this: market orders (30 bp)
    limit_margin: float = 0.001  # a passive order never pays more (gets less) than view -+ 10 bp
    gain: float = 20_000.0  # target position per unit of log mispricing
    limit_lifetime: int = 50  # steps a near-touch limit order rests before it is cancelled
    max_order: int = 20
    position_limit: int = 300
    endowment: int = 100  # shares held at the start (what a short ban lets it sell)
    inventory_penalty: float = 1e-4


@dataclass(frozen=True)
class NoiseParams:
    """Noise traders: a deep book of far limit orders plus random market orders."""

    orders_per_step: float = 1.0  # Poisson rate per agent
    market_order_share: float = 0.2
    limit_offset_min: float = 20.0  # ticks beyond the mid ...
    limit_offset_mean_extra: float = 15.0  # ... plus Exp(mean)
    order_lifetime: int = 200  # steps before an unfilled limit order is cancelled
    size_pareto_alpha: float = 1.4
    size_cap: int = 100
    tax_sensitivity_bp: float = 10.0  # participation x exp(-cost_bp / sensitivity)
    inventory_penalty: float = 0.0  # noise traders' reward is their dMTM alone
    position_limit: int = 300
    endowment: int = 100  # shares held at the start (what a short ban lets it sell)


@dataclass(frozen=True)
class ZIParams:
    """Zero-intelligence traders: on arrival, one 1-unit limit order around a private value."""

    arrival_probability: float = 0.005  # per member and step
    q_max: int = 10  # units of private values held on each side of a flat position
    private_value_sd: float = 224.0  # ticks (PyMarketSim: sqrt(5e6) at a price of 1e5)
    shade_min: float = 50.0  # ticks a member shades its valuation by, U(min, max)
    shade_max: float = 100.0
    position_limit: int = 1_000
    endowment: int = 0
    inventory_penalty: float = 0.0


TAKER_STYLES = ("twap", "pov")


@dataclass(frozen=True)
class TakerParams:
    """Execution takers: buy (even members) or sell (odd) ``target`` shares by ``horizon``.

    Member i works asset i mod n_assets. TWAP sends market orders that keep its fills on a
    straight line to the target at the horizon; POV sends ``pov_rate`` x the asset's last
    step's volume. Both sweep whatever is left on the horizon's last step, so the target is met
    on time if the book can take it. Measured by implementation shortfall against the mid when
    the order arrived (step 0), in basis points.
    """

    target: int = 500  # shares
    horizon: int = 1_000  # steps (capped at the run's length)
    style: str = "twap"  # "twap" | "pov"
    pov_rate: float = 0.1  # POV: share of the last step's volume per step
    max_child: int = 50  # largest market order before the final sweep
    position_limit: int = 10_000
    endowment: int = 0
    inventory_penalty: float = 0.0  # reward: - lambda * inventory^2
    delay_penalty: float = 1e-3  # reward: - lambda * |remaining target| per step


@dataclass(frozen=True)
class ArbParams:
    """Pair arbitrageurs: trade the z-score of the log-price spread of two assets.

    Member i trades the pair (i mod n, (i + 1) mod n) of the n assets. The spread is
    log mid(a) - log mid(b); its mean and variance are exponentially weighted over
    ``halflife`` steps. Above ``entry_z`` it sells a and buys b (below -entry_z the reverse),
    in ``order_size`` lots up to ``max_position`` per leg, both legs in one turn; it closes
    both when |z| falls under ``exit_z``.
    """

    entry_z: float = 2.0
    exit_z: float = 0.5
    halflife: float = 200.0  # steps
    warmup: int = 200  # steps before the first trade (the statistics settle)
    order_size: int = 10
    max_position: int = 50  # shares per leg: the leverage cap
    position_limit: int = 100
    endowment: int = 50
    inventory_penalty: float = 1e-4  # reward: - lambda * inventory^2 (leverage)
    unhedged_penalty: float = 1e-2  # reward: - lambda * sum |inventory| per step


@dataclass(frozen=True)
class Rules:
    """Market rules. Fees and taxes are fractions of traded notional."""

    maker_rebate: float = 0.0  # paid to the resting side
    taker_fee: float = 0.0  # paid by the aggressor
    tobin_tax: float = 0.0  # paid by both sides on every trade (10 bp = 0.001)
    short_ban: bool = False  # reject orders that could take inventory below zero


@dataclass(frozen=True)
class RegimeParams:
    """Normal / stress regimes as a two-state Markov chain (spec 000's two regimes).

    The chain starts in stress with ``start_stress`` and, every later step, leaves the regime it
    is in with that regime's probability. In stress the fundamental and noise parameters are
    ``core.regimes.stress_regime`` of the normal ones with ``stress_factor`` (the ``stress``
    scenario's definition). All zero (the default): never stressed, nothing is drawn.
    """

    leave_normal: float = 0.0  # per-step probability of going from normal to stress
    leave_stress: float = 0.0  # per-step probability of going from stress back to normal
    start_stress: float = 0.0  # probability that the run starts in stress
    stress_factor: float = 3.0

    @property
    def switching(self) -> bool:
        """Whether the chain can ever be in stress (else the market skips it entirely)."""
        return self.leave_normal > 0.0 or self.start_stress > 0.0


@dataclass(frozen=True)
class MarketConfig:
    """Everything that defines a run except the seed."""

    steps: int = 10_000
    n_assets: int = 1
    population: Population = field(default_factory=Population)
    fundamental: FundamentalParams = field(default_factory=FundamentalParams)
    feedback: VolatilityFeedback = field(default_factory=VolatilityFeedback)
    maker: MakerParams = field(default_factory=MakerParams)
    momentum: MomentumParams = field(default_factory=MomentumParams)
    value: ValueParams = field(default_factory=ValueParams)
    noise: NoiseParams = field(default_factory=NoiseParams)
    zi: ZIParams = field(default_factory=ZIParams)
    taker: TakerParams = field(default_factory=TakerParams)
    arb: ArbParams = field(default_factory=ArbParams)
    rules: Rules = field(default_factory=Rules)
    depth_band: int = 5  # ticks from the mid within which the per-step depth is summed
    agent_record_interval: int = 10  # steps between per-agent PnL/inventory samples
    # Correlation matrix of the assets' fundamental shocks (n_assets x n_assets); None: the
    # assets' fundamentals move independently. Checked by ``core.fundamentals``.
    fundamental_correlation: tuple[tuple[float, ...], ...] | None = None
    regimes: RegimeParams = field(default_factory=RegimeParams)
    # The fundamental each book trades, when an asset is listed on several venues (e.g.
    # (0, 0, 1, 1): two assets on two venues, ``core.fundamentals.venue_listings``); None:
    # every book is its own asset. ``n_assets`` counts books; the correlation matrix is over
    # fundamentals.
    listings: tuple[int, ...] | None = None

    def replace(self, **changes) -> MarketConfig:
        return dataclasses.replace(self, **changes)

    def agent_params(self, kind: str):
        """The parameters of one agent type (``kind`` from ``AGENT_KINDS``)."""
        return {
            "maker": self.maker,
            "momentum": self.momentum,
            "value": self.value,
            "noise": self.noise,
            "zi": self.zi,
            "taker": self.taker,
            "arb": self.arb,
        }[kind]


def config_to_dict(config: MarketConfig) -> dict:
    """A JSON-ready nested dict of ``config`` (tuples as lists, as JSON reads them back)."""
    return _lists(dataclasses.asdict(config))


def _lists(value):
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_lists(item) for item in value]
    return value


def zi_crowd_config(n_agents: int = 500, steps: int = 50_000) -> MarketConfig:
    """PyMarketSim's zero-intelligence workload in our market: ``n_agents`` ZI traders alone.

    PyMarketSim's ``SimulatorSampledArrival(num_background_agents=500, sim_time=50000,
    lam=0.005, q_max=10, pv_var=5e6, shade=[500, 1000])`` at a price of 1e5, scaled to our
    10,000-tick price (private values sd 224 ticks, shade 50-100 ticks). Agents are sampled every
    1,000 steps (PyMarketSim records none).
    """
    return MarketConfig(
        steps=steps,
        population=Population(makers=0, momentum=0, value=0, noise=0, zi=n_agents),
        agent_record_interval=1_000,
    )
