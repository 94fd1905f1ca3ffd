"""Checkpoints that restore a training run exactly and never unpickle code.

A checkpoint holds, per policy, the model's and the optimiser's state, the normalisers'
statistics, every random generator's state (numpy's and torch's) and the iteration, so that a
resumed run continues bit for bit. It contains only tensors, numbers, strings, lists and dicts
(numpy arrays become float64 tensors), so it loads with ``torch.load(weights_only=True)``:
opening a checkpoint from elsewhere cannot run its code. A file that is not ours, or is
damaged, gives one ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "marl-market-checkpoint/1"


class CheckpointError(Exception):
    """A checkpoint is missing, damaged or not a marl-market checkpoint."""


def _to_safe(value: Any) -> Any:
    """numpy arrays (and numpy scalars) to tensors / Python numbers, recursively."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, dtype=np.float64))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _to_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_safe(item) for item in value]
    return value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> str:
    """Write ``state`` to ``path`` atomically (a temporary file renamed over it); return its
    SHA-256 digest. A crash mid-write leaves any previous checkpoint at ``path`` intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, "state": _to_safe(state)}, temporary)
    os.replace(temporary, path)
    return file_digest(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved at ``path`` (numpy statistics come back as float64 tensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles: the error says it
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable marl-market checkpoint (damaged or foreign): {reason}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a marl-market checkpoint (no {FORMAT!r} tag)")
    return payload["state"]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def numpy_rng_state(rng: np.random.Generator) -> dict:
    """A generator's state as plain dicts and ints (what ``restore_numpy_rng`` takes)."""
    return rng.bit_generator.state


def restore_numpy_rng(state: dict) -> np.random.Generator:
    """A generator continuing exactly from ``state``."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
