"""``env_steps_per_s``: environment steps per second of the liquidity game (issue 10, §5).

The default environment (3 assets, the default population, learners maker, taker and arb)
played with random actions from a seeded generator, in this process (one core). Beside it, the
same market with the same actions handed straight to ``Market.act`` (typed once, untimed):
``market_steps_per_s``, the core's share of an environment step, so the report says how much
of the time is the market and how much the environment's observations, rewards and mapping.
The two are played in lockstep, a step of each in turn, so the machine's noise hits both.
Actions are drawn before the clock starts; the environment's clock includes its ``reset``.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from marl_market.core.market import Market
from marl_market.rl.env import parallel_env


def random_actions(env, steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    """One action per agent and step, uniform in each agent's Box, from ``seed``."""
    rng = np.random.default_rng(seed)
    per_agent = {
        agent: rng.uniform(-1.0, 1.0, (steps, *env.action_space(agent).shape)).astype(np.float32)
        for agent in env.possible_agents
    }
    return [{agent: per_agent[agent][i] for agent in per_agent} for i in range(steps)]


def _time_lockstep(env, actions: list[dict[str, np.ndarray]], seed: int) -> tuple[float, float]:
    """Seconds of the environment's steps and of the bare market's, played step by step in
    turn (a noisy spell of the shared machine hits both alike)."""
    typed = [{a: env.typed_action(a, x) for a, x in step.items()} for step in actions]
    market = Market(env.market_config, seed, record=False)
    act, market_step, clock = market.act, market.step, time.perf_counter
    env_seconds = market_seconds = 0.0
    started = clock()
    env.reset(seed=seed)
    env_seconds += clock() - started
    for step_actions, typed_actions in zip(actions, typed, strict=True):
        started = clock()
        env.step(step_actions)
        between = clock()
        for agent, action in typed_actions.items():
            act(agent, action)
        market_step()
        env_seconds += between - started
        market_seconds += clock() - between
    return env_seconds, market_seconds


def env_steps(steps: int = 5_000, repeats: int = 3, seed: int = 42) -> dict:
    """Best-of-``repeats`` environment and bare-market steps per second over ``steps`` steps."""
    env = parallel_env(episode_steps=steps)
    actions = random_actions(env, steps, seed)
    env_times, market_times = [], []
    # Garbage collection off while timing, as ``Market.advance`` plays its own runs.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(max(1, repeats)):
            env_seconds, market_seconds = _time_lockstep(env, actions, seed)
            env_times.append(env_seconds)
            market_times.append(market_seconds)
    finally:
        if was_enabled:
            gc.enable()
    best_env, best_market = min(env_times), min(market_times)
    return {
        "steps": steps,
        "repeats": len(env_times),
        "n_assets": env.config.n_assets,
        "learners": list(env.possible_agents),
        "seconds": best_env,
        "steps_per_s": steps / best_env,
        "market_seconds": best_market,
        "market_steps_per_s": steps / best_market,
        # What the environment adds to a market step: observations, rewards, action mapping.
        "env_overhead_us_per_step": 1e6 * (best_env - best_market) / steps,
    }
