"""Regimes normal / stress: what stress means, and the Markov chain that switches between them.

``stress_regime`` is the one definition of the stress regime's parameters, used by the
``stress`` scenario (a one-shot switch) and by the chain (``RegimeChain``), which the market
steps at the start of every step when ``MarketConfig.regimes`` lets it switch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from marl_market.core.config import FundamentalParams, MarketConfig, NoiseParams, RegimeParams
from marl_market.core.draws import PerStep

NORMAL, STRESS = 0, 1


def stress_regime(config: MarketConfig, factor: float) -> tuple[FundamentalParams, NoiseParams]:
    """The stress regime's fundamental and noise parameters (spec 000's two regimes)."""
    f, n = config.fundamental, config.noise
    fundamental = dataclasses.replace(f, volatility=f.volatility * factor)
    noise = dataclasses.replace(
        n,
        orders_per_step=n.orders_per_step * 1.5,
        limit_offset_min=n.limit_offset_min * factor,
        limit_offset_mean_extra=n.limit_offset_mean_extra * factor,
        size_cap=int(n.size_cap * factor),
        size_pareto_alpha=max(1.05, n.size_pareto_alpha / factor**0.25),
    )
    return fundamental, noise


def check_regimes(params: RegimeParams) -> None:
    """Raise ``ValueError`` if a probability is outside [0, 1] or the factor below 1."""
    for name in ("leave_normal", "leave_stress", "start_stress"):
        value = getattr(params, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"regimes.{name} must be a probability in [0, 1], got {value}")
    if params.stress_factor < 1.0:
        raise ValueError(f"regimes.stress_factor must be >= 1, got {params.stress_factor}")


class RegimeChain:
    """The regime of every step: drawn at the start, then switched step by step.

    Its draws come from a stream of its own, one uniform at the start and one per step
    whatever the state, so the chain's path is a function of the seed alone and shifts no
    other stream.
    """

    def __init__(self, params: RegimeParams, rng: np.random.Generator):
        self.params = params
        self.state = STRESS if rng.random() < params.start_stress else NORMAL
        self._draws = PerStep(rng, 1, 1)

    def advance(self, step: int) -> bool:
        """Move to ``step``'s regime (steps in order, from 1); return whether it changed."""
        u = self._draws.at(step, 0)[0]
        p = self.params
        leave = p.leave_stress if self.state == STRESS else p.leave_normal
        if u < leave:
            self.state = STRESS - self.state
            return True
        return False
