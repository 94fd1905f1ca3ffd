"""Learned against fixed, paired on held-out seeds.

For every evaluation seed the same market is played twice: once with the learning type's slots
driven by the trained policy (its mean action), once with fixed-rule agents of that type in
their place. Both runs share every random number the slot's behaviour does not change (common
random numbers, ``core.draws``): the extra fixed agent draws from its type's next stream, the
learner from its own, and nobody else's draws move. The per-seed difference in the slot's
mark-to-market is what a paired t interval is taken over; only an interval that excludes zero
says the learned agent beats the fixed one. Evaluation seeds are never training seeds
(``ippo.is_training_seed``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from marl_market.core.facts import excess_kurtosis, log_returns, mean_ci
from marl_market.core.market import Market
from marl_market.rl.ippo import TrainState, as_tensors, is_training_seed, observation_batch

FIXED_COUNT_FIELD = {
    "maker": "makers",
    "taker": "takers",
    "arb": "arbs",
    "momentum": "momentum",
    "value": "value",
    "noise": "noise",
}


def market_facts(result) -> dict[str, float]:
    """Mean spread, excess kurtosis of 5-step returns and tracking error, on asset 0."""
    mid = result.asset_series("mid")
    fair = result.asset_series("fair_value")
    returns = log_returns(mid, 5)
    return {
        "mean_spread": float(np.nanmean(result.asset_series("spread"))),
        "excess_kurtosis": float(excess_kurtosis(returns)),
        "tracking_error": float(np.sqrt(np.mean((mid - fair) ** 2))),
    }


def learned_episode(state: TrainState, kind: str, seed: int, steps: int) -> tuple[float, dict]:
    """The mean MTM of ``kind``'s learners over one episode played with their policy."""
    config = dataclasses.replace(
        state.config, episode_steps=steps, env={**state.config.env, "record": True}
    )
    env = config.make_env()
    observations, _ = env.reset(seed=seed)
    while env.agents:
        actions = {}
        for policy in state.policies.values():
            batch = observation_batch(policy, observations, config.norm_obs, update=False)
            with torch.no_grad():
                mean = policy.net.deterministic(as_tensors(batch)).numpy()
            actions.update(zip(policy.agents, mean, strict=True))
        observations, *_ = env.step(actions)
    market = env.market
    ids = [market.learner_id(name) for name in state.policies[kind].agents]
    mtm = market.reward_components()["mtm"][ids]
    return float(mtm.mean()), market_facts(market.result())


def fixed_episode(state: TrainState, kind: str, seed: int, steps: int) -> tuple[float, dict]:
    """The same market with fixed-rule agents in every learner's place (the fixed ecology);
    the mean MTM of the fixed agents standing in for ``kind``'s learners."""
    base = state.config.make_env().market_config.replace(steps=steps)
    population = base.population
    counts = {}
    for learner_kind in dict.fromkeys(population.learners):
        field = FIXED_COUNT_FIELD[learner_kind]
        counts[field] = getattr(population, field) + population.learners.count(learner_kind)
    before = getattr(population, FIXED_COUNT_FIELD[kind])
    population = dataclasses.replace(population, learners=(), **counts)
    market = Market(base.replace(population=population), seed)
    market.advance(steps)
    ids = market.agent_ids[kind][before:]
    mtm = market.reward_components()["mtm"][ids]
    return float(mtm.mean()), market_facts(market.result())


def paired_evaluation(
    state: TrainState, seeds: list[int], steps: int | None = None, kind: str | None = None
) -> dict:
    """Learned against fixed on ``seeds`` (the **contract** of ``marlsim train --json``'s
    ``eval``): MTM means with 95% CIs, the paired difference's CI, wins out of N, and the
    market's facts under each."""
    bad = [seed for seed in seeds if is_training_seed(seed)]
    if bad:
        raise ValueError(f"evaluation seeds must not be training seeds, got {bad[:3]}")
    if not seeds:
        raise ValueError("evaluation needs at least one seed")
    kind = kind or state.config.types[0]
    steps = steps or state.config.episode_steps
    learned, fixed, learned_facts, fixed_facts = [], [], [], []
    for seed in seeds:
        value, facts = learned_episode(state, kind, seed, steps)
        learned.append(value)
        learned_facts.append(facts)
        value, facts = fixed_episode(state, kind, seed, steps)
        fixed.append(value)
        fixed_facts.append(facts)
    diff = np.array(learned) - np.array(fixed)

    def interval(samples) -> dict:
        mean, low, high = mean_ci(samples)
        return {"mean": mean, "ci_low": low, "ci_high": high}

    def facts_mean(rows: list[dict]) -> dict:
        return {name: float(np.nanmean([row[name] for row in rows])) for name in rows[0]}

    return {
        "kind": kind,
        "learned_mtm": interval(learned),
        "fixed_mtm": interval(fixed),
        "paired_diff": interval(diff),
        "wins": int((diff > 0).sum()),
        "n": len(seeds),
        "eval_seeds": list(seeds),
        "steps": steps,
        "learned_market": facts_mean(learned_facts),
        "fixed_market": facts_mean(fixed_facts),
        "beats_fixed": bool(interval(diff)["ci_low"] > 0) if len(seeds) > 1 else False,
        "per_seed": [
            {"seed": s, "learned": a, "fixed": b}
            for s, a, b in zip(seeds, learned, fixed, strict=True)
        ],
    }
