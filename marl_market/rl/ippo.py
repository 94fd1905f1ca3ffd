"""Independent PPO on the liquidity game: one policy per learning type, shared by its agents.

Every learning type (maker, taker, arb, momentum, value, noise) has one ``ActorCritic`` whose
parameters its agents share (their transitions are folded into one batch); everyone else, fixed
or learning, is part of a non-stationary environment. An iteration plays whole episodes (so no
market state crosses iterations: a checkpoint between iterations resumes exactly), then runs one
PPO update per type (``ppo.ppo_update``).

Seeds: training episode k of a run with seed s is played with market seed
``TRAIN_SEED_BASE + (s mod 1000) x 10^6 + k``, a range evaluation seeds (small integers) never
reach, so a policy is never evaluated on a market it trained on (``is_training_seed``).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from marl_market.rl.env import MarketEnv, parallel_env
from marl_market.rl.nets import ENCODERS, ActorCritic, make_encoder
from marl_market.rl.ppo import (
    PPOConfig,
    Rollout,
    RunningNorm,
    annealed,
    compute_gae,
    ppo_update,
)

TRAIN_SEED_BASE = 1_000_000_000
EPISODES_PER_SEED_BLOCK = 1_000_000


def training_seed(run_seed: int, episode: int) -> int:
    """The market seed of training episode ``episode`` of a run seeded ``run_seed``."""
    return TRAIN_SEED_BASE + (run_seed % 1000) * EPISODES_PER_SEED_BLOCK + episode


def is_training_seed(seed: int) -> bool:
    """Whether ``seed`` lies in the range training episodes are played with."""
    return seed >= TRAIN_SEED_BASE


@dataclass(frozen=True)
class TrainConfig:
    """A training run: which types learn, the encoder, the market, PPO's settings."""

    learners: tuple[str, ...] = ("maker",)
    """One learner slot per entry; each distinct type gets one shared policy."""
    encoder: str = "mlp"
    """``mlp`` (vector only), ``sage`` (GraphSAGE over the asset graph) or ``gat``."""
    n_assets: int = 1
    iterations: int = 100
    """PPO updates (each after ``episodes_per_iteration`` fresh episodes)."""
    episode_steps: int = 500
    episodes_per_iteration: int = 8
    """Whole episodes per iteration (PPO's batch: episodes x episode_steps x agents rows)."""
    num_envs: int = 4
    """Episodes a rollout group plays side by side, one batched forward per type per step
    across them (more amortise torch's per-call cost). The iteration's episodes are split into
    groups of this many, each with its own action generator; groups are what run in parallel
    processes, so this setting changes results, the number of processes never does."""
    hidden: int = 64
    seed: int = 42
    norm_obs: bool = True
    """Normalise the vector and node features by running statistics (kept in checkpoints)."""
    norm_reward: bool = True
    """Scale rewards by the running std of the discounted return (CleanRL's NormalizeReward)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    env: dict = field(default_factory=dict)
    """Other ``parallel_env`` keywords (correlation, regime_switch, maker_rebate, ...)."""

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}: choose from {', '.join(ENCODERS)}")
        for name in ("iterations", "episode_steps", "episodes_per_iteration", "num_envs", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        reserved = {"learners", "n_assets", "episode_steps"} & set(self.env)
        if reserved:
            raise ValueError(f"set {', '.join(sorted(reserved))} on the TrainConfig, not in env")
        self.make_env()  # every environment setting checked now, with its own message

    @property
    def types(self) -> list[str]:
        """The learning types, in first-seen order."""
        return list(dict.fromkeys(self.learners))

    def make_env(self) -> MarketEnv:
        return parallel_env(
            learners=self.learners,
            n_assets=self.n_assets,
            episode_steps=self.episode_steps,
            **self.env,
        )

    def to_dict(self) -> dict:
        """JSON-ready (what a run ID hashes)."""
        data = asdict(self)
        data["learners"] = list(self.learners)
        return data


class TypePolicy:
    """One learning type's policy, optimiser and normalisers."""

    def __init__(self, kind: str, agents: list[str], env: MarketEnv, config: TrainConfig):
        self.kind = kind
        self.agents = agents
        space = env.observation_space(agents[0])
        vector_dim = space["vector"].shape[0]
        node_dim = space["nodes"].shape[1]
        action_dim = env.action_space(agents[0]).shape[0]
        self.net = ActorCritic(
            make_encoder(config.encoder, vector_dim, node_dim, config.hidden), action_dim
        )
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.ppo.learning_rate, eps=1e-5
        )
        self.vector_norm = RunningNorm((vector_dim,))
        self.node_norm = RunningNorm((node_dim,))
        self.reward_norm = RunningNorm(())

    def state_dict(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "vector_norm": self.vector_norm.state_dict(),
            "node_norm": self.node_norm.state_dict(),
            "reward_norm": self.reward_norm.state_dict(),
        }

    def acting_state(self) -> dict:
        """What a rollout group in another process acts with: the weights and observation
        normalisers, as numpy arrays (a pipe carries them bit for bit)."""
        return {
            "net": {name: t.detach().numpy().copy() for name, t in self.net.state_dict().items()},
            "vector_norm": self.vector_norm.state_dict(),
            "node_norm": self.node_norm.state_dict(),
        }

    def load_acting_state(self, state: dict) -> None:
        self.net.load_state_dict({name: torch.from_numpy(a) for name, a in state["net"].items()})
        self.vector_norm.load_state_dict(state["vector_norm"])
        self.node_norm.load_state_dict(state["node_norm"])

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name in ("vector_norm", "node_norm", "reward_norm"):
            norm_state = {k: np.asarray(v) for k, v in state[name].items()}
            getattr(self, name).load_state_dict(norm_state)


def observation_batch(
    policy: TypePolicy, observations: dict, normalise: bool, update: bool
) -> dict[str, np.ndarray]:
    """The type's agents' observations stacked (agents first), normalised if asked."""
    rows = [observations[agent] for agent in policy.agents]
    vectors = np.stack([row["vector"] for row in rows]).astype(np.float64)
    nodes = np.stack([row["nodes"] for row in rows]).astype(np.float64)
    if normalise:
        if update:
            policy.vector_norm.update(vectors)
            policy.node_norm.update(nodes[0])  # every agent sees the same nodes
        vectors = policy.vector_norm.normalise(vectors)
        nodes = policy.node_norm.normalise(nodes)
    return {
        "vector": vectors.astype(np.float32),
        "nodes": nodes.astype(np.float32),
        "edge_attr": np.stack([row["edge_attr"] for row in rows]).astype(np.float32),
        "edge_index": rows[0]["edge_index"],
    }


def as_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        "vector": torch.as_tensor(batch["vector"]),
        "nodes": torch.as_tensor(batch["nodes"]),
        "edge_attr": torch.as_tensor(batch["edge_attr"]),
        "shared_edge_index": torch.tensor(np.array(batch["edge_index"]), dtype=torch.int64),
    }


class MarketMonitor:
    """Market-level health during training, per asset: rising private rewards can come with a
    degrading market (wider spreads, more kurtosis, prices far from fair value).

    Each episode's series are kept apart (returns never span two episodes) and pooled in
    ``summary``.
    """

    RETURN_INTERVAL = 5

    def __init__(self, n_assets: int):
        self.n_assets = n_assets
        self.episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add_episode(self, mids: np.ndarray, fairs: np.ndarray, spreads: np.ndarray) -> None:
        """One episode's (steps x assets) mids, fair values and spreads."""
        self.episodes.append((mids, fairs, spreads))

    def summary(self) -> dict[str, list[float]]:
        returns = np.concatenate(
            [np.diff(np.log(mids[:: self.RETURN_INTERVAL]), axis=0) for mids, _, _ in self.episodes]
        )
        spreads = np.concatenate([spreads for _, _, spreads in self.episodes])
        errors = np.concatenate([mids - fairs for mids, fairs, _ in self.episodes])
        out: dict[str, list[float]] = {
            "mean_spread": [],
            "volatility": [],
            "excess_kurtosis": [],
            "tracking_error": [],
        }
        for asset in range(self.n_assets):
            r = returns[:, asset]
            sd = float(r.std()) if r.size > 1 else math.nan
            kurt = float(((r - r.mean()) ** 4).mean() / sd**4 - 3.0) if sd and sd > 0 else math.nan
            out["mean_spread"].append(float(np.nanmean(spreads[:, asset])))
            out["volatility"].append(sd)
            out["excess_kurtosis"].append(kurt)
            out["tracking_error"].append(float(np.sqrt(np.mean(errors[:, asset] ** 2))))
        return out


class EnvSlots:
    """The markets of a rollout group: training episodes stepped side by side.

    ``step`` takes one action dict per episode and returns the learners' vectors, the nodes and
    the rewards as three arrays, episodes first; reward components and the market monitor's
    series are summed and kept here until ``finish`` (they are logged, never learned from), so
    a step sends back only what the policies need.
    """

    def __init__(self, config: TrainConfig, count: int):
        self.envs = [config.make_env() for _ in range(count)]
        self.agents = list(self.envs[0].possible_agents)
        self.active: list[MarketEnv] = []
        self._collector_was_on = False  # whether ``reset`` paused the garbage collector

    def reset(self, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if len(seeds) > len(self.envs):
            raise ValueError(f"{len(seeds)} episodes for {len(self.envs)} environments")
        self.active = self.envs[: len(seeds)]
        # The cyclic garbage collector pauses for the wave, as ``Market.advance`` pauses it for
        # a run: a market step makes thousands of short-lived objects and no cycles, and the
        # collector's passes cost a third of a step here. ``finish`` turns it back on.
        self._collector_was_on = gc.isenabled() or self._collector_was_on
        gc.disable()
        frames = [env.reset(seed=seed)[0] for env, seed in zip(self.active, seeds, strict=False)]
        self.components = [{agent: {} for agent in self.agents} for _ in self.active]
        self.series: list[list[tuple]] = [[] for _ in self.active]
        return self._pack(frames)

    def _pack(self, frames: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        agents = self.agents
        vectors = np.array([[frame[a]["vector"] for a in agents] for frame in frames])
        nodes = np.array([frame[agents[0]]["nodes"] for frame in frames])
        return vectors, nodes

    def step(self, actions: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frames, rewards = [], []
        for env, action, components, series in zip(
            self.active, actions, self.components, self.series, strict=True
        ):
            observations, reward, _, _, infos = env.step(action)
            frames.append(observations)
            rewards.append([reward[agent] for agent in self.agents])
            for agent, info in infos.items():
                totals = components[agent]
                for name, amount in info.items():
                    totals[name] = totals.get(name, 0.0) + amount
            market = env.market
            views = market.views
            series.append(
                (
                    [view.mid for view in views],
                    market.fair_values(),
                    [
                        math.nan
                        if v.best_bid is None or v.best_ask is None
                        else v.best_ask - v.best_bid
                        for v in views
                    ],
                )
            )
        if frames[0]:
            vectors, nodes = self._pack(frames)
        else:  # the episode's last step: no observation follows it
            vectors = nodes = np.zeros(0)
        return vectors, nodes, np.array(rewards, dtype=np.float64)

    def finish(self) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """Per episode: every agent's summed reward components, and the monitor's series."""
        if self._collector_was_on:
            gc.enable()
            self._collector_was_on = False
        series = [
            tuple(np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
            for rows in self.series
        ]
        return self.components, series


@dataclass
class GroupResult:
    """What a rollout group played: per type, step-major arrays (steps, the group's rows, ...)
    whose rows are its episodes' agents (episode first); every agent's raw rewards; the
    reward components and market series that are logged, never learned from."""

    samples: dict[str, dict[str, np.ndarray]]
    """Per type: ``vector`` and ``nodes`` as the policy saw them (normalised, float32),
    ``raw_vector`` and ``raw_nodes`` (one graph per episode) for the run's normalisers,
    ``actions``, ``logprobs`` and ``values``."""
    rewards: np.ndarray
    """(steps, episodes, agents): every agent's raw reward."""
    components: list[dict]
    series: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


class RolloutGroup:
    """Up to ``num_envs`` training episodes played side by side in one process, acting by
    itself: per step, one batched forward per type over every episode's agents.

    A group is the unit of parallel work. What it plays depends only on the policies as the
    iteration found them, its episodes' seeds and its action seed (a torch generator of its
    own), so the process it runs in, and how many there are, never changes a result. It acts
    with private copies of the observation normalisers, updated step by step as it plays; the
    run's own normalisers learn its raw observations after the iteration.
    """

    SAMPLE_KEYS = ("vector", "nodes", "raw_vector", "raw_nodes", "actions", "logprobs", "values")

    def __init__(self, config: TrainConfig):
        self.config = config
        self.slots = EnvSlots(config, config.num_envs)
        self.agents = self.slots.agents
        env = self.slots.envs[0]  # the graph's edges are the config's: the same in every episode
        self.edge_index = torch.as_tensor(np.array(env.edge_index), dtype=torch.int64)
        self.edge_attr = torch.as_tensor(np.array(env.edge_attr, dtype=np.float32))

    def play(
        self, policies: dict[str, TypePolicy], seeds: list[int], action_seed: int
    ) -> GroupResult:
        config = self.config
        n = len(seeds)
        generator = torch.Generator().manual_seed(action_seed)
        acting = {
            kind: (
                policy,
                [self.agents.index(a) for a in policy.agents],
                copy.deepcopy(policy.vector_norm),
                copy.deepcopy(policy.node_norm),
            )
            for kind, policy in policies.items()
        }
        record = {kind: {key: [] for key in self.SAMPLE_KEYS} for kind in policies}
        rewards = []
        vectors, nodes = self.slots.reset(seeds)
        for _ in range(config.episode_steps):
            actions: list[dict] = [{} for _ in range(n)]
            for kind, (policy, columns, vector_norm, node_norm) in acting.items():
                raw_vector = vectors[:, columns].reshape(n * len(columns), -1)
                vector, node = _normalised(
                    vector_norm, node_norm, raw_vector, nodes, len(columns), config.norm_obs
                )
                rows = vector.shape[0]
                tensors = {
                    "vector": torch.from_numpy(vector),
                    "nodes": torch.from_numpy(node),
                    "edge_attr": self.edge_attr.expand(rows, *self.edge_attr.shape),
                    "shared_edge_index": self.edge_index,
                }
                with torch.no_grad():
                    action, logprob, value = policy.net.act(tensors, generator)
                action = action.numpy()
                per_env = action.reshape(n, len(columns), -1)
                for env_actions, env_rows in zip(actions, per_env, strict=True):
                    env_actions.update(zip(policy.agents, env_rows, strict=True))
                buf = record[kind]
                buf["vector"].append(vector)
                buf["nodes"].append(node)
                buf["raw_vector"].append(raw_vector)
                buf["raw_nodes"].append(nodes)
                buf["actions"].append(action)
                buf["logprobs"].append(logprob.numpy())
                buf["values"].append(value.numpy())
            vectors, nodes, reward = self.slots.step(actions)
            rewards.append(reward)
        components, series = self.slots.finish()
        samples = {
            kind: {key: np.stack(items) for key, items in buf.items()}
            for kind, buf in record.items()
        }
        return GroupResult(samples, np.stack(rewards), components, series)


def _group_worker(connection, config: TrainConfig) -> None:
    """A worker process: plays the rollout groups it is sent with the weights sent beside them."""
    # Ctrl-C (or the Train page's Stop) reaches the whole process group: the trainer handles
    # it and closes the pool, so a worker ignores it rather than print a traceback mid-step.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    group = RolloutGroup(config)
    policies = new_state(config).policies  # the networks' shapes; the weights come with a job
    while True:
        try:
            command, payload = connection.recv()
        except EOFError:  # the trainer is gone without saying close
            return
        if command == "close":
            connection.close()
            return
        try:
            weights, jobs = payload
            for kind, acting_state in weights.items():
                policies[kind].load_acting_state(acting_state)
            reply = [group.play(policies, seeds, action_seed) for seeds, action_seed in jobs]
        except Exception as error:  # sent back: the trainer raises it with the worker's message
            reply = RuntimeError(f"training worker failed: {error!r}")
        connection.send(reply)


class RolloutPool:
    """Rollout groups played in ``processes`` processes, this one included: it plays its share
    while the workers play theirs, so no market step waits for a network or a pipe.

    Job ``j`` (a group) goes to process ``j mod processes``, this one being process 0; results
    come back in job order, and do not depend on where they were played.
    """

    def __init__(self, config: TrainConfig, processes: int = 1):
        self.processes = rollout_processes(config, processes)
        if self.processes > 1 and "fork" not in mp.get_all_start_methods():
            self.processes = 1  # no fork (Windows, macOS spawn only): play everything here
        self.local = RolloutGroup(config)
        self.agents = self.local.agents
        self.remotes = []
        self.workers = []
        self._busy = False  # a job is out with the workers
        context = mp.get_context("fork") if self.processes > 1 else None
        for _ in range(self.processes - 1):
            parent, child = context.Pipe()
            process = context.Process(target=_group_worker, args=(child, config), daemon=True)
            process.start()
            child.close()
            self.remotes.append(parent)
            self.workers.append(process)

    def play(
        self, policies: dict[str, TypePolicy], jobs: list[tuple[list[int], int]]
    ) -> list[GroupResult]:
        """Play every job (episode seeds, action seed); their results, in job order."""
        shares = [jobs[p :: self.processes] for p in range(self.processes)]
        if any(shares[1:]):
            weights = {kind: policy.acting_state() for kind, policy in policies.items()}
            self._busy = True
            for connection, share in zip(self.remotes, shares[1:], strict=True):
                if share:
                    connection.send(("play", (weights, share)))
        played = [[self.local.play(policies, seeds, s) for seeds, s in shares[0]]]
        for connection, share in zip(self.remotes, shares[1:], strict=True):
            reply = connection.recv() if share else []
            if isinstance(reply, Exception):
                raise reply
            played.append(reply)
        self._busy = False
        results: list[GroupResult] = [None] * len(jobs)  # type: ignore[list-item]
        for p, share in enumerate(played):
            for k, result in enumerate(share):
                results[p + k * self.processes] = result
        return results

    def close(self) -> None:
        """Stop the workers: politely between jobs; at once if one was cut short (Ctrl-C, an
        error), since its half-played groups are thrown away anyway."""
        for process, connection in zip(self.workers, self.remotes, strict=True):
            if self._busy:
                process.terminate()
            else:
                with contextlib.suppress(OSError):
                    connection.send(("close", ()))
            connection.close()
        for process in self.workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        self.remotes, self.workers = [], []


@dataclass
class TrainState:
    """Everything a run needs to continue: policies, generator, iteration, logs so far."""

    config: TrainConfig
    policies: dict[str, TypePolicy]
    generator: torch.Generator
    iteration: int = 0
    logs: list[dict] = field(default_factory=list)

    def checkpoint(self) -> dict:
        """The state as a checkpoint (``rl.checkpoint.save_checkpoint`` writes it)."""
        return {
            "iteration": self.iteration,
            "config": self.config.to_dict(),
            "policies": {kind: policy.state_dict() for kind, policy in self.policies.items()},
            "torch_rng": self.generator.get_state(),
        }


def new_state(config: TrainConfig) -> TrainState:
    """A fresh run: policies initialised from the run's seed."""
    env = config.make_env()
    policies = {}
    # The layers draw their initial weights from torch's global generator (torch_geometric's
    # convolutions give no other way): seed it inside a fork, so the caller's global random
    # state is the same afterwards and nothing else's draws move.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for kind in config.types:
            agents = [name for name in env.possible_agents if name.rsplit("_", 1)[0] == kind]
            policies[kind] = TypePolicy(kind, agents, env, config)
    generator = torch.Generator().manual_seed(config.seed)
    return TrainState(config, policies, generator)


def restore_state(config: TrainConfig, checkpoint: dict) -> TrainState:
    """The run as it was when ``checkpoint`` was taken."""
    state = new_state(config)
    for kind, policy_state in checkpoint["policies"].items():
        state.policies[kind].load_state_dict(policy_state)
    state.generator.set_state(checkpoint["torch_rng"])
    state.iteration = int(checkpoint["iteration"])
    return state


def play_iteration(state: TrainState, pool: RolloutPool | None = None) -> dict:
    """Play one iteration's episodes, update every policy; return the iteration's log.

    Episodes are played in rollout groups of ``num_envs`` (``RolloutGroup``): per step, one
    forward per type over the group's agents (folded into the batch). Episode ``e`` of
    iteration ``i`` is played with ``training_seed(seed, i * episodes_per_iteration + e)``.
    ``pool`` (``RolloutPool``) says which processes play the groups; results do not depend on
    it. The update then runs here, drawing minibatches from the run's generator.
    """
    config = state.config
    ppo = config.ppo
    started = time.perf_counter()
    own_pool = pool is None
    if own_pool:
        pool = RolloutPool(config)
    try:
        rollouts, raw_rewards, components, monitor = _rollout(state, pool)
    finally:
        if own_pool:
            pool.close()
    rollout_seconds = time.perf_counter() - started

    log: dict = {"iteration": state.iteration, "types": {}}
    lr = (
        annealed(ppo.learning_rate, 0.0, state.iteration, config.iterations)
        if ppo.anneal_lr
        else ppo.learning_rate
    )
    ent_coef = annealed(ppo.ent_coef, ppo.ent_coef_final, state.iteration, config.iterations)
    agent_steps = 0
    for kind, policy in state.policies.items():
        rollout = rollouts[kind]
        agent_steps += rollout.actions.shape[0]
        for group in policy.optimizer.param_groups:
            group["lr"] = lr
        stats = ppo_update(policy.net, policy.optimizer, rollout, ppo, ent_coef, state.generator)
        episodes = config.episodes_per_iteration * len(policy.agents)
        log["types"][kind] = {
            "episode_reward": raw_rewards[kind] / episodes,
            "components": {name: total / episodes for name, total in components[kind].items()},
            "learning_rate": lr,
            "ent_coef": ent_coef,
            **stats,
        }
    seconds = time.perf_counter() - started
    log["market"] = monitor.summary()
    log["agent_steps"] = agent_steps
    log["seconds"] = seconds
    log["agent_steps_per_s"] = agent_steps / seconds if seconds > 0 else math.nan
    log["rollout_share"] = rollout_seconds / seconds if seconds > 0 else math.nan
    state.iteration += 1
    state.logs.append(log)
    return log


def rollout_jobs(config: TrainConfig, iteration: int) -> list[tuple[list[int], int]]:
    """Iteration ``iteration``'s rollout groups: (episode seeds, action seed) each, the
    episodes in groups of ``num_envs``, a group's action seed its first episode's seed."""
    total = config.episodes_per_iteration
    seeds = [training_seed(config.seed, iteration * total + e) for e in range(total)]
    return [
        (seeds[start : start + config.num_envs], seeds[start])
        for start in range(0, total, config.num_envs)
    ]


def rollout_processes(config: TrainConfig, workers: int) -> int:
    """Processes worth starting for ``workers``: one per rollout group at most."""
    groups = math.ceil(config.episodes_per_iteration / config.num_envs)
    return max(1, min(workers, groups))


def _rollout(
    state: TrainState, pool: RolloutPool
) -> tuple[dict[str, Rollout], dict[str, float], dict[str, dict[str, float]], MarketMonitor]:
    """Play the iteration's episodes in groups of ``num_envs``; each type's rollout (rows:
    step-major, then episode, then agent), raw reward sums, reward components, the monitor.

    A group's actions are drawn from a torch generator seeded with its first episode's seed.
    The run's normalisers then learn the iteration, group by group in order: observations from
    their raw values, rewards from each step's discounted returns.
    """
    config = state.config
    ppo = config.ppo
    policies = state.policies
    steps = config.episode_steps
    results = pool.play(policies, rollout_jobs(config, state.iteration))

    monitor = MarketMonitor(config.n_assets)
    for result in results:
        for mids, fairs, spreads in result.series:
            monitor.add_episode(mids, fairs, spreads)
    raw_rewards: dict[str, float] = dict.fromkeys(policies, 0.0)
    components: dict[str, dict[str, float]] = {kind: {} for kind in policies}
    edge_index, edge_attr = pool.local.edge_index, pool.local.edge_attr
    rollouts = {}
    for kind, policy in policies.items():
        columns = [pool.agents.index(a) for a in policy.agents]
        scaled_rewards = []
        for result in results:
            sample = result.samples[kind]
            if config.norm_obs:
                policy.vector_norm.update(
                    sample["raw_vector"].reshape(-1, policy.vector_norm.mean.size)
                )
                policy.node_norm.update(sample["raw_nodes"].reshape(-1, policy.node_norm.mean.size))
            reward = result.rewards[:, :, columns].reshape(steps, -1)
            raw_rewards[kind] += float(reward.sum())
            if config.norm_reward:
                reward = _scaled_rewards(policy.reward_norm, reward, ppo.gamma)
            scaled_rewards.append(reward.astype(np.float32))
            for per_agent in result.components:
                for agent in policy.agents:
                    for name, amount in per_agent[agent].items():
                        components[kind][name] = components[kind].get(name, 0.0) + amount

        def joined(key: str, kind: str = kind) -> torch.Tensor:
            return torch.from_numpy(
                np.concatenate([result.samples[kind][key] for result in results], axis=1)
            )

        values = joined("values")
        rows = values.shape[1]
        # Every episode starts at step 0 and ends at the last step: nothing to bootstrap.
        dones = torch.zeros(steps, rows)
        dones[0] = 1.0
        advantages, returns = compute_gae(
            torch.from_numpy(np.concatenate(scaled_rewards, axis=1)),
            values,
            dones,
            torch.zeros(rows),
            torch.ones(rows),
            ppo.gamma,
            ppo.gae_lambda,
        )
        vector, node = joined("vector"), joined("nodes")
        n_rows = steps * rows
        observations = {
            "vector": vector.reshape(n_rows, -1),
            "nodes": node.reshape(n_rows, *node.shape[2:]),
            "edge_attr": edge_attr.expand(n_rows, *edge_attr.shape),
            "shared_edge_index": edge_index,
        }
        rollouts[kind] = Rollout(
            observations,
            joined("actions").reshape(n_rows, -1),
            joined("logprobs").reshape(-1),
            values.reshape(-1),
            advantages.reshape(-1),
            returns.reshape(-1),
        )
    return rollouts, raw_rewards, components, monitor


def _scaled_rewards(norm: RunningNorm, rewards: np.ndarray, gamma: float) -> np.ndarray:
    """(steps, rows) rewards divided by the running std of the discounted return (CleanRL's
    NormalizeReward), the statistics updated with each step's returns before scaling it."""
    returns = np.zeros(rewards.shape[1])
    scaled = np.empty(rewards.shape, np.float32)
    for t, reward in enumerate(rewards):
        returns = returns * gamma + reward
        norm.update(returns)
        scaled[t] = norm.scale(reward)
    return scaled


def _normalised(
    vector_norm: RunningNorm,
    node_norm: RunningNorm,
    raw_vector: np.ndarray,
    nodes: np.ndarray,
    per_env: int,
    norm_obs: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One lockstep step's rows of a type (episodes x its agents) and their episodes' nodes,
    normalised by running statistics updated with this step first; float32, contiguous."""
    if norm_obs:
        vector_norm.update(raw_vector)
        node_norm.update(nodes.reshape(-1, nodes.shape[-1]))  # one graph per episode
        vector = vector_norm.normalise(raw_vector)
        node = node_norm.normalise(nodes)
    else:
        vector, node = raw_vector.astype(np.float32), nodes.astype(np.float32)
    if per_env > 1:  # every agent of an episode sees its nodes
        node = np.repeat(node, per_env, axis=0)
    return np.ascontiguousarray(vector), np.ascontiguousarray(node)


def default_workers() -> int:
    """Processes to step training markets in: 2 where the machine has 2 usable cores or more."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (usable or 1) >= 2 else 1


def train(
    config: TrainConfig,
    resume: dict | None = None,
    until: int | None = None,
    on_iteration: Callable[[TrainState, dict], None] | None = None,
    workers: int | None = None,
) -> TrainState:
    """Train from scratch (or from a ``resume`` checkpoint) up to iteration ``until``
    (default: ``config.iterations``), calling ``on_iteration(state, log)`` after each.

    ``workers`` processes step the markets (default ``default_workers()``); the result is the
    same for any number. Single-threaded torch: the networks are small, threads only contend
    (and a fixed thread count keeps float reductions, and so results, identical).
    """
    threads = torch.get_num_threads()
    collector_on = gc.isenabled()  # a wave cut short by an error leaves it paused: restored below
    torch.set_num_threads(1)
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    pool = None
    try:
        state = restore_state(config, resume) if resume is not None else new_state(config)
        stop = config.iterations if until is None else min(until, config.iterations)
        if state.iteration < stop:
            pool = RolloutPool(config, workers)
        while state.iteration < stop:
            log = play_iteration(state, pool)
            if on_iteration is not None:
                on_iteration(state, log)
        return state
    finally:
        if pool is not None:
            pool.close()
        torch.set_num_threads(threads)
        if collector_on:
            gc.enable()
