"""Configuration dataclasses for a market run.

Plain frozen dataclasses (numpy-free, stdlib only) so the browser build can use them; pydantic
validates them at the boundaries through ``TypeAdapter`` (see ``marl_market.store.records``).
Every behavioural constant of the model lives here, named after the mechanism it drives, so a
user can see - and change - which knob produces which stylised fact (README: "The model").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

AGENT_KINDS = ("maker", "momentum", "value", "noise", "zi")


@dataclass(frozen=True)
class Population:
    """How many agents of each fixed-rule type trade on every asset."""

    makers: int = 2
    momentum: int = 4
    value: int = 3
    noise: int = 4
    zi: int = 0  # zero-intelligence traders (PyMarketSim's background crowd; none by default)

    def counts(self) -> dict[str, int]:
        return {
            "maker": self.makers,
            "momentum": self.momentum,
            "value": self.value,
            "noise": self.noise,
            "zi": self.zi,
        }

    @property
    def total(self) -> int:
        return self.makers + self.momentum + self.value + self.noise + self.zi


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
    liquidity_bonus: float = 0.1  # reward: + bonus per step quoting both sides


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
    rules: Rules = field(default_factory=Rules)
    depth_band: int = 5  # ticks from the mid within which the per-step depth is summed
    agent_record_interval: int = 10  # steps between per-agent PnL/inventory samples
    # Correlation matrix of the assets' fundamental shocks (n_assets x n_assets); None: the
    # assets' fundamentals move independently. Checked by ``core.fundamentals``.
    fundamental_correlation: tuple[tuple[float, ...], ...] | None = None
    regimes: RegimeParams = field(default_factory=RegimeParams)

    def replace(self, **changes) -> MarketConfig:
        return dataclasses.replace(self, **changes)

    def agent_params(
        self, kind: str
    ) -> MakerParams | MomentumParams | ValueParams | NoiseParams | ZIParams:
        """The parameters of one agent type (``kind`` from ``AGENT_KINDS``)."""
        return {
            "maker": self.maker,
            "momentum": self.momentum,
            "value": self.value,
            "noise": self.noise,
            "zi": self.zi,
        }[kind]


def config_to_dict(config: MarketConfig) -> dict:
    """A JSON-ready nested dict of ``config``."""
    return dataclasses.asdict(config)


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
