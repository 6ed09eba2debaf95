"""Per-epoch training checkpoints that `fit` writes and resumes from.

A checkpoint is a dict of tensors and primitive containers only (model and optimiser state,
the schedule's step count, the finished epochs, the history, the random-number generator
states as tensors), so it loads with `torch.load(weights_only=True)`: loading never runs code.
Writes go through `paths.write_verified`: atomic (a killed run leaves the previous epoch's
checkpoint) and with its SHA-256 recorded in `<checkpoint>.sha256`, which `load` and `verify`
check first, so a damaged checkpoint raises `paths.CorruptArtifact` instead of being resumed.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ..paths import CorruptArtifact, discard_verified, read_verified, write_verified


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
    """Restore what `rng_state` captured (CUDA states only where the same devices exist).

    The states may arrive on a GPU (a checkpoint loaded with map_location="cuda"): generator
    states are CPU byte tensors, so each is brought back to the CPU first."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].cpu().numpy().astype(np.uint32), np_state["pos"],
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
    """Write `state` to `path` atomically with torch.save, recording its SHA-256 beside it."""
    write_verified(path, lambda tmp: torch.save(state, tmp))


def verify(path: Path | str) -> Path:
    """`path` if it is a checkpoint `save` wrote and it is intact; CorruptArtifact naming it otherwise
    (a flipped byte, a swapped file, a missing hash record)."""
    return read_verified(path)


def load(path: Path | str, map_location=None) -> dict:
    """Read a checkpoint written by `save`, after checking its SHA-256 (CorruptArtifact if it does not
    match or cannot be unpickled); weights_only=True: tensors and primitive containers only."""
    try:
        return torch.load(verify(path), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError) as err:
        raise CorruptArtifact(f"{path} cannot be loaded as a checkpoint: {err}") from None


def discard(path: Path | str) -> None:
    """Remove a checkpoint and its hash record (absent ones are fine)."""
    discard_verified(path)
