"""Random draws whose count never depends on the market state (common random numbers).

A scenario run and its baseline must share every random number the intervention does not
itself change. That holds only if each stream draws the same *number* of values whatever the
market does, so every stream here draws a fixed amount per step (or per arrival of an
arrival process that ignores the market), in blocks of ``BLOCK_STEPS`` steps: one numpy call per
block instead of several per step, which is also what makes a step cheap.

- ``Arrivals``: a Poisson superposition of a type's members at a *fixed* rate per member and
  step. A type whose activity follows the market thins it (keeps a candidate with probability
  rate_now / rate_max, from the candidate's own uniform), so the candidates - who, when, and all
  their numbers - are the same in both runs.
- ``PerStep``: a fixed number of uniforms (and standard normals) per step and asset, for
  streams that draw every step (each maker, the fundamental).
- ``GeometricArrivals``: members arriving independently with a probability per step (the
  zero-intelligence crowd), as per-member geometric gaps: work per step is proportional to the
  arrivals, not to the members.
"""

from __future__ import annotations

import copy

import numpy as np

BLOCK_STEPS = 1024  # steps drawn per numpy call (fixed: the block layout is part of the stream)


class _Stream:
    """A draw stream whose copy shares its drawn blocks (never mutated, only replaced) and
    deep-copies its generator and ``_private`` state: a fork costs O(1), not O(block)."""

    _private: tuple[str, ...] = ()

    def __deepcopy__(self, memo: dict):
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(self.__dict__)
        new.rng = copy.deepcopy(self.rng, memo)
        for name in self._private:
            setattr(new, name, copy.deepcopy(getattr(self, name), memo))
        return new


class Arrivals(_Stream):
    """Poisson(n_members x rate) candidates per step and asset, each to a uniform member.

    ``at(step, asset)`` returns the step's candidates as tuples ``(member, u_1, ..., u_k,
    x_1, ..., x_m)``: ``uniforms`` uniforms on [0, 1), then ``normals`` standard normals and
    ``exponentials`` standard exponentials. Steps must be asked for in order (each step once per
    asset, any number of times). ``set_rate`` changes the rate from a step on (an intervention that
    itself changes this stream).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        n_members: int,
        rate: float,
        n_assets: int,
        uniforms: int,
        normals: int = 0,
        exponentials: int = 0,
    ):
        self.rng = rng
        self.n_members = n_members
        self.rate = rate
        self.n_assets = n_assets
        self.shape = (uniforms, normals, exponentials)
        self._start = 0  # first step of the current block
        self._end = 0  # first step after it (0: nothing drawn yet)
        self._offsets: list[int] = []
        self._rows: list[tuple] = []

    def set_rate(self, step: int, rate: float) -> None:
        """Use ``rate`` from ``step`` on (the rest of the current block is redrawn)."""
        self.rate = rate
        self._draw(step)

    def at(self, step: int, asset: int) -> list[tuple]:
        if step >= self._end or step < self._start:
            self._draw(step)
        i = (step - self._start) * self.n_assets + asset
        offsets = self._offsets
        return self._rows[offsets[i] : offsets[i + 1]]

    def _draw(self, start: int) -> None:
        self._start, self._end = start, start + BLOCK_STEPS
        n_cells = BLOCK_STEPS * self.n_assets
        if self.n_members == 0 or self.rate <= 0.0:
            self._offsets, self._rows = [0] * (n_cells + 1), []
            return
        rng = self.rng
        counts = rng.poisson(self.n_members * self.rate, n_cells)
        offsets = np.zeros(n_cells + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        uniforms, normals, exponentials = self.shape
        columns = [rng.integers(0, self.n_members, total).tolist()]
        if uniforms:
            columns.extend(rng.random((uniforms, total)).tolist())
        if normals:
            columns.extend(rng.standard_normal((normals, total)).tolist())
        if exponentials:
            columns.extend(rng.standard_exponential((exponentials, total)).tolist())
        self._offsets = offsets.tolist()
        self._rows = list(zip(*columns, strict=True)) if total else []


class PerStep(_Stream):
    """``uniforms`` uniforms then ``normals`` standard normals per step and asset, always."""

    def __init__(self, rng: np.random.Generator, n_assets: int, uniforms: int, normals: int = 0):
        self.rng = rng
        self.n_assets = n_assets
        self.uniforms = uniforms
        self.normals = normals
        self._start = 0
        self._end = 0
        self._rows: list[list[float]] = []

    def at(self, step: int, asset: int) -> list[float]:
        """The numbers of ``step`` for ``asset``: a function of the step alone.

        Blocks are drawn in order, each once, even when no step of a block is asked for (a
        maker away from the market): so what a step gets never depends on which steps came
        before. Steps never go backwards.
        """
        if step >= self._end:
            while step >= self._end:
                self._start, self._end = self._end, self._end + BLOCK_STEPS
                shape = (BLOCK_STEPS * self.n_assets,)
                parts = []
                if self.uniforms:
                    parts.append(self.rng.random(shape + (self.uniforms,)))
                if self.normals:
                    parts.append(self.rng.standard_normal(shape + (self.normals,)))
                block = np.concatenate(parts, axis=1)
            self._rows = block.tolist()
        elif step < self._start:
            raise ValueError(f"step {step} is before the current block ({self._start})")
        return self._rows[(step - self._start) * self.n_assets + asset]


class GeometricArrivals(_Stream):
    """Members that each arrive with probability ``p`` per step, independently (per asset).

    Every member's next arrival is its last plus a Geometric(p) gap (its first: a gap minus one,
    so a member may arrive at step 0), so ``due(step, asset)`` costs O(arrivals). Gaps come from
    one stream in arrival order, which the market cannot change.
    """

    _private = ("_due",)

    def __init__(self, rng: np.random.Generator, n_members: int, p: float, n_assets: int):
        self.rng = rng
        self.p = p
        self._gaps: list[int] = []
        self._next_gap = 0
        self._due: list[dict[int, list[int]]] = [{} for _ in range(n_assets)]
        if n_members and p > 0.0:
            for schedule in self._due:
                for member in range(n_members):
                    schedule.setdefault(self._gap() - 1, []).append(member)

    def _gap(self) -> int:
        if self._next_gap >= len(self._gaps):
            self._gaps = self.rng.geometric(self.p, 4096).tolist()
            self._next_gap = 0
        gap = self._gaps[self._next_gap]
        self._next_gap += 1
        return gap

    def due(self, step: int, asset: int) -> list[int]:
        """The members arriving at ``step`` on ``asset`` (and schedule their next arrival)."""
        schedule = self._due[asset]
        members = schedule.pop(step, None)
        if not members:
            return []
        gaps, i = self._gaps, self._next_gap
        for member in members:
            if i >= len(gaps):
                gaps = self._gaps = self.rng.geometric(self.p, 4096).tolist()
                i = 0
            at = step + gaps[i]
            i += 1
            later = schedule.get(at)
            if later is None:
                schedule[at] = [member]
            else:
                later.append(member)
        self._next_gap = i
        return members


class UniformRows(_Stream):
    """Rows of ``width`` uniforms, one row per call, drawn 4,096 rows at a time."""

    def __init__(self, rng: np.random.Generator, width: int):
        self.rng = rng
        self.width = width
        self._rows: list[list[float]] = []
        self._next = 0
        self._drawn = 0  # rows handed out before the current block

    def next(self) -> list[float]:
        if self._next >= len(self._rows):
            self._drawn += len(self._rows)
            self._rows = self.rng.random((4096, self.width)).tolist()
            self._next = 0
        row = self._rows[self._next]
        self._next += 1
        return row


def turn_key_streams(seed: np.random.SeedSequence, n_members: int) -> list[PerStep]:
    """One stream per member drawing one number per step, its turn key, acted or not: the
    members of a type whose decision is one turn a step (takers, arbitrageurs, learners)."""
    return [PerStep(np.random.default_rng(child), 1, 1) for child in seed.spawn(n_members)]
