"""The paired evaluation: learned and fixed play the same held-out markets."""

from __future__ import annotations

import numpy as np
import pytest

from marl_market.core.config import MarketConfig, Population
from marl_market.core.market import Market
from marl_market.rl.evaluate import fixed_episode, paired_evaluation
from marl_market.rl.ippo import TrainConfig, train, training_seed


@pytest.fixture(scope="module")
def trained():
    config = TrainConfig(iterations=1, episode_steps=80, episodes_per_iteration=1, hidden=16)
    return train(config)


def test_the_fixed_run_puts_a_fixed_maker_in_the_learners_place(trained):
    mtm, facts = fixed_episode(trained, seed=7, steps=80)
    # The fixed ecology: the default population with one more maker, the learner's stand-in.
    market = Market(MarketConfig(steps=80, population=Population(makers=3)), 7)
    market.advance(80)
    assert mtm == {"maker": pytest.approx(market.reward_components()["mtm"][2])}
    assert set(facts) == {"mean_spread", "excess_kurtosis", "tracking_error"}


def test_paired_evaluation_reports_cis_and_wins_on_held_out_seeds(trained):
    report = paired_evaluation(trained, seeds=[0, 1, 2, 3], steps=80)
    for key in ("learned_mtm", "fixed_mtm", "paired_diff"):
        assert set(report[key]) == {"mean", "ci_low", "ci_high"}
        assert report[key]["ci_low"] <= report[key]["mean"] <= report[key]["ci_high"]
    assert 0 <= report["wins"] <= 4 and report["eval_seeds"] == [0, 1, 2, 3]
    per_seed = report["per_seed"]
    diffs = [row["learned"] - row["fixed"] for row in per_seed]
    assert report["paired_diff"]["mean"] == pytest.approx(np.mean(diffs))


def test_evaluation_refuses_training_seeds(trained):
    with pytest.raises(ValueError, match="must not be training seeds"):
        paired_evaluation(trained, seeds=[1, training_seed(42, 0)], steps=20)


def test_every_learning_type_and_the_market_are_compared_pairwise():
    config = TrainConfig(
        learners=("maker", "taker"), iterations=1, episode_steps=80, episodes_per_iteration=1,
        hidden=16,
    )  # fmt: skip
    report = paired_evaluation(train(config), seeds=[1, 2, 3], steps=80)
    assert set(report["types"]) == {"maker", "taker"}
    assert report["types"]["maker"]["paired_diff"] == report["paired_diff"]  # the headline
    for part in report["types"].values():
        assert 0 <= part["wins"] <= 3
    # The market's paired differences are the per-seed differences' means.
    for name, diff in report["market_diff"].items():
        per_seed = [row[f"learned_{name}"] - row[f"fixed_{name}"] for row in report["per_seed"]]
        assert diff["mean"] == pytest.approx(np.mean(per_seed))
