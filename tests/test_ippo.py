"""IPPO on the environment: identical runs give identical results, a resumed run ends where an
uninterrupted one does, and evaluation seeds are never training seeds."""

from __future__ import annotations

import pytest
import torch

from marl_market.rl.checkpoint import load_checkpoint, save_checkpoint
from marl_market.rl.ippo import TrainConfig, is_training_seed, train, training_seed

SMALL = dict(iterations=3, episode_steps=60, episodes_per_iteration=1, hidden=16)


def flat(state) -> list:
    """Every number a run logged, in order, plus its final weights."""
    numbers = []
    for log in state.logs:
        for kind in sorted(log["types"]):
            entry = log["types"][kind]
            numbers += [entry["episode_reward"], entry["policy_loss"], entry["approx_kl"]]
        numbers += log["market"]["mean_spread"]
    weights = [
        p.detach().clone() for policy in state.policies.values() for p in policy.net.parameters()
    ]
    return numbers, weights


def assert_same(a, b):
    assert a[0] == b[0]
    for x, y in zip(a[1], b[1], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("learners", "encoder", "n_assets"),
    [(("maker",), "mlp", 1), (("maker", "arb"), "sage", 2), (("taker",), "gat", 2)],
)
def test_two_identical_runs_give_identical_results(learners, encoder, n_assets):
    config = TrainConfig(learners=learners, encoder=encoder, n_assets=n_assets, **SMALL)
    first, second = train(config), train(config)
    assert len(first.logs) == 3
    assert_same(flat(first), flat(second))
    for log in first.logs:
        for entry in log["types"].values():
            for key in ("approx_kl", "clipfrac", "explained_variance", "entropy", "value_loss"):
                assert key in entry
        assert set(log["market"]) == {
            "mean_spread",
            "volatility",
            "excess_kurtosis",
            "tracking_error",
        }
        assert len(log["market"]["mean_spread"]) == n_assets


def test_results_do_not_depend_on_the_worker_processes_or_the_lockstep_width():
    # Five episodes per iteration: in waves of 2, 2 and 1 episodes (num_envs=2), stepped in
    # this process alone or split with a worker process; in one wave of 5, in one process.
    small = {**SMALL, "episodes_per_iteration": 5, "iterations": 2}
    config = TrainConfig(learners=("maker", "taker"), num_envs=2, **small)
    alone = train(config, workers=1)
    assert_same(flat(alone), flat(train(config, workers=2)))
    wide = TrainConfig(learners=("maker", "taker"), num_envs=5, **small)
    assert_same(flat(train(wide, workers=2)), flat(train(wide, workers=1)))


def test_a_resumed_run_ends_identical_to_an_uninterrupted_one(tmp_path):
    config = TrainConfig(learners=("maker",), encoder="sage", n_assets=2, **SMALL)
    uninterrupted = train(config)
    halfway = train(config, until=1)
    save_checkpoint(tmp_path / "ck.pt", halfway.checkpoint())
    resumed = train(config, resume=load_checkpoint(tmp_path / "ck.pt"))
    assert resumed.iteration == 3 and len(resumed.logs) == 2
    # The resumed run's last two iterations are the uninterrupted run's last two.
    tail = type(uninterrupted)(config, uninterrupted.policies, uninterrupted.generator)
    tail.logs = uninterrupted.logs[1:]
    assert_same(flat(tail), flat(resumed))


def test_training_seeds_never_reach_the_evaluation_range():
    assert training_seed(42, 0) != training_seed(43, 0)
    assert all(
        is_training_seed(training_seed(seed, k)) for seed in (0, 42, 999) for k in (0, 10**5)
    )
    assert not any(is_training_seed(seed) for seed in range(10_000))


def test_bad_training_settings_are_refused_with_one_message():
    with pytest.raises(ValueError, match="unknown encoder"):
        TrainConfig(encoder="transformer")
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        TrainConfig(iterations=0)
    with pytest.raises(ValueError, match="arbitrageur"):
        TrainConfig(learners=("arb",), n_assets=1)
