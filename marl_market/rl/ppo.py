"""Proximal Policy Optimisation, from scratch, in the manner of CleanRL's ppo_continuous_action.

The pieces a reader (or a test) wants to check by hand are pure functions:

- ``compute_gae``: generalised advantage estimates and returns from a rollout;
- ``ppo_loss``: the clipped surrogate, the clipped value loss and the entropy bonus;
- ``explained_variance``: how much of the returns' variance the value function explains.

``ppo_update`` puts them together: minibatch epochs over a ``Rollout`` with per-minibatch
advantage normalisation, global gradient-norm clipping and an optional target-KL early stop,
returning the statistics CleanRL logs (approx_kl, clipfrac, explained variance, entropy,
losses). Learning-rate annealing and the entropy coefficient's decay are functions of the
iteration (``annealed``), so a resumed run continues them exactly. Observation and reward
normalisation live in ``RunningNorm``, whose statistics go into the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PPOConfig:
    """PPO's hyper-parameters (CleanRL's defaults for continuous control, unless noted)."""

    learning_rate: float = 1e-3
    """Adam's step size at the first iteration. CleanRL's 3e-4 barely moved the maker's
    policy in a short run here (learned vs untrained: +58 MTM [-272, 388] after 30
    iterations); 1e-3 learns (+1,824 [906, 2,741] after 100)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero over the run's iterations."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 is one-step TD, 1 is Monte Carlo."""
    update_epochs: int = 4
    """Passes over the rollout per update."""
    num_minibatches: int = 8
    """Minibatches per epoch."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch."""
    clip_coef: float = 0.2
    """The surrogate's clipping range: ratios outside [1 - clip, 1 + clip] give no gradient."""
    clip_vloss: bool = True
    """Clip the value function's change per update as well (PPO paper's implementation)."""
    ent_coef: float = 0.001
    """Entropy bonus at the first iteration (CleanRL's 0.0; at 0.01 the maker's entropy rose
    all run long: the bonus outweighed its scaled rewards)."""
    ent_coef_final: float = 0.0
    """Entropy bonus at the last iteration (it decays linearly: explore early, settle late)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL to the old policy passes this."""


def annealed(start: float, end: float, iteration: int, iterations: int) -> float:
    """Linear schedule from ``start`` at iteration 0 to ``end`` at the last iteration."""
    if iterations <= 1:
        return start
    frac = min(1.0, iteration / (iterations - 1))
    return start + (end - start) * frac


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    next_done: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout of T steps x N agents (all tensors (T, N)).

    ``dones[t]`` says that the observation at step t began a new episode (CleanRL's layout),
    ``next_value``/``next_done`` (shape (N,)) are those of the observation after the last step.
    delta_t = r_t + gamma V(s_{t+1}) (1 - done_{t+1}) - V(s_t);
    A_t = delta_t + gamma lambda (1 - done_{t+1}) A_{t+1};  returns = A + V.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        if t == steps - 1:
            not_done, following = 1.0 - next_done, next_value
        else:
            not_done, following = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * following * not_done - values[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantages[t] = last
    return advantages, advantages + values


def ppo_loss(
    new_logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    clip_vloss: bool,
    ent_coef: float,
    vf_coef: float,
) -> dict[str, torch.Tensor]:
    """PPO's loss on one minibatch and its parts (advantages already normalised if wanted).

    policy:  mean(max(-A r, -A clip(r, 1 - eps, 1 + eps))), r = exp(new - old log-prob)
    value:   0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)) if clipped
    total:   policy - ent_coef entropy + vf_coef value
    """
    log_ratio = new_logprob - old_logprob
    ratio = log_ratio.exp()
    policy_loss = torch.max(
        -advantages * ratio, -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    ).mean()
    if clip_vloss:
        clipped = old_value + torch.clamp(new_value - old_value, -clip_coef, clip_coef)
        value_loss = 0.5 * torch.max((new_value - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((new_value - returns) ** 2).mean()
    entropy_loss = entropy.mean()
    with torch.no_grad():
        # The unbiased, low-variance KL estimator (http://joschu.net/blog/kl-approx.html).
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    return {
        "loss": policy_loss - ent_coef * entropy_loss + vf_coef * value_loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy_loss,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target); NaN when the target does not vary."""
    var = float(np.var(target))
    return math.nan if var == 0.0 else 1.0 - float(np.var(target - predicted)) / var


class RunningNorm:
    """Running mean and variance (Chan's parallel update), to normalise observations or rewards.

    Kept in float64 numpy so its statistics are exact to save and restore (``state_dict``).
    """

    def __init__(self, shape: tuple[int, ...] = (), clip: float = 10.0, epsilon: float = 1e-8):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon
        self.clip = clip
        self.epsilon = epsilon

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch (rows along the first axis) into the statistics."""
        batch = np.asarray(batch, np.float64)
        n = batch.shape[0]
        if n == 0:
            return
        # Sums rather than ``mean``/``var``: this runs every training step on a few rows,
        # where numpy's per-call cost, not the arithmetic, is the time.
        mean = batch.sum(axis=0) / n
        centred = batch - mean
        batch_m2 = (centred * centred).sum(axis=0)
        delta = mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        self.var = (
            self.var * self.count + batch_m2 + delta * delta * (self.count * n / total)
        ) / total
        self.count = total

    def normalise(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / sd, clipped to +-clip, as float32."""
        z = (np.asarray(x, np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.maximum(np.minimum(z, self.clip), -self.clip).astype(np.float32)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """x / sd (no centring: for rewards, whose sign matters), clipped, as float32."""
        z = np.asarray(x, np.float64) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, np.ndarray | float]:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": float(self.count)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.array(state["mean"], np.float64)
        self.var = np.array(state["var"], np.float64)
        self.count = float(state["count"])


@dataclass
class Rollout:
    """One rollout of T steps x N agents, flattened to T*N rows for the update.

    ``observations`` is whatever the policy's ``evaluate`` takes, indexable by a row tensor
    (a dict of tensors with rows first works: ``index_rows`` slices it).
    """

    observations: dict[str, torch.Tensor]
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


def index_rows(observations: dict[str, torch.Tensor], rows: torch.Tensor) -> dict:
    """The rows ``rows`` of every tensor in an observation dict (shared tensors kept whole)."""
    return {
        key: value if key.startswith("shared_") else value[rows]
        for key, value in observations.items()
    }


def ppo_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: PPOConfig,
    ent_coef: float,
    generator: torch.Generator,
) -> dict[str, float]:
    """Minibatch epochs of PPO on ``rollout``; return the iteration's statistics.

    ``policy.evaluate(observations, actions)`` must return (log-prob, entropy, value) per row.
    The minibatch order comes from ``generator``, so an update is a function of its inputs.
    """
    n_rows = rollout.actions.shape[0]
    minibatch = max(1, n_rows // config.num_minibatches)
    totals: dict[str, float] = {}
    n_minibatches = 0
    stopped_early = False
    for _ in range(config.update_epochs):
        order = torch.randperm(n_rows, generator=generator)
        for start in range(0, n_rows, minibatch):
            rows = order[start : start + minibatch]
            logprob, entropy, value = policy.evaluate(
                index_rows(rollout.observations, rows), rollout.actions[rows]
            )
            advantages = rollout.advantages[rows]
            if config.norm_adv and advantages.numel() > 1:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            parts = ppo_loss(
                logprob,
                rollout.logprobs[rows],
                advantages,
                value,
                rollout.values[rows],
                rollout.returns[rows],
                entropy,
                config.clip_coef,
                config.clip_vloss,
                ent_coef,
                config.vf_coef,
            )
            optimizer.zero_grad()
            parts["loss"].backward()
            nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            for name, value_ in parts.items():
                totals[name] = totals.get(name, 0.0) + float(value_.detach())
            n_minibatches += 1
        if config.target_kl is not None and totals["approx_kl"] / n_minibatches > config.target_kl:
            stopped_early = True
            break
    stats = {name: total / n_minibatches for name, total in totals.items()}
    stats["explained_variance"] = explained_variance(
        rollout.values.numpy(), rollout.returns.numpy()
    )
    stats["stopped_early"] = float(stopped_early)
    return stats
