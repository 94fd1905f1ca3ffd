"""Storing an environment's episode as a run of kind ``env``, like any other run.

``store_episode(env, db)`` writes the episode played so far (the environment must be built with
``record=True``) through the same store and facts functions ``marlsim simulate`` uses, so
``marlsim runs show RUN_ID`` and the app's Runs page open it by its run ID. An episode depends
on the learners' actions, not only on config and seed, so its run ID also hashes what the
market did (every trade and step row): two different episodes of one seed get two IDs, and
storing the same episode twice is a no-op. It cannot be re-run from config and seed alone
(``marlsim runs verify`` says so).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from marl_market.lab.experiments import (
    DEFAULT_RETURN_INTERVAL,
    facts_metrics,
    facts_of,
    market_summary,
    simulation_config,
)
from marl_market.rl.env import MarketEnv
from marl_market.store import RunStore, code_version, make_run_id

ENV_KIND = "env"


def episode_digest(result) -> str:
    """16 hex digits of the sha256 of a run's step and trade columns (what the market did)."""
    digest = hashlib.sha256()
    for table in (result.steps, result.trades):
        for name in sorted(table):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(table[name]).tobytes())
    return digest.hexdigest()[:16]


def store_episode(
    env: MarketEnv,
    db: str | os.PathLike[str] | RunStore,
    return_interval: int = DEFAULT_RETURN_INTERVAL,
) -> str:
    """Store the steps ``env`` has played in its current episode as a run of kind ``env``.

    Returns the run ID. Raises ``ValueError`` if the environment keeps no record
    (``record=False``) or has played no step since ``reset``. The stored config is the
    market's (with ``steps`` = the steps played), the learners' names and agent ids, and the
    episode's digest; the metrics are the facts of asset 0 (when the episode is long enough
    for them) and each learner's total reward; the summary adds what ``marlsim simulate``
    stores (``market_summary``) and each learner's reward components.
    """
    market = env.market
    if market is None:
        raise ValueError("no episode to store: call reset() and play some steps first")
    if not market.record:
        raise ValueError(
            "this environment keeps no record: build it with parallel_env(record=True)"
        )
    if market.t == 0:
        raise ValueError("no step played since reset(): nothing to store")
    result = market.result()
    # The run is as long as the steps played (an episode may be stored before it ends).
    result = dataclasses.replace(result, config=result.config.replace(steps=market.t))
    learners = {name: market.learner_id(name) for name in market.learner_names}
    config = simulation_config(result.config, return_interval)
    config["env"] = {
        "learners": learners,
        "episode_steps": env.config.episode_steps,
        "episode_digest": episode_digest(result),
    }
    run_id = make_run_id(ENV_KIND, config, market.seed, code_version())
    store = db if isinstance(db, RunStore) else RunStore(db)
    components = market.reward_components()
    rewards = {
        name: {key: float(values[agent_id]) for key, values in components.items()}
        for name, agent_id in learners.items()
    }
    metrics = {f"reward_{name}": parts["reward"] for name, parts in rewards.items()}
    summary: dict = {"counters": result.counters, "learners": rewards}
    try:
        facts = facts_of(result, return_interval)
    except ValueError as error:  # too short for stylised facts: stored without them
        summary["facts_skipped"] = str(error)
    else:
        metrics.update(facts_metrics(facts))
        summary["facts"] = facts.as_dict()
        summary["market"] = market_summary(result, return_interval, facts)
    store.save_run(run_id, ENV_KIND, market.seed, config, result, metrics, summary=summary)
    return run_id
