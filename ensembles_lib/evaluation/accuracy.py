"""Clean accuracy and predictions of any model on a tensor batch (every chapter's tables)."""

from __future__ import annotations

import torch
from torch import nn


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """x a float NCHW batch, y int64 labels of the same length (ValueError otherwise)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
        raise ValueError(f"x must be a float tensor (N, C, H, W) in [0, 1], got {getattr(x, 'shape', type(x))}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(x) or y.dtype != torch.int64:
        raise ValueError(f"y must be int64 labels of shape ({len(x)},), got {getattr(y, 'dtype', type(y))} "
                         f"{tuple(getattr(y, 'shape', ()))}")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """argmax of the model's (N, C) scores, in eval mode (the model's mode is restored after)."""
    batch_size = check_batch_size(batch_size)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Boolean (N,) mask: which samples the model classifies correctly."""
    check_inputs(x, y)
    return predict(model, x, batch_size) == y.to(x.device)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of (x, y) the model classifies correctly, in [0, 1]."""
    if len(x) == 0:
        raise ValueError("x is empty: accuracy needs at least one sample")
    return correct(model, x, y, batch_size).float().mean().item()
