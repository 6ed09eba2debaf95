"""Per-channel normalisation as the first layer of every model.

Images enter every model as float NCHW in [0, 1] (DESIGN.md), so attack budgets stay in pixel
units; the model itself maps pixels to (x - mean) / std. Used by every chapter through
`models.build`, which puts a `Normalize` first in each architecture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _per_channel(value: float | Sequence[float], channels: int, name: str) -> torch.Tensor:
    """A (1, C, 1, 1) float tensor from a scalar or a length-C sequence; ValueError otherwise."""
    if isinstance(value, (int, float)):
        values = [float(value)] * channels
    else:
        values = [float(v) for v in value]
        if len(values) != channels:
            raise ValueError(
                f"{name} must be a number or a sequence of {channels} numbers (one per input "
                f"channel), got {len(values)} values"
            )
    return torch.tensor(values, dtype=torch.float32).view(1, channels, 1, 1)


class Normalize(nn.Module):
    """(x - mean) / std per channel, x in [0, 1] pixel units.

    `mean` and `std` are buffers (saved in the state dict, moved by `.to`), given as a scalar
    or one value per channel. The library default is 0.5 / 0.5, mapping [0, 1] to [-1, 1]; the
    chapters pass their dataset's statistics where a paper says it normalised with them.
    """

    def __init__(self, mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 channels: int = 3):
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        mean_t = _per_channel(mean, channels, "mean")
        std_t = _per_channel(std, channels, "std")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be > 0 in every channel, got {std_t.flatten().tolist()}")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"input must be NCHW with {self.channels} channel(s), got shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
