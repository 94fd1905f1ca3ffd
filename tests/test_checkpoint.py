"""Checkpoints restore models, optimisers, statistics and generators exactly, load without
unpickling code, and refuse a damaged or foreign file with one clear error."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from marl_market.rl.checkpoint import (
    CheckpointError,
    load_checkpoint,
    numpy_rng_state,
    restore_numpy_rng,
    save_checkpoint,
)
from marl_market.rl.ppo import RunningNorm


def make_state(seed: int = 42):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    norm = RunningNorm((3,))
    norm.update(np.random.default_rng(seed).normal(size=(10, 3)))
    rng = np.random.default_rng(seed)
    rng.random(5)
    generator = torch.Generator().manual_seed(seed)
    torch.rand(3, generator=generator)
    state = {
        "iteration": 7,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "obs_norm": norm.state_dict(),
        "numpy_rng": numpy_rng_state(rng),
        "torch_rng": generator.get_state(),
    }
    return state, model, norm, rng, generator


def test_a_checkpoint_restores_everything_exactly(tmp_path):
    state, model, norm, rng, generator = make_state()
    digest = save_checkpoint(tmp_path / "ck.pt", state)
    assert len(digest) == 64
    loaded = load_checkpoint(tmp_path / "ck.pt")
    assert loaded["iteration"] == 7
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(loaded["model"])
    torch.testing.assert_close(restored.weight, model.weight)
    optimizer = torch.optim.Adam(restored.parameters(), lr=1e-3)
    optimizer.load_state_dict(loaded["optimizer"])
    assert optimizer.state_dict()["state"][0]["step"] == 1
    again = RunningNorm((3,))
    again.load_state_dict({k: np.asarray(v) for k, v in loaded["obs_norm"].items()})
    np.testing.assert_array_equal(again.mean, norm.mean)
    assert restore_numpy_rng(loaded["numpy_rng"]).random() == rng.random()
    resumed = torch.Generator()
    resumed.set_state(loaded["torch_rng"])
    torch.testing.assert_close(torch.rand(3, generator=resumed), torch.rand(3, generator=generator))


def test_a_damaged_checkpoint_gives_one_clear_error(tmp_path):
    state, *_ = make_state()
    path = tmp_path / "ck.pt"
    save_checkpoint(path, state)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable marl-market checkpoint"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):  # what a malicious pickle would run on load
        return (print, ("owned",))


def test_a_foreign_checkpoint_is_refused_without_running_its_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "marl-market-checkpoint/1", "state": Payload()}, path)
    with pytest.raises(CheckpointError, match="damaged or foreign"):
        load_checkpoint(path)
    assert "owned" not in capsys.readouterr().out
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.ones(2)}, plain)
    with pytest.raises(CheckpointError, match="not a marl-market checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickle.pt"
    pickled.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
