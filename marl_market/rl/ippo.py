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
import gc
import math
import multiprocessing as mp
import os
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
    num_envs: int = 8
    """Episodes played in lockstep, one batched forward per type per step across them (more
    amortise torch's per-call cost; the iteration plays its episodes in waves of this many)."""
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
    """Training episodes played side by side in one process (this one or a worker).

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


def _slots_worker(connection, config: TrainConfig, count: int) -> None:
    """A worker process: ``EnvSlots`` driven by (command, payload) messages."""
    slots = EnvSlots(config, count)
    while True:
        command, payload = connection.recv()
        if command == "close":
            connection.close()
            return
        try:
            reply = getattr(slots, command)(*payload)
        except Exception as error:  # sent back: the trainer raises it with the worker's message
            reply = RuntimeError(f"training worker failed in {command}: {error!r}")
        connection.send(reply)


class EnvPool:
    """``size`` training environments, spread over ``workers`` processes (this one included).

    The split only decides where markets are stepped: every episode's seed is fixed by its
    index and all policy forwards happen here, in episode order, so results do not depend on
    ``workers``. This process keeps the smallest share (it also runs the networks).
    """

    def __init__(self, config: TrainConfig, size: int, workers: int = 1):
        self.size = size
        self.workers = max(1, min(workers, size))
        if self.workers > 1 and "fork" not in mp.get_all_start_methods():
            self.workers = 1  # no fork (Windows, macOS spawn only): step everything here
        self.local = EnvSlots(config, size)
        self.remotes = []
        self.processes = []
        context = mp.get_context("fork") if self.workers > 1 else None
        for _ in range(self.workers - 1):
            parent, child = context.Pipe()
            process = context.Process(target=_slots_worker, args=(child, config, size), daemon=True)
            process.start()
            child.close()
            self.remotes.append(parent)
            self.processes.append(process)
        self.agents = self.local.agents
        self.shares: list[int] = []

    def _split(self, n: int) -> list[int]:
        """Episodes per process: the workers' shares first, this process's (smallest) last."""
        if self.workers == 1 or n == 1:
            return [0] * len(self.remotes) + [n]
        base, extra = divmod(n, self.workers)
        shares = [base + (1 if i < extra else 0) for i in range(self.workers)]
        return shares  # descending: this process's share, last, is the smallest

    def _call(self, command: str, per_process: list[tuple]) -> list:
        for connection, share, payload in zip(
            self.remotes, self.shares[:-1], per_process[:-1], strict=True
        ):
            if share:
                connection.send((command, payload))
        replies = [None] * len(self.remotes)
        local = getattr(self.local, command)(*per_process[-1]) if self.shares[-1] else None
        for i, (connection, share) in enumerate(zip(self.remotes, self.shares[:-1], strict=True)):
            if share:
                replies[i] = connection.recv()
                if isinstance(replies[i], Exception):
                    raise replies[i]
        return [*replies, local]

    def _chunks(self, items: list) -> list[tuple]:
        out, start = [], 0
        for share in self.shares:
            out.append((items[start : start + share],))
            start += share
        return out

    def reset(self, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
        self.shares = self._split(len(seeds))
        replies = self._call("reset", self._chunks(seeds))
        parts = [reply for reply, share in zip(replies, self.shares, strict=True) if share]
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def step(self, actions: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        replies = self._call("step", self._chunks(actions))
        parts = [reply for reply, share in zip(replies, self.shares, strict=True) if share]
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def finish(self) -> tuple[list[dict], list[tuple]]:
        replies = self._call("finish", [()] * len(self.shares))
        components, series = [], []
        for reply, share in zip(replies, self.shares, strict=True):
            if share:
                components += reply[0]
                series += reply[1]
        return components, series

    def close(self) -> None:
        for connection in self.remotes:
            with contextlib.suppress(OSError):
                connection.send(("close", ()))
                connection.close()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
        self.remotes, self.processes = [], []


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


def play_iteration(state: TrainState, pool: EnvPool | None = None) -> dict:
    """Play one iteration's episodes, update every policy; return the iteration's log.

    Episodes are played ``num_envs`` at a time in lockstep: per step, one forward per type over
    every episode's agents (folded into the batch), one draw from the run's generator. Episode
    ``e`` of iteration ``i`` is played with ``training_seed(seed, i * episodes_per_iteration +
    e)``. ``pool`` (``EnvPool``) says where the markets are stepped; results do not depend on it.
    """
    config = state.config
    ppo = config.ppo
    started = time.perf_counter()
    own_pool = pool is None
    if own_pool:
        pool = EnvPool(config, min(config.num_envs, config.episodes_per_iteration))
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


def _rollout(
    state: TrainState, pool: EnvPool
) -> tuple[dict[str, Rollout], dict[str, float], dict[str, dict[str, float]], MarketMonitor]:
    """Play the iteration's episodes in waves of ``pool.size``; each type's rollout (rows:
    step-major, then episode, then agent), raw reward sums, reward components, the monitor."""
    config = state.config
    ppo = config.ppo
    policies = state.policies
    agents = pool.agents
    columns = {kind: [agents.index(a) for a in p.agents] for kind, p in policies.items()}
    env = pool.local.envs[0]  # the graph's edges are the config's: the same in every episode
    edge_index = torch.as_tensor(np.array(env.edge_index), dtype=torch.int64)
    edge_attr = torch.as_tensor(np.array(env.edge_attr, dtype=np.float32))
    steps = config.episode_steps
    buffers = {
        kind: {k: [] for k in ("vector", "nodes", "actions", "logprobs", "values", "rewards")}
        for kind in policies
    }
    raw_rewards: dict[str, float] = dict.fromkeys(policies, 0.0)
    components: dict[str, dict[str, float]] = {kind: {} for kind in policies}
    monitor = MarketMonitor(config.n_assets)
    total = config.episodes_per_iteration
    first_episode = state.iteration * total
    for wave_start in range(0, total, pool.size):
        n = min(pool.size, total - wave_start)
        seeds = [training_seed(config.seed, first_episode + wave_start + e) for e in range(n)]
        vectors, nodes = pool.reset(seeds)
        returns = {kind: np.zeros(n * len(p.agents)) for kind, p in policies.items()}
        wave = {kind: {k: [] for k in buffers[kind]} for kind in policies}
        for _ in range(steps):
            actions: list[dict] = [{} for _ in range(n)]
            for kind, policy in policies.items():
                vector, node = _normalised(policy, vectors, nodes, columns[kind], config)
                rows = vector.shape[0]
                tensors = {
                    "vector": torch.from_numpy(vector),
                    "nodes": torch.from_numpy(node),
                    "edge_attr": edge_attr.expand(rows, *edge_attr.shape),
                    "shared_edge_index": edge_index,
                }
                with torch.no_grad():
                    action, logprob, value = policy.net.act(tensors, state.generator)
                per_env = action.numpy().reshape(n, len(policy.agents), -1)
                for env_actions, env_rows in zip(actions, per_env, strict=True):
                    env_actions.update(zip(policy.agents, env_rows, strict=True))
                buf = wave[kind]
                buf["vector"].append(vector)
                buf["nodes"].append(node)
                buf["actions"].append(action)
                buf["logprobs"].append(logprob)
                buf["values"].append(value)
            next_vectors, next_nodes, rewards = pool.step(actions)
            for kind, policy in policies.items():
                reward = rewards[:, columns[kind]].reshape(-1)
                raw_rewards[kind] += float(reward.sum())
                if config.norm_reward:
                    returns[kind] = returns[kind] * ppo.gamma + reward
                    policy.reward_norm.update(returns[kind])
                    reward = policy.reward_norm.scale(reward)
                wave[kind]["rewards"].append(reward.astype(np.float32))
            vectors, nodes = next_vectors, next_nodes
        episode_components, series = pool.finish()
        for mids, fairs, spreads in series:
            monitor.add_episode(mids, fairs, spreads)
        for kind, policy in policies.items():
            for per_agent in episode_components:
                for agent in policy.agents:
                    for name, amount in per_agent[agent].items():
                        components[kind][name] = components[kind].get(name, 0.0) + amount
            for key, items in wave[kind].items():
                stack = np.stack if isinstance(items[0], np.ndarray) else torch.stack
                buffers[kind][key].append(stack(items))  # (steps, rows of this wave, ...)

    rollouts = {}
    for kind in policies:
        buf = buffers[kind]

        def joined(key: str, buf=buf) -> torch.Tensor:
            parts = buf[key]
            if isinstance(parts[0], np.ndarray):
                return torch.from_numpy(np.concatenate(parts, axis=1))
            return torch.cat(parts, dim=1)

        values = joined("values")
        rows = values.shape[1]
        # Every wave's episodes start at step 0 and end at the last step: nothing to bootstrap.
        dones = torch.zeros(steps, rows)
        dones[0] = 1.0
        advantages, returns_ = compute_gae(
            joined("rewards"),
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
        actions_ = joined("actions")
        rollouts[kind] = Rollout(
            observations,
            actions_.reshape(n_rows, -1),
            joined("logprobs").reshape(-1),
            values.reshape(-1),
            advantages.reshape(-1),
            returns_.reshape(-1),
        )
    return rollouts, raw_rewards, components, monitor


def _normalised(
    policy: TypePolicy,
    vectors: np.ndarray,
    nodes: np.ndarray,
    columns: list[int],
    config: TrainConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The type's rows of one lockstep step (episodes x its agents), normalised by running
    statistics updated with this step first; float32, ready for ``torch.from_numpy``."""
    n, per_env = vectors.shape[0], len(columns)
    vector = vectors[:, columns].reshape(n * per_env, -1).astype(np.float64)
    node = nodes.astype(np.float64)
    if config.norm_obs:
        policy.vector_norm.update(vector)
        policy.node_norm.update(node.reshape(-1, node.shape[-1]))  # one graph per episode
        vector = policy.vector_norm.normalise(vector)
        node = policy.node_norm.normalise(node)
    else:
        vector, node = vector.astype(np.float32), node.astype(np.float32)
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
            size = min(config.num_envs, config.episodes_per_iteration)
            pool = EnvPool(config, size, workers)
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
