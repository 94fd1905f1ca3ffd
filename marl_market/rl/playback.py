"""A trained policy in a market of the user's choosing: the Market page's learned maker.

``play_trained`` loads a stored training run's policies (its latest checkpoint, digest
checked), puts the run's learner slots into the given market (``env.market_env``: the slots
join that market's fixed-rule traders), plays the whole run with every slot driven by its
type's policy (the mean action, as the evaluation plays it) and snapshots the books as the
Market page's own runs do. With a store it is saved as a run of kind ``env``
(``episodes.store_episode``), so its run ID opens it anywhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from marl_market.core.config import MarketConfig
from marl_market.core.results import RunResult
from marl_market.lab.experiments import DEFAULT_RETURN_INTERVAL
from marl_market.lab.snapshots import (
    DEFAULT_LEVELS,
    BookSnapshots,
    SnapshotRecorder,
    default_interval,
)
from marl_market.rl.env import market_env
from marl_market.rl.episodes import store_episode
from marl_market.rl.evaluate import mean_actions
from marl_market.rl.runs import load_trained_state
from marl_market.store import RunStore


@dataclass
class PlayedRun:
    """A market played with a training run's policies in their slots."""

    run_id: str | None
    """The stored run (kind ``env``); None when no store was given."""
    result: RunResult
    snapshots: BookSnapshots
    learners: dict[str, int]
    """Slot name (``maker_0``) -> agent id in ``result``'s tables."""
    seconds: float


def play_trained(
    db: str | os.PathLike[str],
    train_run_id: str,
    market: MarketConfig,
    seed: int,
    *,
    store: RunStore | None = None,
    return_interval: int = DEFAULT_RETURN_INTERVAL,
    snapshot_every: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PlayedRun:
    """Play ``market`` (seed ``seed``) with training run ``train_run_id``'s learners added.

    Raises ``ValueError`` when the market's assets differ from the ones the policies were
    trained on (the observation has a node per asset), or it has venues; ``StoreError`` /
    ``CheckpointError`` when the run or its checkpoint cannot be read.
    """
    state = load_trained_state(db, train_run_id)
    trained = state.config
    if market.n_assets != trained.n_assets:
        raise ValueError(
            f"run {train_run_id} trained its policies on {trained.n_assets} asset(s) and this "
            f"market has {market.n_assets}: set Assets to {trained.n_assets} to play them"
        )
    env = market_env(market, trained.learners)
    started = time.perf_counter()
    observations, _ = env.reset(seed=seed)
    recorder = SnapshotRecorder(
        snapshot_every or default_interval(market.steps), DEFAULT_LEVELS, range(market.n_assets)
    )
    recorder.schedule(env.market)  # before the first step, as simulate_with_snapshots does
    total = market.steps
    while env.agents:
        observations, *_ = env.step(mean_actions(state, observations))
        t = env.market.t
        if progress is not None and (t % 1000 == 0 or t == total):
            progress(t, total)
    recorder(env.market)  # the books after the last step
    seconds = time.perf_counter() - started
    run_id = store_episode(env, store, return_interval) if store is not None else None
    learners = {name: env.market.learner_id(name) for name in env.possible_agents}
    return PlayedRun(run_id, env.market.result(), recorder.snapshots(), learners, seconds)
