"""Validation where data enters: CLI options, app widgets and rows read back from the database.

The core's plain dataclasses are validated by pydantic through ``TypeAdapter``, so every config
is defined once (in ``core/config.py``). Errors become one readable line (``InputError``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from marl_market.core.config import (
    TAKER_STYLES,
    MarketConfig,
    RegimeParams,
    TakerParams,
)
from marl_market.core.fundamentals import correlation_factor, venue_listings
from marl_market.core.scenarios import SCENARIO_KINDS

MIN_RETURNS = 20  # fewer sampled returns than this make the stylised facts meaningless
MAX_BOOKS = 50  # assets x venues: every book is simulated and recorded every step

_CONFIG_ADAPTER = TypeAdapter(MarketConfig)


class InputError(ValueError):
    """Bad user input, with a message fit to show as one line."""


def one_line(error: ValidationError) -> str:
    """Pydantic's errors as one line in our words: ``assets: must be greater than or equal to
    1 (got 0); noise: ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if message.startswith("Input should be"):  # a bound or type check: say what was given
            message = "must be" + message.removeprefix("Input should be")
            if "input" in item and not isinstance(item["input"], dict | list):
                message += f" (got {item['input']!r})"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_config(data: dict) -> MarketConfig:
    """A ``MarketConfig`` from a (possibly partial) nested dict, e.g. a stored run's JSON."""
    try:
        return _CONFIG_ADAPTER.validate_python(data, strict=False)
    except ValidationError as error:
        raise InputError(f"invalid config: {one_line(error)}") from None


class MarketRequest(BaseModel):
    """The options every simulating request shares: run length, seed and population."""

    model_config = ConfigDict(extra="forbid")

    steps: Annotated[int, Field(gt=0, le=10_000_000)] = 10_000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 42
    makers: Annotated[int, Field(ge=0, le=1_000)] = 2
    momentum: Annotated[int, Field(ge=0, le=10_000)] = 4
    value: Annotated[int, Field(ge=0, le=10_000)] = 3
    noise: Annotated[int, Field(ge=0, le=100_000)] = 4

    @model_validator(mode="after")
    def _check_population(self) -> MarketRequest:
        if self.makers + self.momentum + self.value + self.noise == 0:
            raise ValueError("the population is empty: give at least one agent")
        return self

    def to_config(self, base: MarketConfig | None = None) -> MarketConfig:
        base = base or MarketConfig()
        # The base's other members (takers, arbitrageurs, learners) stay: a scenario over a
        # multi-asset market keeps the market's whole population.
        population = dataclasses.replace(
            base.population,
            makers=self.makers,
            momentum=self.momentum,
            value=self.value,
            noise=self.noise,
        )
        return base.replace(steps=self.steps, population=population)


class SimulateRequest(MarketRequest):
    """What ``marlsim simulate`` and the Market page ask for."""

    return_interval: Annotated[int, Field(gt=0)] = 5
    assets: Annotated[int, Field(ge=1, le=MAX_BOOKS)] = 1
    # Venues each asset is listed on: a book per (asset, venue), the venues of one asset sharing
    # its fundamental (``core.fundamentals.venue_listings``), so arbitrageurs can trade across
    # venues. 1 (the default) is the market without venues, with the same run ID.
    venues: Annotated[int, Field(ge=1, le=MAX_BOOKS)] = 1
    # One off-diagonal correlation of the assets' fundamental shocks, or a whole matrix. A
    # correlation of 0 is the same market as none (independent fundamentals) and is stored as
    # none, so the app's slider at 0 and ``--correlation 0`` find the run without it.
    correlation: Annotated[float, Field(gt=-1.0, lt=1.0)] | None = None
    correlation_matrix: list[list[float]] | None = None
    regime_switch: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0  # P(leave the regime) a step
    # The venue's charges, as fractions of traded notional (0.0002 = 2 bp).
    maker_rebate: float = 0.0  # paid to the resting side
    taker_fee: float = 0.0  # paid by the aggressor
    # Execution takers (``TakerParams``) and pair arbitrageurs (``ArbParams``).
    takers: Annotated[int, Field(ge=0, le=100)] = 0
    taker_target: Annotated[int, Field(gt=0, le=TakerParams().position_limit)] = (
        TakerParams().target
    )
    taker_style: str = TakerParams().style
    taker_horizon: Annotated[int, Field(gt=0, le=10_000_000)] = TakerParams().horizon
    arbs: Annotated[int, Field(ge=0, le=100)] = 0

    def to_config(self, base: MarketConfig | None = None) -> MarketConfig:
        config = super().to_config(base)
        regimes = RegimeParams(leave_normal=self.regime_switch, leave_stress=self.regime_switch)
        population = dataclasses.replace(config.population, takers=self.takers, arbs=self.arbs)
        rules = dataclasses.replace(
            config.rules, maker_rebate=self.maker_rebate, taker_fee=self.taker_fee
        )
        taker = config.taker
        if self.takers:
            # Only a run with takers carries their settings: without takers they change
            # nothing, and the same market keeps the same run ID.
            taker = dataclasses.replace(
                taker,
                target=self.taker_target,
                style=self.taker_style,
                horizon=self.taker_horizon,
            )
        return config.replace(
            n_assets=self.books,
            listings=venue_listings(self.assets, self.venues) if self.venues > 1 else None,
            fundamental_correlation=self.fundamental_correlation(),
            regimes=regimes,
            population=population,
            rules=rules,
            taker=taker,
        )

    @property
    def books(self) -> int:
        """The market's order books: one per asset and venue."""
        return self.assets * self.venues

    def fundamental_correlation(self) -> tuple[tuple[float, ...], ...] | None:
        """The configured matrix over the assets' fundamentals (not their venues' books): the
        file's, or ``correlation`` off the diagonal, or None."""
        if self.correlation_matrix is not None:
            return tuple(tuple(float(x) for x in row) for row in self.correlation_matrix)
        if self.correlation is None or self.assets == 1:
            return None
        n, rho = self.assets, self.correlation
        return tuple(tuple(1.0 if i == j else rho for j in range(n)) for i in range(n))

    @model_validator(mode="after")
    def _check(self) -> SimulateRequest:
        if self.correlation is not None and self.correlation_matrix is not None:
            raise ValueError("give --correlation or --correlation-matrix, not both")
        if self.correlation == 0.0:
            self.correlation = None  # independent fundamentals: the same run as no correlation
        # The engine's own check (square, symmetric, unit diagonal, PSD), one clear line.
        correlation_factor(self.fundamental_correlation(), self.assets)
        if self.return_interval >= self.steps:
            raise ValueError(
                f"return interval {self.return_interval} is not smaller than the run "
                f"({self.steps} steps)"
            )
        if self.steps // self.return_interval < MIN_RETURNS:
            raise ValueError(
                f"{self.steps} steps sampled every {self.return_interval} give fewer than "
                f"{MIN_RETURNS} returns: use more steps or a shorter return interval"
            )
        for name in ("maker_rebate", "taker_fee"):
            fee = getattr(self, name)
            if not 0.0 <= fee < 1.0:  # NaN fails too
                raise ValueError(
                    f"{name.replace('_', ' ')} must be a fraction of notional in [0, 1), "
                    f"e.g. 0.0002 for 2 bp; got {fee:g}"
                )
        if self.taker_style not in TAKER_STYLES:
            raise ValueError(
                f"taker style must be one of {', '.join(TAKER_STYLES)}, got {self.taker_style!r}"
            )
        if self.books > MAX_BOOKS:
            raise ValueError(
                f"{self.assets} asset(s) on {self.venues} venue(s) make {self.books} books; a "
                f"market has at most {MAX_BOOKS}"
            )
        if self.arbs and self.books < 2:
            raise ValueError(
                f"arbitrageurs trade pairs of books: --arbs {self.arbs} needs --assets 2 or "
                "more, or --venues 2 or more (got one asset on one venue)"
            )
        return self


def validate_simulate(**options) -> SimulateRequest:
    """``SimulateRequest(**options)``, raising ``InputError`` with one line on bad input."""
    try:
        return SimulateRequest(**options)
    except ValidationError as error:
        raise InputError(one_line(error)) from None


SCENARIO_CHOICES = (*SCENARIO_KINDS, "compare")


class ScenarioRequest(MarketRequest):
    """What ``marlsim scenario`` and the Scenarios page ask for."""

    kind: str
    steps: Annotated[int, Field(gt=0, le=10_000_000)] = 5_000
    seeds: int | None = None  # default: 20 for compare, 1 for a single scenario
    pull_at: int | None = None
    return_at: int | None = None
    tax_bp: float = 10.0
    workers: int | None = None

    @model_validator(mode="after")
    def _check(self) -> ScenarioRequest:
        if self.kind not in SCENARIO_CHOICES:
            raise ValueError(
                f"unknown kind {self.kind!r}: choose from {', '.join(SCENARIO_CHOICES)}"
            )
        if self.seeds is None:
            self.seeds = 20 if self.kind == "compare" else 1
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.seed + self.seeds > 2**63:
            raise ValueError("seed + seeds is too large")
        if self.steps < 100:
            raise ValueError(f"a scenario needs at least 100 steps, got {self.steps}")
        pull = self.steps // 2 if self.pull_at is None else self.pull_at
        if not 0 < pull < self.steps:
            raise ValueError(f"pull step {pull} is not inside the run (1..{self.steps - 1} steps)")
        if self.return_at is not None:
            if self.return_at <= pull:
                raise ValueError(f"return step {self.return_at} is not after the pull ({pull})")
            if self.return_at > self.steps:
                raise ValueError(f"return step {self.return_at} is beyond the run ({self.steps})")
        if not 0 <= self.tax_bp <= 10_000:
            raise ValueError(f"the Tobin tax must be between 0 and 10000 bp, got {self.tax_bp}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        return self

    @property
    def kinds(self) -> list[str]:
        return list(SCENARIO_CHOICES[:-1]) if self.kind == "compare" else [self.kind]

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))


def validate_scenario(**options) -> ScenarioRequest:
    """``ScenarioRequest(**options)``, raising ``InputError`` with one line on bad input."""
    try:
        return ScenarioRequest(**options)
    except ValidationError as error:
        raise InputError(one_line(error)) from None
