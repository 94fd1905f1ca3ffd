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
    """Mean spread, excess kurtosis of 5-step returns and tracking error (RMS of mid minus fair
    value), each the mean over the run's books."""
    per_book = []
    for asset in range(result.config.n_assets):
        mid = result.asset_series("mid", asset)
        fair = result.asset_series("fair_value", asset)
        per_book.append(
            (
                float(np.nanmean(result.asset_series("spread", asset))),
                float(excess_kurtosis(log_returns(mid, 5))),
                float(np.sqrt(np.mean((mid - fair) ** 2))),
            )
        )
    means = np.nanmean(np.array(per_book), axis=0)
    return dict(zip(MARKET_FACTS, (float(x) for x in means), strict=True))


MARKET_FACTS = ("mean_spread", "excess_kurtosis", "tracking_error")


def mean_actions(state: TrainState, observations: dict) -> dict[str, np.ndarray]:
    """Every learner's action: its type's policy's mean (no exploration noise), from the
    observations normalised by the statistics training ended with."""
    actions: dict[str, np.ndarray] = {}
    for policy in state.policies.values():
        batch = observation_batch(policy, observations, state.config.norm_obs, update=False)
        with torch.no_grad():
            mean = policy.net.deterministic(as_tensors(batch)).numpy()
        actions.update(zip(policy.agents, mean, strict=True))
    return actions


def learned_episode(state: TrainState, seed: int, steps: int) -> tuple[dict[str, float], dict]:
    """One episode played with the learners' policies (their mean actions): each learning
    type's mean MTM over its agents, and the market's facts."""
    config = dataclasses.replace(
        state.config, episode_steps=steps, env={**state.config.env, "record": True}
    )
    env = config.make_env()
    observations, _ = env.reset(seed=seed)
    while env.agents:
        observations, *_ = env.step(mean_actions(state, observations))
    market = env.market
    mtm = market.reward_components()["mtm"]
    per_type = {
        kind: float(mtm[[market.learner_id(name) for name in policy.agents]].mean())
        for kind, policy in state.policies.items()
    }
    return per_type, market_facts(market.result())


def fixed_episode(state: TrainState, seed: int, steps: int) -> tuple[dict[str, float], dict]:
    """The same market with fixed-rule agents in every learner's place (the fixed ecology):
    per learning type, the mean MTM of the fixed agents standing in for its learners, and the
    market's facts."""
    base = state.config.make_env().market_config.replace(steps=steps)
    population = base.population
    counts, before = {}, {}
    for kind in dict.fromkeys(population.learners):
        field = FIXED_COUNT_FIELD[kind]
        before[kind] = getattr(population, field)
        counts[field] = before[kind] + population.learners.count(kind)
    population = dataclasses.replace(population, learners=(), **counts)
    market = Market(base.replace(population=population), seed)
    market.advance(steps)
    mtm = market.reward_components()["mtm"]
    per_type = {kind: float(mtm[market.agent_ids[kind][before[kind] :]].mean()) for kind in before}
    return per_type, market_facts(market.result())


def _interval(samples) -> dict:
    mean, low, high = mean_ci(samples)
    return {"mean": mean, "ci_low": low, "ci_high": high}


def _paired(learned: list[float], fixed: list[float]) -> dict:
    """MTM of learned and fixed, their paired difference with 95% CIs, and wins."""
    diff = np.array(learned) - np.array(fixed)
    return {
        "learned_mtm": _interval(learned),
        "fixed_mtm": _interval(fixed),
        "paired_diff": _interval(diff),
        "wins": int((diff > 0).sum()),
    }


def paired_evaluation(
    state: TrainState,
    seeds: list[int],
    steps: int | None = None,
    kind: str | None = None,
    initial: TrainState | None = None,
) -> dict:
    """Learned against fixed on ``seeds`` (the **contract** of ``marlsim train --json``'s
    ``eval``): MTM means with 95% CIs, the paired difference's CI, wins out of N, and the
    market's facts under each.

    The top level is ``kind``'s (default: the first learning type); ``types`` has the same
    numbers for every learning type (``--everyone``), and ``market_diff`` the paired
    difference (learned minus fixed) of each market fact with its 95% CI.

    ``initial`` (the run's untrained policies, ``ippo.new_state``) is played on the same seeds
    too: ``vs_initial`` per type is the paired difference learned minus untrained, which says
    whether training, rather than the action space's default quotes, earned the margin."""
    bad = [seed for seed in seeds if is_training_seed(seed)]
    if bad:
        raise ValueError(f"evaluation seeds must not be training seeds, got {bad[:3]}")
    if not seeds:
        raise ValueError("evaluation needs at least one seed")
    kind = kind or state.config.types[0]
    steps = steps or state.config.episode_steps
    learned: list[dict[str, float]] = []
    fixed: list[dict[str, float]] = []
    learned_facts, fixed_facts = [], []
    untrained: list[dict[str, float]] = []
    for seed in seeds:
        if initial is not None:
            untrained.append(learned_episode(initial, seed, steps)[0])
        values, facts = learned_episode(state, seed, steps)
        learned.append(values)
        learned_facts.append(facts)
        values, facts = fixed_episode(state, seed, steps)
        fixed.append(values)
        fixed_facts.append(facts)
    types = {
        t: _paired([row[t] for row in learned], [row[t] for row in fixed])
        for t in state.config.types
    }
    if untrained:
        for t, part in types.items():
            ours = [row[t] for row in learned]
            part["initial_mtm"] = _interval([row[t] for row in untrained])
            part["vs_initial"] = _interval(np.array(ours) - [row[t] for row in untrained])
    head = types[kind]

    def facts_mean(rows: list[dict]) -> dict:
        return {name: float(np.nanmean([row[name] for row in rows])) for name in MARKET_FACTS}

    # What the learners do to the market, paired by seed (learned minus fixed): a private gain
    # can come with a worse market for everyone else.
    market_diff = {}
    for name in MARKET_FACTS:
        diff = np.array(
            [a[name] - b[name] for a, b in zip(learned_facts, fixed_facts, strict=True)]
        )
        diff = diff[np.isfinite(diff)]
        market_diff[name] = (
            _interval(diff) if diff.size else {"mean": None, "ci_low": None, "ci_high": None}
        )
    return {
        "kind": kind,
        **head,
        "n": len(seeds),
        "eval_seeds": list(seeds),
        "steps": steps,
        "learned_market": facts_mean(learned_facts),
        "fixed_market": facts_mean(fixed_facts),
        "market_diff": market_diff,
        "types": types,
        "beats_fixed": bool(head["paired_diff"]["ci_low"] > 0) if len(seeds) > 1 else False,
        "per_seed": [
            {"seed": s, "learned": a[kind], "fixed": b[kind], **_per_seed_market(fa, fb)}
            for s, a, b, fa, fb in zip(
                seeds, learned, fixed, learned_facts, fixed_facts, strict=True
            )
        ],
    }


def _per_seed_market(learned: dict, fixed: dict) -> dict:
    return {
        f"{side}_{name}": facts[name]
        for side, facts in (("learned", learned), ("fixed", fixed))
        for name in MARKET_FACTS
    }
