"""The PettingZoo environment (DESIGN.md §3 contract): PettingZoo's own API and seed tests,
observations inside their spaces, rewards as the sum of their components, determinism, idle
learners changing nothing, the graph arrays, the torch_geometric helper, config errors, no
torch on import, and an episode stored as a run of kind ``env``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl_market.core.actions import ArbitrageAction, MakerAction, TakerAction, TraderAction
from marl_market.core.config import MarketConfig, Population
from marl_market.core.market import Market
from marl_market.core.observe import NODE_FEATURES, MarketObserver
from marl_market.core.results import REWARD_COMPONENTS
from marl_market.rl.env import parallel_env

SEED = 42
EVERY_TYPE = ("maker", "taker", "arb", "momentum", "value", "noise")


def random_actions(env, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        agent: rng.uniform(-1.0, 1.0, env.action_space(agent).shape).astype(np.float32)
        for agent in env.agents
    }


def idle_action(env, agent: str) -> np.ndarray:
    """Places nothing: zero sizes for a maker (-1 maps to 0), zero (the dead zone) for others."""
    action = np.zeros(env.action_space(agent).shape, dtype=np.float32)
    if agent.startswith("maker"):
        n = env.config.n_assets
        action[2 * n :] = -1.0
    return action


def play(env, seed: int, steps: int, action_seed: int = 0):
    """Observations, rewards and infos of ``steps`` steps with seeded random actions."""
    rng = np.random.default_rng(action_seed)
    observations, _ = env.reset(seed=seed)
    history = [observations]
    rewards, infos = [], []
    for _ in range(steps):
        observations, reward, _, _, info = env.step(random_actions(env, rng))
        history.append(observations)
        rewards.append(reward)
        infos.append(info)
    return history, rewards, infos


# ----------------------------------------------------------------------------- PettingZoo


def test_pettingzoo_parallel_api_test_passes():
    env = parallel_env()
    parallel_api_test(env, num_cycles=1000)
    assert env.possible_agents == ["maker_0", "taker_0", "arb_0"]
    assert env.metadata["name"] == "marl_market_v0"


def test_pettingzoo_parallel_api_test_passes_with_every_learner_type():
    env = parallel_env(
        n_assets=2,
        learners=(*EVERY_TYPE, "maker"),
        population=Population(takers=1, arbs=1),
        regime_switch=0.01,
        taker_fee=1e-4,
        episode_steps=300,
    )
    parallel_api_test(env, num_cycles=1000)
    assert env.possible_agents[-1] == "maker_1"


def test_pettingzoo_parallel_seed_test_passes():
    parallel_seed_test(lambda: parallel_env(episode_steps=200, correlation=0.5))


def test_an_episode_ends_by_truncation_and_empties_agents():
    env = parallel_env(episode_steps=20)
    env.reset(seed=SEED)
    for step in range(20):
        _, _, terminations, truncations, _ = env.step({})
        assert not any(terminations.values())
        assert all(truncations.values()) == (step == 19)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})


# ----------------------------------------------------------------------------- observations


def test_observations_lie_in_their_spaces_for_every_learner_type():
    env = parallel_env(n_assets=2, learners=EVERY_TYPE, regime_switch=0.05, correlation=0.7)
    history, _, _ = play(env, SEED, 150)
    for observations in history:
        assert set(observations) == set(env.possible_agents)
        for agent, observation in observations.items():
            assert env.observation_space(agent).contains(observation), agent
            for array in observation.values():
                assert np.all(np.isfinite(array))
    # The stress regime was visited and is observed in the nodes and the vector alike.
    stressed = [obs["maker_0"]["nodes"][0, NODE_FEATURES.index("stressed")] for obs in history]
    assert 0 < np.mean(stressed) < 1
    assert all(obs["maker_0"]["vector"][-1] == obs["maker_0"]["nodes"][0, -1] for obs in history)


def test_the_vector_shows_the_agents_own_account():
    env = parallel_env(n_assets=2, learners=("taker", "maker"))
    env.reset(seed=SEED)
    buy = np.array([1.0, 1.0], dtype=np.float32)  # buy as much as allowed every step
    for _ in range(30):
        observations, *_ = env.step({"taker_0": buy})
    market = env.market
    observer = MarketObserver(market)
    names = observer.vector_names()
    taker = dict(zip(names, observations["taker_0"]["vector"], strict=True))
    task = market.learners.tasks[market.learner_id("taker_0")]
    held = market.inventory[task.asset][market.learner_id("taker_0")]
    assert held > 0 and taker["remaining_target"] == pytest.approx(
        (task.target - held) / task.target
    )
    assert taker[f"inventory_{task.asset}"] > 0 and taker["cash"] < 0
    assert taker["time"] == pytest.approx(30 / env.config.episode_steps)
    maker = dict(zip(names, observations["maker_0"]["vector"], strict=True))
    assert maker["remaining_target"] == 0 and maker["cash"] == 0  # it never quoted
    # Per-asset market features in the vector are the nodes' own.
    nodes = observations["maker_0"]["nodes"]
    for asset in range(2):
        assert maker[f"spread_{asset}"] == nodes[asset, NODE_FEATURES.index("spread")]
        assert maker[f"log_mid_{asset}"] == nodes[asset, NODE_FEATURES.index("log_mid")]


def test_graph_arrays_are_fully_connected_with_the_configured_correlation():
    matrix = ((1.0, 0.8, 0.2), (0.8, 1.0, 0.5), (0.2, 0.5, 1.0))
    env = parallel_env(correlation_matrix=matrix)
    observations, _ = env.reset(seed=SEED)
    obs = observations["arb_0"]
    assert obs["nodes"].shape == (3, len(NODE_FEATURES)) == (3, 8)
    edges = obs["edge_index"]
    assert edges.shape == (2, 6) and edges.dtype == np.int64
    pairs = {(int(i), int(j)) for i, j in edges.T}
    assert pairs == {(i, j) for i in range(3) for j in range(3) if i != j}  # no self loops
    assert obs["edge_attr"].shape == (6, 1)
    for (i, j), attr in zip(edges.T, obs["edge_attr"][:, 0], strict=True):
        assert attr == pytest.approx(matrix[i][j])
    # No correlation configured: ones; one asset: no edges at all.
    plain, _ = parallel_env(learners=("maker",)).reset(seed=SEED)
    assert np.all(plain["maker_0"]["edge_attr"] == 1.0)
    single, _ = parallel_env(n_assets=1, learners=("maker",)).reset(seed=SEED)
    assert single["maker_0"]["edge_index"].shape == (2, 0)
    assert single["maker_0"]["edge_attr"].shape == (0, 1)


def test_to_data_builds_a_torch_geometric_graph():
    from marl_market.rl.env import to_data

    observations, _ = parallel_env(correlation=0.3).reset(seed=SEED)
    data = to_data(observations["maker_0"])
    assert tuple(data.x.shape) == (3, 8) and tuple(data.edge_index.shape) == (2, 6)
    assert tuple(data.edge_attr.shape) == (6, 1)
    assert data.num_nodes == 3 and data.edge_attr.flatten().tolist() == pytest.approx([0.3] * 6)
    np.testing.assert_array_equal(data.x.numpy(), observations["maker_0"]["nodes"])


def test_importing_the_env_does_not_import_torch():
    code = (
        "import sys, marl_market.rl.env as env; env.parallel_env().reset(seed=1); "
        "print(sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- rewards, actions


def test_rewards_are_the_sum_of_the_components_in_infos():
    env = parallel_env(learners=("maker", "taker", "arb"), taker_fee=2e-4, maker_rebate=1e-4)
    _, rewards, infos = play(env, SEED, 200)
    totals = dict.fromkeys(env.possible_agents, 0.0)
    for reward, info in zip(rewards, infos, strict=True):
        for agent, value in reward.items():
            assert value == info[agent]["reward"]
            assert value == pytest.approx(sum(info[agent][c] for c in REWARD_COMPONENTS))
            totals[agent] += value
    # The step rewards add up to the market's cumulative reward of each learner.
    cumulative = env.market.reward_components()["reward"]
    for agent, total in totals.items():
        assert total == pytest.approx(cumulative[env.market.learner_id(agent)])
    # Each type earns its own terms: the maker a liquidity bonus, the taker a delay penalty,
    # the arbitrageur an unhedged penalty, and the aggressors pay fees.
    summed = {a: {c: sum(i[a][c] for i in infos) for c in infos[0][a]} for a in totals}
    assert summed["maker_0"]["liquidity_bonus"] > 0
    assert summed["taker_0"]["delay_penalty"] < 0 and summed["taker_0"]["fees_paid"] > 0
    assert summed["arb_0"]["unhedged_penalty"] < 0


def test_same_seed_and_actions_give_identical_episodes():
    first = play(parallel_env(correlation=0.5), SEED, 200)
    second = play(parallel_env(correlation=0.5), SEED, 200)
    for obs_a, obs_b in zip(first[0], second[0], strict=True):
        for agent in obs_a:
            for key in obs_a[agent]:
                np.testing.assert_array_equal(obs_a[agent][key], obs_b[agent][key])
    assert first[1] == second[1] and first[2] == second[2]
    other = play(parallel_env(correlation=0.5), SEED + 1, 200)
    assert other[1] != first[1]


def test_unseeded_resets_follow_the_last_seed():
    env = parallel_env(episode_steps=50)
    env.reset(seed=SEED)
    first = env.reset()[0]["maker_0"]["vector"], env.market.seed
    env.reset(seed=SEED)
    again = env.reset()[0]["maker_0"]["vector"], env.market.seed
    assert first[1] == again[1] != SEED
    np.testing.assert_array_equal(first[0], again[0])


def test_idle_learners_leave_the_fixed_agents_market_unchanged():
    # Idle actions (no order) of every learner type: the fixed agents trade exactly as in a
    # market without learners (each slot draws from its own stream). A zero action is idle for
    # every type but the maker, whose zero action quotes mid-range sizes (it is not neutral).
    env = parallel_env(n_assets=2, learners=EVERY_TYPE, correlation=0.6, record=True)
    env.reset(seed=SEED)
    while env.agents:
        env.step({agent: idle_action(env, agent) for agent in env.agents})
    played = env.market.result()
    config = env.market_config.replace(population=Population())
    alone = Market(config, SEED).run()
    for column in ("mid", "volume", "spread", "fair_value", "bid_depth", "ask_depth"):
        np.testing.assert_array_equal(played.steps[column], alone.steps[column])
    for column in alone.trades:
        np.testing.assert_array_equal(played.trades[column], alone.trades[column])
    assert np.all(played.agents["n_trades"][-len(EVERY_TYPE) :] == 0)
    zero = np.zeros(env.action_space("maker_0").shape, dtype=np.float32)
    assert env.typed_action("maker_0", zero).size == (25, 25)


def test_box_actions_map_onto_typed_actions_as_documented():
    env = parallel_env(n_assets=2, learners=EVERY_TYPE)
    low, high = -np.ones(6, np.float32), np.ones(6, np.float32)
    assert env.typed_action("maker_0", low) == MakerAction((0.5, 0.5), (0.5, 0.5), (0, 0))
    assert env.typed_action("maker_0", high) == MakerAction((20.0, 20.0), (20.0, 20.0), (50, 50))
    assert env.typed_action("taker_0", np.array([0.9, 1.0])) == TakerAction(pytest.approx(0.9), 50)
    assert env.typed_action("arb_0", np.array([-1.0, 0.5, 1.0])) == ArbitrageAction(-1.0, True, 50)
    assert env.typed_action("arb_0", np.array([1.0, -0.5, -1.0])) == ArbitrageAction(1.0, False, 0)
    momentum = env.typed_action("momentum_0", np.array([1.0, -1.0, 1.0, -1.0, 5.0, np.nan]))
    assert momentum == TraderAction((1.0, 0.0), (1.0, -1.0), (10, 5))  # clipped; NaN -> 0
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.typed_action("taker_0", np.zeros(3))
    with pytest.raises(ValueError, match="no agent"):
        env.typed_action("maker_7", np.zeros(6))


# ----------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"n_assets": 0}, "n_assets must be an integer >= 1"),
        ({"n_assets": 2.5}, "n_assets must be an integer"),
        ({"learners": ()}, "learners is empty"),
        ({"learners": ("maker", "trader")}, "unknown type 'trader'"),
        ({"learners": "maker"}, "sequence of types"),
        ({"n_assets": 1, "learners": ("arb",)}, "n_assets must be >= 2"),
        ({"population": Population(learners=("maker",))}, "population.learners must be empty"),
        ({"population": {"makers": 2}}, "population must be a Population"),
        ({"correlation": 1.5}, r"correlation must be a number in \(-1, 1\)"),
        ({"correlation": 0.5, "correlation_matrix": ((1, 0), (0, 1))}, "not both"),
        ({"correlation_matrix": ((1.0, 0.5), (0.5, 1.0))}, "invalid correlation_matrix"),
        ({"correlation_matrix": "identity"}, "correlation_matrix must be a square matrix"),
        ({"correlation": -0.9}, "invalid correlation: .*semi-definite"),
        ({"regime_switch": 1.5}, "regime_switch must be a probability"),
        ({"maker_rebate": -0.001}, "maker_rebate must be a fraction"),
        ({"taker_fee": float("nan")}, "taker_fee must be a fraction"),
        ({"episode_steps": 0}, "episode_steps must be an integer >= 1"),
        ({"record": "yes"}, "record must be True or False"),
        ({"base": {"steps": 3}}, "base must be a MarketConfig"),
        ({"assets": 3}, "unknown config key"),
    ],
)
def test_bad_config_raises_one_clear_value_error(config, message):
    with pytest.raises(ValueError, match=message):
        parallel_env(**config)


# ----------------------------------------------------------------------------- storing


def test_an_episode_is_stored_as_a_run_of_kind_env(tmp_path):
    from marl_market.rl.episodes import store_episode
    from marl_market.store import RunStore

    db = tmp_path / "env.duckdb"
    env = parallel_env(episode_steps=300, correlation=0.5, record=True)
    play(env, SEED, 300)
    run_id = store_episode(env, db)
    assert store_episode(env, db) == run_id  # the same episode: the same run, stored once
    store = RunStore(db)
    row = store.get_run(run_id)
    assert row["kind"] == "env" and row["seed"] == SEED and row["n_steps"] == 300
    steps = store.load_steps(run_id)
    np.testing.assert_array_equal(steps["mid"], env.market.result().steps["mid"])
    agents = store.load_agents(run_id)
    learner_rows = agents["policy"] == "learner"
    assert list(agents["kind"][learner_rows]) == ["maker", "taker", "arb"]
    metrics = store.load_metrics(run_id)
    reward = env.market.reward_components()["reward"][env.market.learner_id("taker_0")]
    assert metrics["reward_taker_0"] == pytest.approx(reward)
    assert "mean_spread_ticks" in metrics
    # Another episode of the same seed (other actions) is another run.
    play(env, SEED, 300, action_seed=1)
    assert store_episode(env, db) != run_id
    # The command line opens it by its ID.
    out = subprocess.run(
        [sys.executable, "-m", "marl_market.cli", "runs", "show", run_id, "--db", str(db)]
        + ["--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["kind"] == "env" and shown["config"]["env"]["learners"]["maker_0"] >= 0


def test_store_episode_needs_a_recorded_episode(tmp_path):
    from marl_market.rl.episodes import store_episode

    env = parallel_env(episode_steps=10)
    with pytest.raises(ValueError, match="call reset"):
        store_episode(env, tmp_path / "x.duckdb")
    env.reset(seed=SEED)
    env.step({})
    with pytest.raises(ValueError, match="record=True"):
        store_episode(env, tmp_path / "x.duckdb")
    recorded = parallel_env(episode_steps=10, record=True)
    recorded.reset(seed=SEED)
    with pytest.raises(ValueError, match="no step played"):
        store_episode(recorded, tmp_path / "x.duckdb")
    assert not (tmp_path / "x.duckdb").exists()


def test_a_default_market_config_is_the_base():
    env = parallel_env(episode_steps=77, maker_rebate=1e-4, regime_switch=0.01)
    config = env.market_config
    assert config.steps == 77 and config.n_assets == 3
    assert config.population == Population(learners=("maker", "taker", "arb"))
    assert config.rules.maker_rebate == 1e-4
    assert config.regimes.leave_normal == config.regimes.leave_stress == 0.01
    assert MarketConfig().maker == config.maker
