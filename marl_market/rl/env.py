"""The liquidity game as a PettingZoo ``ParallelEnv`` (DESIGN.md §3, **contract**).

``parallel_env(**config)`` builds the market of spec 000 with some agent types learning: each
learner is a slot in the market's own population (``core.learners``), taking its turn in the
same random turn order as the fixed-rule agents, its orders going through the same order path.
Learners are named ``<type>_<index>`` (``maker_0``, ``taker_0``, ``arb_0``).

Observations (``observation_space``): a ``spaces.Dict`` of plain arrays, so training can batch
many graphs itself (building a ``torch_geometric`` object per agent per step costs several
times the network, DESIGN.md §5; ``to_data`` converts one observation for those who want it):
- ``vector``: the agent's own features (``core.observe.MarketObserver.vector_names``);
- ``nodes``: assets x 8 node features (``core.observe.NODE_FEATURES``), shared by all agents;
- ``edge_index``: 2 x E int64, every ordered pair of distinct assets (no self loops);
- ``edge_attr``: E x 1, the configured correlation of the pair's fundamentals (ones if none).

Actions are ``Box(-1, 1)`` vectors mapped onto the typed actions of ``core.actions`` (see
``MarketEnv.action_space``). Rewards are each learner's per-step reward (spec 000: change in
mark-to-market minus inventory penalty plus its type's own term); ``infos[agent]`` holds that
step's change of every reward component (``Market.reward_components``). An episode ends by
truncation after ``episode_steps`` steps. The environment never imports torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_market.core.actions import ArbitrageAction, MakerAction, TakerAction, TraderAction
from marl_market.core.config import LEARNER_KINDS, MarketConfig, Population
from marl_market.core.fundamentals import correlation_factor
from marl_market.core.learners import learner_names
from marl_market.core.market import Market
from marl_market.core.observe import NODE_FEATURES, MarketObserver, vector_size
from marl_market.core.results import REWARD_NAMES

DEFAULT_EPISODE_STEPS = 500


@dataclass(frozen=True)
class EnvConfig:
    """What ``parallel_env`` builds; every field is a keyword of ``parallel_env``.

    Each bad value raises one ``ValueError`` naming the field.
    """

    n_assets: int = 3
    """Books (one asset each), the nodes of the observation graph."""
    learners: tuple[str, ...] = ("maker", "taker", "arb")
    """One learner slot per entry (``LEARNER_KINDS``); named ``<type>_<index>``."""
    population: Population = field(default_factory=Population)
    """The fixed-rule agents (default: the default ``Population``); its ``learners`` must be
    empty (``learners`` above sets them)."""
    correlation: float | None = None
    """One correlation in (-1, 1) of every pair of fundamentals (None: independent)."""
    correlation_matrix: tuple[tuple[float, ...], ...] | None = None
    """A whole n_assets x n_assets correlation matrix instead of ``correlation``."""
    regime_switch: float = 0.0
    """Per-step probability of leaving the current regime (normal <-> stress); above 0 the
    episode also starts in stress with probability 1/2 (the chain's stationary share)."""
    maker_rebate: float = 0.0
    """Paid to the resting side of every trade, a fraction of notional."""
    taker_fee: float = 0.0
    """Paid by the aggressor of every trade, a fraction of notional."""
    episode_steps: int = DEFAULT_EPISODE_STEPS
    """Market steps per episode (each ``step`` plays one)."""
    record: bool = False
    """Keep the market's history (needed by ``store_episode``); off, memory stays flat."""
    base: MarketConfig = field(default_factory=MarketConfig)
    """Every other market parameter (agents' rules, reward weights, fundamentals)."""

    def __post_init__(self) -> None:
        _check_int("n_assets", self.n_assets, 1)
        _check_int("episode_steps", self.episode_steps, 1)
        if isinstance(self.learners, str) or not isinstance(self.learners, Sequence):
            raise ValueError(f"learners must be a sequence of types, got {self.learners!r}")
        object.__setattr__(self, "learners", tuple(self.learners))
        if not self.learners:
            raise ValueError("learners is empty: an environment needs at least one learner")
        for kind in self.learners:
            if kind not in LEARNER_KINDS:
                raise ValueError(
                    f"learners: unknown type {kind!r}; choose from {', '.join(LEARNER_KINDS)}"
                )
        if "arb" in self.learners and self.n_assets < 2:
            raise ValueError("learners: an arbitrageur trades a pair, so n_assets must be >= 2")
        if not isinstance(self.population, Population):
            raise ValueError(f"population must be a Population, got {self.population!r}")
        if self.population.learners:
            raise ValueError("population.learners must be empty: give learner types as learners")
        if self.population.arbs and self.n_assets < 2:
            raise ValueError("population: arbitrageurs trade pairs, so n_assets must be >= 2")
        if self.correlation is not None and self.correlation_matrix is not None:
            raise ValueError("give correlation or correlation_matrix, not both")
        if self.correlation is not None and not (
            _is_number(self.correlation) and -1.0 < self.correlation < 1.0
        ):
            raise ValueError(f"correlation must be a number in (-1, 1), got {self.correlation!r}")
        if self.correlation_matrix is not None:
            try:
                matrix = tuple(tuple(float(x) for x in row) for row in self.correlation_matrix)
            except (TypeError, ValueError):
                raise ValueError(
                    "correlation_matrix must be a square matrix of numbers (a list of rows)"
                ) from None
            object.__setattr__(self, "correlation_matrix", matrix)
        try:
            correlation_factor(self.fundamental_correlation, self.n_assets)
        except ValueError as error:
            given = "correlation_matrix" if self.correlation_matrix is not None else "correlation"
            raise ValueError(str(error).replace("fundamental_correlation", given)) from None
        if not (_is_number(self.regime_switch) and 0.0 <= self.regime_switch <= 1.0):
            raise ValueError(
                f"regime_switch must be a probability in [0, 1], got {self.regime_switch!r}"
            )
        for name in ("maker_rebate", "taker_fee"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
        if not isinstance(self.record, bool):
            raise ValueError(f"record must be True or False, got {self.record!r}")
        if not isinstance(self.base, MarketConfig):
            raise ValueError(f"base must be a MarketConfig, got {self.base!r}")

    @property
    def fundamental_correlation(self) -> tuple[tuple[float, ...], ...] | None:
        """The correlation matrix of the assets' fundamentals (None: independent)."""
        if self.correlation_matrix is not None:
            return self.correlation_matrix
        if self.correlation is None or self.n_assets == 1:
            return None
        n, rho = self.n_assets, float(self.correlation)
        return tuple(tuple(1.0 if i == j else rho for j in range(n)) for i in range(n))

    def market_config(self) -> MarketConfig:
        """The ``MarketConfig`` of one episode."""
        base = self.base
        p = float(self.regime_switch)
        regimes = dataclasses.replace(
            base.regimes,
            leave_normal=p,
            leave_stress=p,
            start_stress=0.5 if p > 0 else base.regimes.start_stress,
        )
        rules = dataclasses.replace(
            base.rules, maker_rebate=float(self.maker_rebate), taker_fee=float(self.taker_fee)
        )
        return base.replace(
            steps=self.episode_steps,
            n_assets=self.n_assets,
            population=dataclasses.replace(self.population, learners=self.learners),
            fundamental_correlation=self.fundamental_correlation,
            regimes=regimes,
            rules=rules,
        )


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def market_env(market: MarketConfig, learners: Sequence[str], record: bool = True) -> MarketEnv:
    """An environment over exactly ``market`` (a market built elsewhere, e.g. the Market page's
    sidebar, with its fees, regimes and traders) plus one learner slot per ``learners`` entry;
    an episode is ``market.steps`` long. A trained policy plays a user's market through it.

    Markets with venues (``market.listings``) are refused: the observation graph has a node
    per asset, and a policy trained on it knows nothing of venues.
    """
    if market.listings is not None:
        raise ValueError("a trained policy plays on a market without venues (one book per asset)")
    fixed = dataclasses.replace(market.population, learners=())
    config = EnvConfig(
        n_assets=market.n_assets,
        learners=tuple(learners),
        population=fixed,
        correlation_matrix=market.fundamental_correlation,
        episode_steps=market.steps,
        record=record,
        base=market,
    )
    population = dataclasses.replace(fixed, learners=config.learners)
    return MarketEnv(config, market=market.replace(population=population))


def parallel_env(**config) -> MarketEnv:
    """The liquidity game as a PettingZoo ``ParallelEnv``; keywords are ``EnvConfig``'s fields.

    An unknown keyword or a bad value raises one ``ValueError``.
    """
    known = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return MarketEnv(EnvConfig(**config))


class MarketEnv(ParallelEnv):
    """The multi-asset liquidity game with learner slots (see the module docstring)."""

    metadata = {"name": "marl_market_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: EnvConfig | None = None, market: MarketConfig | None = None) -> None:
        """``market``, if given, is the episodes' whole ``MarketConfig`` in place of the one
        ``config`` builds (see ``market_env``); ``config`` still names the learners."""
        self.config = config if config is not None else EnvConfig()
        self.market_config = market if market is not None else self.config.market_config()
        self.possible_agents = learner_names(self.config.learners)
        self.agents: list[str] = []
        self.render_mode = None
        self.market: Market | None = None
        self._kinds = dict(zip(self.possible_agents, self.config.learners, strict=True))
        n = self.config.n_assets
        # The graph's edges never change: every ordered pair of distinct assets.
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        self._edge_index = _frozen(np.array(pairs, dtype=np.int64).reshape(-1, 2).T.copy())
        matrix = self.config.fundamental_correlation
        attr = [[matrix[i][j] if matrix is not None else 1.0] for i, j in pairs]
        self._edge_attr = _frozen(np.array(attr, dtype=np.float32).reshape(-1, 1))
        self._seeds = np.random.SeedSequence()  # replaced by reset(seed=...)
        c = self.market_config
        # The size caps the core clips to (``core.learners``): a size of +1 asks for the cap.
        self._caps = {
            "maker": 5 * c.maker.quote_size,
            "taker": c.taker.max_child,
            "arb": 5 * c.arb.order_size,
            "momentum": c.momentum.max_order,
            "value": c.value.max_order,
            "noise": c.noise.size_cap,
        }

    @property
    def edge_index(self) -> np.ndarray:
        """The graph's edges (2 x E, read-only): fixed by the config, the same every step."""
        return self._edge_index

    @property
    def edge_attr(self) -> np.ndarray:
        """The edges' attributes (E x 1, read-only): the configured correlations, or ones."""
        return self._edge_attr

    # ------------------------------------------------------------------ spaces
    @functools.cache  # noqa: B019 - lru_cache(maxsize=None): one space object per agent
    def observation_space(self, agent: str) -> spaces.Dict:
        """The agent's observation: ``vector``, ``nodes``, ``edge_index``, ``edge_attr``."""
        self._check_agent(agent)
        n = self.config.n_assets
        n_edges = n * (n - 1)
        return spaces.Dict(
            {
                "vector": spaces.Box(-np.inf, np.inf, (vector_size(n),), np.float32),
                "nodes": spaces.Box(-np.inf, np.inf, (n, len(NODE_FEATURES)), np.float32),
                "edge_index": spaces.Box(0, max(0, n - 1), (2, n_edges), np.int64),
                "edge_attr": spaces.Box(-1.0, 1.0, (n_edges, 1), np.float32),
            }
        )

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Box:
        """``Box(-1, 1)``, mapped onto the agent type's typed action (``core.actions``).

        Below, ``u(a) = (a + 1) / 2`` maps [-1, 1] onto [0, 1]; sizes round ``u(a) x cap`` to
        whole shares, the cap being the core's limit for the type; n is the number of assets.
        - maker (3n): bid offsets, ask offsets, sizes per asset -> ``MakerAction``: offset
          ``0.5 + u(a) x 19.5`` ticks from the mid, size ``u(a) x 5 x quote_size`` (0 withdraws
          from that book; all sizes at -1 with nothing resting places nothing).
        - taker (2): direction, size -> ``TakerAction``: direction above 1/3 buys, below -1/3
          sells, else waits; size ``u(a) x max_child``.
        - arb (3): direction, close, size -> ``ArbitrageAction``: direction as the taker's
          (buy the pair's first asset and sell the second, or the reverse), close > 0 flattens
          both legs instead, size ``u(a) x 5 x order_size`` per leg.
        - momentum, value, noise (3n): aggressiveness, direction, size per asset ->
          ``TraderAction``: aggressiveness ``u(a)`` (1 = market order, less rests a limit order
          behind the touch), direction as the taker's, size ``u(a) x`` the type's max order.
        Values outside [-1, 1] are clipped; zero for a taker, arbitrageur or trader is
        "do nothing" (inside the dead zone).
        """
        self._check_agent(agent)
        kind = self._kinds[agent]
        n = self.config.n_assets
        size = {"taker": 2, "arb": 3}.get(kind, 3 * n)
        return spaces.Box(-1.0, 1.0, (size,), np.float32)

    def _check_agent(self, agent: str) -> None:
        if agent not in self._kinds:
            raise ValueError(f"no agent {agent!r}; this environment has {self.possible_agents}")

    # ------------------------------------------------------------------ episode
    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, dict], dict[str, dict]]:
        """Start an episode: a fresh market seeded by ``seed`` (else the next seed of the
        environment's own sequence, itself seeded by the last ``reset(seed=...)``).

        Returns (observations, infos); ``options`` is accepted and unused.
        """
        if seed is not None:
            self._seeds = np.random.SeedSequence(seed)
            market_seed = int(seed)
        else:
            (child,) = self._seeds.spawn(1)
            market_seed = int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))
        self.market = Market(self.market_config, market_seed, record=self.config.record)
        self._observer = MarketObserver(self.market)
        self.agents = list(self.possible_agents)
        self._ids = [self.market.learner_id(name) for name in self.agents]
        self._last = self.market.reward_rows(self._ids)
        empty = dict.fromkeys(REWARD_NAMES, 0.0)
        return self._observe(), {agent: dict(empty) for agent in self.agents}

    def step(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict, dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict]]:
        """Play one market step with the learners' ``actions`` (an agent left out does
        nothing this step); return (observations, rewards, terminations, truncations, infos).

        The last step of the episode truncates every agent and empties ``agents``.
        """
        if not self.agents:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        market = self.market
        for agent, action in actions.items():
            market.act(agent, self.typed_action(agent, action))
        market.step()
        now = market.reward_rows(self._ids)
        # This step's change of every component, one dict per learner, in plain floats.
        names = REWARD_NAMES
        infos = {
            agent: {name: a - b for name, a, b in zip(names, new, old, strict=True)}
            for agent, new, old in zip(self.agents, now, self._last, strict=True)
        }
        self._last = now
        rewards = {agent: info["reward"] for agent, info in infos.items()}
        observations = self._observe()
        done = market.t >= self.config.episode_steps
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def typed_action(self, agent: str, action: np.ndarray) -> object:
        """The ``core.actions`` action a ``Box`` action stands for (see ``action_space``)."""
        kind = self._kinds.get(agent)
        if kind is None:
            raise ValueError(f"no agent {agent!r}; this environment has {self.possible_agents}")
        shape = self.action_space(agent).shape
        a = np.asarray(action)
        if a.shape != shape:
            raise ValueError(f"{agent}'s action must have shape {shape}, got {a.shape}")
        # Clipped to [-1, 1] and mapped to [0, 1]; NaN (a diverged policy) counts as 0, "do
        # nothing", rather than trading at a clipped edge. Plain floats: a handful per agent.
        u = [
            0.5 if x != x else 0.0 if x < -1.0 else 1.0 if x > 1.0 else 0.5 * (x + 1.0)
            for x in a.tolist()
        ]
        cap = self._caps[kind]
        if kind == "taker":
            return TakerAction(direction=2.0 * u[0] - 1.0, size=round(u[1] * cap))
        if kind == "arb":
            return ArbitrageAction(
                direction=2.0 * u[0] - 1.0, close=u[1] > 0.5, size=round(u[2] * cap)
            )
        n = self.config.n_assets
        first, second, third = u[:n], u[n : 2 * n], u[2 * n :]
        sizes = tuple(round(x * cap) for x in third)
        if kind == "maker":
            return MakerAction(
                bid_offset=tuple(0.5 + 19.5 * x for x in first),
                ask_offset=tuple(0.5 + 19.5 * x for x in second),
                size=sizes,
            )
        return TraderAction(
            aggressiveness=tuple(first),
            direction=tuple(2.0 * x - 1.0 for x in second),
            size=sizes,
        )

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        nodes, columns = self._observer.nodes()
        nodes.flags.writeable = False  # one array shared by every agent's observation
        vectors = self._observer.vectors(self._ids, columns)
        return {
            agent: {
                "vector": vector,
                "nodes": nodes,
                "edge_index": self._edge_index,
                "edge_attr": self._edge_attr,
            }
            for agent, vector in zip(self.agents, vectors, strict=True)
        }

    def render(self) -> None:
        """Nothing to render: the app's pages and ``store_episode`` show an episode."""
        return None

    def close(self) -> None:
        """Nothing to release (the market lives in this process)."""
        return None


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def to_data(observation: Mapping[str, np.ndarray]):
    """One observation as a ``torch_geometric.data.Data``: ``x`` (the nodes), ``edge_index``,
    ``edge_attr`` and ``vector`` (1 x its length, so batching stacks agents' vectors).

    Imports torch here, not at module import: the environment itself never needs it.
    """
    import torch
    from torch_geometric.data import Data

    return Data(
        x=torch.as_tensor(np.array(observation["nodes"], dtype=np.float32)),
        edge_index=torch.as_tensor(np.array(observation["edge_index"], dtype=np.int64)),
        edge_attr=torch.as_tensor(np.array(observation["edge_attr"], dtype=np.float32)),
        vector=torch.as_tensor(np.array(observation["vector"], dtype=np.float32)).reshape(1, -1),
    )
