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

import math
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
    iterations: int = 30
    episode_steps: int = 500
    episodes_per_iteration: int = 2
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
        for name in ("iterations", "episode_steps", "episodes_per_iteration", "hidden"):
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
    degrading market (wider spreads, more kurtosis, prices far from fair value)."""

    RETURN_INTERVAL = 5

    def __init__(self, n_assets: int):
        self.n_assets = n_assets
        self.mids: list[list[float]] = []
        self.fairs: list[list[float]] = []
        self.spreads: list[list[float]] = []

    def record(self, market) -> None:
        self.mids.append([view.mid for view in market.views])
        self.fairs.append(market.fair_values())
        self.spreads.append(
            [
                math.nan if v.best_bid is None or v.best_ask is None else v.best_ask - v.best_bid
                for v in market.views
            ]
        )

    def summary(self) -> dict[str, list[float]]:
        mids, fairs, spreads = np.array(self.mids), np.array(self.fairs), np.array(self.spreads)
        sampled = np.log(mids[:: self.RETURN_INTERVAL])
        returns = np.diff(sampled, axis=0)
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
            error = mids[:, asset] - fairs[:, asset]
            out["tracking_error"].append(float(np.sqrt(np.mean(error**2))))
        return out


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
    torch.manual_seed(config.seed)  # the layers' initial weights
    env = config.make_env()
    policies = {}
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


def play_iteration(state: TrainState) -> dict:
    """Play one iteration's episodes, update every policy; return the iteration's log."""
    config = state.config
    ppo = config.ppo
    started = time.perf_counter()
    env = config.make_env()
    policies = state.policies
    buffers: dict[str, dict[str, list]] = {
        kind: {k: [] for k in ("obs", "actions", "logprobs", "values", "rewards", "dones")}
        for kind in policies
    }
    raw_rewards: dict[str, float] = dict.fromkeys(policies, 0.0)
    components: dict[str, dict[str, float]] = {kind: {} for kind in policies}
    monitor = MarketMonitor(config.n_assets)
    agent_steps = 0
    for episode in range(config.episodes_per_iteration):
        index = state.iteration * config.episodes_per_iteration + episode
        observations, _ = env.reset(seed=training_seed(config.seed, index))
        returns = {kind: np.zeros(len(p.agents)) for kind, p in policies.items()}
        first = True
        while env.agents:
            actions = {}
            step_batches = {}
            for kind, policy in policies.items():
                batch = observation_batch(policy, observations, config.norm_obs, update=True)
                tensors = as_tensors(batch)
                with torch.no_grad():
                    action, logprob, value = policy.net.act(tensors, state.generator)
                step_batches[kind] = (batch, action, logprob, value)
                for agent, row in zip(policy.agents, action.numpy(), strict=True):
                    actions[agent] = row
            observations, rewards, _, _, infos = env.step(actions)
            monitor.record(env.market)
            for kind, policy in policies.items():
                batch, action, logprob, value = step_batches[kind]
                reward = np.array([rewards[agent] for agent in policy.agents])
                raw_rewards[kind] += float(reward.sum())
                for agent in policy.agents:
                    for name, amount in infos[agent].items():
                        components[kind][name] = components[kind].get(name, 0.0) + amount
                if config.norm_reward:
                    returns[kind] = returns[kind] * ppo.gamma + reward
                    policy.reward_norm.update(returns[kind])
                    reward = policy.reward_norm.scale(reward)
                buf = buffers[kind]
                buf["obs"].append(batch)
                buf["actions"].append(action)
                buf["logprobs"].append(logprob)
                buf["values"].append(value)
                buf["rewards"].append(torch.as_tensor(reward, dtype=torch.float32))
                buf["dones"].append(torch.full((len(policy.agents),), float(first)))
                agent_steps += len(policy.agents)
            first = False
    rollout_seconds = time.perf_counter() - started

    log: dict = {"iteration": state.iteration, "types": {}}
    lr = (
        annealed(ppo.learning_rate, 0.0, state.iteration, config.iterations)
        if ppo.anneal_lr
        else ppo.learning_rate
    )
    ent_coef = annealed(ppo.ent_coef, ppo.ent_coef_final, state.iteration, config.iterations)
    for kind, policy in policies.items():
        buf = buffers[kind]
        values = torch.stack(buf["values"])
        n_agents = values.shape[1]
        # Every iteration ends with its episode: nothing to bootstrap from.
        advantages, returns_ = compute_gae(
            torch.stack(buf["rewards"]),
            values,
            torch.stack(buf["dones"]),
            torch.zeros(n_agents),
            torch.ones(n_agents),
            ppo.gamma,
            ppo.gae_lambda,
        )
        observations_ = {
            "vector": torch.as_tensor(np.concatenate([b["vector"] for b in buf["obs"]])),
            "nodes": torch.as_tensor(np.concatenate([b["nodes"] for b in buf["obs"]])),
            "edge_attr": torch.as_tensor(np.concatenate([b["edge_attr"] for b in buf["obs"]])),
            "shared_edge_index": torch.tensor(np.array(buf["obs"][0]["edge_index"])),
        }
        rollout = Rollout(
            observations_,
            torch.cat(buf["actions"]),
            torch.cat(buf["logprobs"]),
            values.reshape(-1),
            advantages.reshape(-1),
            returns_.reshape(-1),
        )
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


def train(
    config: TrainConfig,
    resume: dict | None = None,
    until: int | None = None,
    on_iteration: Callable[[TrainState, dict], None] | None = None,
) -> TrainState:
    """Train from scratch (or from a ``resume`` checkpoint) up to iteration ``until``
    (default: ``config.iterations``), calling ``on_iteration(state, log)`` after each.

    Single-threaded torch: the networks are small, threads only contend (and a fixed thread
    count keeps float reductions, and so results, identical from run to run).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        state = restore_state(config, resume) if resume is not None else new_state(config)
        stop = config.iterations if until is None else min(until, config.iterations)
        while state.iteration < stop:
            log = play_iteration(state)
            if on_iteration is not None:
                on_iteration(state, log)
        return state
    finally:
        torch.set_num_threads(threads)
