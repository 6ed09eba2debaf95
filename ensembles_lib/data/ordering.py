"""Which samples each epoch visits, shared by both loader back ends."""

from __future__ import annotations

import numpy as np


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Sample indices of one epoch: FFCV's RANDOM order when shuffling, else 0..n-1."""
    return np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
