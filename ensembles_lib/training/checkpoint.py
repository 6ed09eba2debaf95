"""Per-epoch training checkpoints that `fit` writes and resumes from.

A checkpoint is a dict of tensors and primitive containers only (model and optimiser state,
the schedule's step count, the finished epochs, the history, the random-number generator
states as tensors), so it loads with `torch.load(weights_only=True)`: loading never runs code.
Writes go through `paths.atomic_path`, so a killed run leaves the previous epoch's checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..paths import atomic_path


def rng_state() -> dict:
    """The global torch (CPU and CUDA), NumPy and Python generator states, as tensors and lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured (CUDA states only where the same devices exist)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))


def fork_rng(device: torch.device):
    """torch.random.fork_rng over the CPU generator and, for a CUDA `device`, that device's generator:
    randomness drawn inside the block does not change what is drawn after it."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.random.fork_rng(devices=[index])


def save(path: Path | str, state: dict) -> None:
    """Write `state` to `path` atomically with torch.save."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path | str, map_location=None) -> dict:
    """Read a checkpoint written by `save` (weights_only=True: tensors and primitive containers only)."""
    return torch.load(path, map_location=map_location, weights_only=True)
