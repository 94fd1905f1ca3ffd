"""Validation where data enters: CLI options, app widgets and rows read back from the database.

The core's plain dataclasses are validated by pydantic through ``TypeAdapter``, so every config
is defined once (in ``core/config.py``). Errors become one readable line (``InputError``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from marl_market.core.config import MarketConfig, Population

MIN_RETURNS = 20  # fewer sampled returns than this make the stylised facts meaningless

_CONFIG_ADAPTER = TypeAdapter(MarketConfig)


class InputError(ValueError):
    """Bad user input, with a message fit to show as one line."""


def one_line(error: ValidationError) -> str:
    """Pydantic's errors as one line: ``steps: must be > 0; noise: ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_config(data: dict) -> MarketConfig:
    """A ``MarketConfig`` from a (possibly partial) nested dict, e.g. a stored run's JSON."""
    try:
        return _CONFIG_ADAPTER.validate_python(data, strict=False)
    except ValidationError as error:
        raise InputError(f"invalid config: {one_line(error)}") from None


class SimulateRequest(BaseModel):
    """What ``marlsim simulate`` and the Market page ask for."""

    model_config = ConfigDict(extra="forbid")

    steps: Annotated[int, Field(gt=0, le=10_000_000)] = 10_000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 42
    makers: Annotated[int, Field(ge=0, le=1_000)] = 2
    momentum: Annotated[int, Field(ge=0, le=10_000)] = 4
    value: Annotated[int, Field(ge=0, le=10_000)] = 3
    noise: Annotated[int, Field(ge=0, le=100_000)] = 4
    return_interval: Annotated[int, Field(gt=0)] = 5

    @model_validator(mode="after")
    def _check(self) -> SimulateRequest:
        if self.makers + self.momentum + self.value + self.noise == 0:
            raise ValueError("the population is empty: give at least one agent")
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
        return self

    def to_config(self, base: MarketConfig | None = None) -> MarketConfig:
        base = base or MarketConfig()
        population = Population(
            makers=self.makers, momentum=self.momentum, value=self.value, noise=self.noise
        )
        return base.replace(steps=self.steps, population=population)


def validate_simulate(**options) -> SimulateRequest:
    """``SimulateRequest(**options)``, raising ``InputError`` with one line on bad input."""
    try:
        return SimulateRequest(**options)
    except ValidationError as error:
        raise InputError(one_line(error)) from None
