"""PPO's pure parts checked by hand: GAE, the clipped objective at its edges, the normaliser,
graph batching, and a short update that learns a toy task while its entropy falls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marl_market.rl.nets import ActorCritic, batch_graphs, make_encoder, to_tensors
from marl_market.rl.ppo import (
    PPOConfig,
    Rollout,
    RunningNorm,
    annealed,
    compute_gae,
    explained_variance,
    ppo_loss,
    ppo_update,
)


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1)


def test_gae_matches_a_hand_computed_example():
    rewards, values = column(1, 2, 3), column(0.5, 1.0, 1.5)
    dones = column(0, 0, 0)
    next_value, next_done = torch.tensor([2.0], dtype=torch.float64), torch.zeros(1)
    advantages, returns = compute_gae(rewards, values, dones, next_value, next_done, 0.9, 0.8)
    # delta = (1.4, 2.35, 3.3); A2 = 3.3, A1 = 2.35 + 0.72 * 3.3, A0 = 1.4 + 0.72 * A1
    expected = [1.4 + 0.72 * (2.35 + 0.72 * 3.3), 2.35 + 0.72 * 3.3, 3.3]
    np.testing.assert_allclose(advantages.squeeze(1), expected)
    np.testing.assert_allclose(returns, advantages + values)


def test_gae_stops_at_an_episode_boundary():
    rewards, values = column(1, 2, 3), column(0.5, 1.0, 1.5)
    dones = column(0, 0, 1)  # the observation at step 2 began a new episode
    next_value, next_done = torch.tensor([2.0], dtype=torch.float64), torch.zeros(1)
    advantages, _ = compute_gae(rewards, values, dones, next_value, next_done, 0.9, 0.8)
    # Step 1's episode ends after it: delta1 = 2 - 1.0, nothing bootstrapped from step 2.
    np.testing.assert_allclose(advantages.squeeze(1), [1.4 + 0.72 * 1.0, 1.0, 3.3])


def policy_gradient(ratio: float, advantage: float, clip: float = 0.2) -> float:
    new = torch.tensor([math.log(ratio)], requires_grad=True)
    parts = ppo_loss(
        new,
        torch.zeros(1),
        torch.tensor([advantage]),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        clip,
        True,
        0.0,
        0.0,
    )
    parts["policy_loss"].backward()
    return float(new.grad)


@pytest.mark.parametrize(
    ("ratio", "advantage", "moves"),
    [
        (1.19, 1.0, True),  # inside the clip: the gradient raises the ratio
        (1.21, 1.0, False),  # past 1 + eps with a positive advantage: clipped, no gradient
        (0.79, 1.0, True),  # below 1 - eps with a positive advantage: still pulled back up
        (0.81, -1.0, True),
        (0.79, -1.0, False),  # past 1 - eps with a negative advantage: clipped
        (1.21, -1.0, True),  # above 1 + eps with a negative advantage: pulled back down
    ],
)
def test_the_clipped_objective_at_its_edges(ratio, advantage, moves):
    gradient = policy_gradient(ratio, advantage)
    if moves:
        assert gradient != 0.0
        assert math.copysign(1.0, -gradient) == math.copysign(1.0, advantage)
    else:
        assert gradient == 0.0


def test_the_value_loss_is_clipped_around_the_old_value():
    returns, old = torch.tensor([1.0]), torch.tensor([0.0])
    new = torch.tensor([0.5], requires_grad=True)
    args = (torch.zeros(1), torch.zeros(1), torch.zeros(1))
    parts = ppo_loss(*args, new, old, returns, torch.zeros(1), 0.2, True, 0.0, 1.0)
    # max((0.5 - 1)^2, (0 + 0.2 - 1)^2) / 2 = 0.32
    assert float(parts["value_loss"].detach()) == pytest.approx(0.32)
    unclipped = ppo_loss(*args, new, old, returns, torch.zeros(1), 0.2, False, 0.0, 1.0)
    assert float(unclipped["value_loss"].detach()) == pytest.approx(0.125)


def test_running_norm_matches_numpy_over_batches():
    rng = np.random.default_rng(42)
    data = rng.normal(3.0, 2.0, (1_000, 4))
    norm = RunningNorm((4,))
    for chunk in np.array_split(data, 7):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(norm.var, data.var(axis=0), rtol=1e-6)
    restored = RunningNorm((4,))
    restored.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(restored.normalise(data[:3]), norm.normalise(data[:3]))


def test_schedules_and_explained_variance():
    assert annealed(1.0, 0.0, 0, 11) == 1.0 and annealed(1.0, 0.0, 10, 11) == 0.0
    assert annealed(1.0, 0.0, 5, 11) == pytest.approx(0.5)
    target = np.array([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == 1.0
    assert math.isnan(explained_variance(target, np.ones(3)))


def test_batching_graphs_matches_torch_geometric():
    from torch_geometric.data import Batch, Data

    rng = np.random.default_rng(42)
    nodes = torch.tensor(rng.normal(size=(3, 4, 2)), dtype=torch.float32)
    edge_index = torch.tensor([[i, j] for i in range(4) for j in range(4) if i != j]).T
    edge_attr = torch.tensor(rng.normal(size=(3, 12, 1)), dtype=torch.float32)
    x, edges, attr, batch = batch_graphs(nodes, edge_index, edge_attr)
    reference = Batch.from_data_list(
        [Data(x=nodes[b], edge_index=edge_index, edge_attr=edge_attr[b]) for b in range(3)]
    )
    torch.testing.assert_close(x, reference.x)
    torch.testing.assert_close(edges, reference.edge_index)
    torch.testing.assert_close(attr, reference.edge_attr)
    torch.testing.assert_close(batch, reference.batch)


def toy_observations(n: int, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    edge_index = np.array([[0, 1], [1, 0]], dtype=np.int64)
    return [
        {
            "vector": rng.normal(size=3).astype(np.float32),
            "nodes": rng.normal(size=(2, 4)).astype(np.float32),
            "edge_index": edge_index,
            "edge_attr": np.ones((2, 1), np.float32),
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize("encoder", ["mlp", "sage", "gat"])
def test_ppo_learns_a_toy_target_and_its_entropy_falls(encoder):
    """One-step episodes rewarding actions near 0.5: the mean moves there, the entropy falls."""
    torch.set_num_threads(1)  # tiny networks: threads only contend
    torch.manual_seed(0)  # only for the layers' initial weights; sampling uses the generator
    rng = np.random.default_rng(42)
    generator = torch.Generator().manual_seed(42)
    policy = ActorCritic(make_encoder(encoder, 3, 4, hidden=16), action_dim=1)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    config = PPOConfig(update_epochs=4, num_minibatches=4, ent_coef=0.0)
    entropies, rewards_seen = [], []
    for _ in range(20):
        obs = to_tensors(toy_observations(128, rng))
        with torch.no_grad():
            action, logprob, value = policy.act(obs, generator)
        reward = -((action.squeeze(-1) - 0.5) ** 2)
        rollout = Rollout(obs, action, logprob, value, reward - value, reward)
        stats = ppo_update(policy, optimizer, rollout, config, 0.0, generator)
        entropies.append(stats["entropy"])
        rewards_seen.append(float(reward.mean()))
    assert entropies[-1] < entropies[0]
    assert np.mean(rewards_seen[-5:]) > np.mean(rewards_seen[:5])
    for key in ("approx_kl", "clipfrac", "explained_variance", "policy_loss", "value_loss"):
        assert key in stats
    if encoder == "gat":
        assert policy.encoder.attention is not None


@pytest.mark.parametrize("encoder", ["mlp", "sage"])
def test_acting_logprob_and_value_are_what_the_update_recomputes(encoder):
    # ``act`` computes the log-density from its noise; the update recomputes it from the action
    # (``evaluate``). They must agree, or PPO's first ratio is not 1 and the clip bites at once.
    torch.manual_seed(0)
    policy = ActorCritic(make_encoder(encoder, 3, 4, hidden=16), action_dim=3)
    with torch.no_grad():
        policy.actor_logstd.copy_(torch.tensor([-0.7, 0.0, 0.4]))
        obs = to_tensors(toy_observations(64, np.random.default_rng(42)))
        action, logprob, value = policy.act(obs, torch.Generator().manual_seed(42))
        again, _, value_again = policy.evaluate(obs, action)
    torch.testing.assert_close(logprob, again, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(value, value_again)
