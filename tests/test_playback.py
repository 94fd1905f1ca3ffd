"""A trained policy played in a market of the user's choosing (the Market page's learned maker)."""

from __future__ import annotations

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population
from marl_market.rl import runs
from marl_market.rl.ippo import TrainConfig
from marl_market.rl.playback import play_trained
from marl_market.store import RunStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    db = tmp_path_factory.mktemp("playback") / "runs.duckdb"
    config = TrainConfig(iterations=1, episode_steps=60, episodes_per_iteration=1, hidden=16)
    outcome = runs.run_training(db, config, eval_seeds=2)
    return db, outcome.run_id


def test_the_learned_maker_quotes_in_the_users_market_and_is_stored(trained):
    db, run_id = trained
    market = MarketConfig(steps=400, population=Population(makers=1, noise=6))
    played = play_trained(db, run_id, market, seed=5, store=RunStore(db))
    maker = played.learners["maker_0"]
    result = played.result
    # The sidebar's traders plus the learner's slot, and the learner traded.
    kinds = list(result.agents["kind"])
    assert kinds.count("maker") == 2 and kinds.count("noise") == 6  # one fixed, one learned
    assert result.agents["policy"][maker] == "learner"
    trades = result.trades
    assert np.count_nonzero((trades["buy_agent"] == maker) | (trades["sell_agent"] == maker)) > 0
    assert played.snapshots.step[-1] == 400 - 1  # the books after the last step
    # Stored as a run of kind env, and the same play gives the same run ID (no duplicate).
    assert RunStore(db).get_run(played.run_id)["kind"] == "env"
    again = play_trained(db, run_id, market, seed=5, store=RunStore(db))
    assert again.run_id == played.run_id


def test_a_market_with_other_assets_is_refused_with_one_message(trained):
    db, run_id = trained
    with pytest.raises(ValueError, match="trained its policies on 1 asset"):
        play_trained(db, run_id, MarketConfig(steps=100, n_assets=2), seed=1)
