"""Training figures of ``marlsim bench`` (issue 11, §4).

- ``train_agent_steps_per_s``: rollout plus update throughput of ``marlsim train``'s default
  run (a learning maker, mlp encoder), in learner agent-steps (one learner's one step, PPO's
  sample) per second of wall time, markets stepped in ``ippo.default_workers()`` processes;
  beside it the same for every type learning (``--everyone``), whose steps carry more learners,
  and ``market_ceiling``: the same episodes' markets alone on the same processes (random
  actions, no network, no update), the most a rollout could reach on this machine.
- ``train_minutes_to_ci_win``: wall time of the default run, training and periodic evaluation
  included, until the paired 95% CI of learned minus fixed MTM on the held-out seeds lies above
  zero. Beside it, ``train_minutes_to_beat_untrained``: until the CI of learned minus the run's
  own untrained policy does, because on this market an untrained policy already beats the
  fixed maker (its default quotes are wide): the second figure is the one training earns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import time

import numpy as np

from marl_market.bench.env import random_actions
from marl_market.core.facts import mean_ci
from marl_market.rl.evaluate import fixed_episode, learned_episode
from marl_market.rl.ippo import (
    EnvSlots,
    TrainConfig,
    TrainState,
    default_workers,
    new_state,
    rollout_jobs,
    rollout_processes,
    train,
)

EVERYONE = ("maker", "momentum", "value", "noise", "taker")
"""``marlsim train --everyone`` on one asset (the arbitrageur needs two)."""


def throughput(config: TrainConfig, iterations: int) -> dict:
    """Agent-steps per second over ``iterations`` iterations of ``config`` (set-up excluded)."""
    config = dataclasses.replace(config, iterations=iterations)
    seconds: list[float] = []
    started = time.perf_counter()

    def lap(state: TrainState, log: dict) -> None:
        seconds.append(time.perf_counter() - started)

    train(config, on_iteration=lap)
    per_iteration = config.episodes_per_iteration * config.episode_steps * len(config.learners)
    # The first iteration pays the worker's start; the rest are the steady state.
    steady = seconds[-1] - seconds[0] if iterations > 1 else seconds[0]
    counted = iterations - 1 if iterations > 1 else 1
    return {
        "learners": list(config.learners),
        "iterations": iterations,
        "agent_steps_per_iteration": per_iteration,
        "workers": default_workers(),
        "seconds": seconds[-1],
        "agent_steps_per_s": per_iteration * counted / steady,
    }


_slots: EnvSlots | None = None  # a ceiling worker's markets (built once per process)


def _ceiling_worker_init(config: TrainConfig) -> None:
    global _slots
    _slots = EnvSlots(config, config.num_envs)


def _step_markets(job: tuple[list[int], int]) -> float:
    """Seconds to play one rollout group's episodes with seeded random actions."""
    seeds, action_seed = job
    env = _slots.envs[0]
    steps = env.config.episode_steps
    actions = [random_actions(env, steps, action_seed + k) for k in range(len(seeds))]
    started = time.perf_counter()
    _slots.reset(seeds)
    for t in range(steps):
        _slots.step([episode[t] for episode in actions])
    _slots.finish()
    return time.perf_counter() - started


def market_ceiling(config: TrainConfig, repeats: int = 3) -> dict:
    """The most a rollout could reach: one iteration's episodes, in the same rollout groups on
    the same number of processes, stepped with random actions and no network or update.

    Training's agent-steps per second over this says what share of the machine the learning
    machinery leaves to the markets. Best of ``repeats`` iterations after one warm-up.
    """
    processes = rollout_processes(config, default_workers())
    jobs = rollout_jobs(config, 0)
    context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    walls = []
    with (context or mp).Pool(processes, _ceiling_worker_init, (config,)) as pool:
        for _ in range(repeats + 1):
            started = time.perf_counter()
            pool.map(_step_markets, jobs, chunksize=1)
            walls.append(time.perf_counter() - started)
    per_iteration = config.episodes_per_iteration * config.episode_steps * len(config.learners)
    best = min(walls[1:])
    return {
        "learners": list(config.learners),
        "processes": processes,
        "agent_steps_per_iteration": per_iteration,
        "seconds": best,
        "agent_steps_per_s": per_iteration / best,
    }


class _Reached(Exception):
    """Both CIs are above zero: nothing more to time."""


def minutes_to_ci_win(
    config: TrainConfig, eval_seeds: int = 40, every: int = 10, budget_minutes: float = 15.0
) -> dict:
    """Train ``config``; every ``every`` iterations evaluate on held-out seeds 1..N (learned,
    fixed and the untrained policy, paired) and note the first time each CI clears zero.

    Stops when both have, or at the end of the run, or after ``budget_minutes``. Wall time
    counts training and the evaluations.
    """
    seeds = list(range(1, eval_seeds + 1))
    steps = config.episode_steps
    untrained = new_state(config)
    kind = config.types[0]
    # The fixed maker's and the untrained policy's MTM never change: measured once, untimed
    # (a user's run measures them at its end, not while it trains).
    fixed = np.array([fixed_episode(untrained, s, steps)[0][kind] for s in seeds])
    initial = np.array([learned_episode(untrained, s, steps)[0][kind] for s in seeds])
    found: dict[str, float | None] = {"vs_fixed": None, "vs_untrained": None}
    checks: list[dict] = []
    started = time.perf_counter()

    def check(state: TrainState, log: dict) -> None:
        done = state.iteration
        minutes = (time.perf_counter() - started) / 60
        if done % every and done != config.iterations and minutes < budget_minutes:
            return
        learned = np.array([learned_episode(state, s, steps)[0][kind] for s in seeds])
        minutes = (time.perf_counter() - started) / 60
        row = {"iteration": done, "minutes": minutes}
        for name, baseline in (("vs_fixed", fixed), ("vs_untrained", initial)):
            mean, low, high = mean_ci(learned - baseline)
            row[name] = {"mean": mean, "ci_low": low, "ci_high": high}
            if found[name] is None and low > 0:
                found[name] = minutes
        checks.append(row)
        if all(value is not None for value in found.values()) or minutes >= budget_minutes:
            raise _Reached

    with contextlib.suppress(_Reached):  # both CIs won (or the budget ran out): stop early
        train(config, on_iteration=check)
    return {
        "learners": list(config.learners),
        "iterations": config.iterations,
        "eval_seeds": eval_seeds,
        "every": every,
        "budget_minutes": budget_minutes,
        "minutes_to_ci_win": found["vs_fixed"],
        "minutes_to_beat_untrained": found["vs_untrained"],
        "checks": checks,
    }


def train_figures(quick: bool = False, scale: float = 1.0) -> dict:
    """The bench's training figures (``quick``/``scale``: shorter runs, for tests)."""
    default = TrainConfig()
    if quick or scale < 1:
        short = dataclasses.replace(default, episode_steps=max(50, int(200 * scale)))
        speed = throughput(short, 3)
        everyone = throughput(dataclasses.replace(short, learners=EVERYONE), 2)
        return {
            "train_agent_steps_per_s": speed["agent_steps_per_s"],
            "throughput": speed,
            "market_ceiling": market_ceiling(short, repeats=1),
            "throughput_everyone": everyone,
            "ci_win": None,
        }
    speed = throughput(default, 6)
    ceiling = market_ceiling(default)
    everyone = throughput(dataclasses.replace(default, learners=EVERYONE), 4)
    race = minutes_to_ci_win(default)
    return {
        "train_agent_steps_per_s": speed["agent_steps_per_s"],
        "train_minutes_to_ci_win": race["minutes_to_ci_win"],
        "train_minutes_to_beat_untrained": race["minutes_to_beat_untrained"],
        "throughput": speed,
        "market_ceiling": ceiling,
        "throughput_everyone": everyone,
        "ci_win": race,
    }
