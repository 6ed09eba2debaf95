"""Clean accuracy and predictions of any model on a tensor batch (every chapter's tables)."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_inputs, check_int


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """argmax of the model's (N, C) scores, in eval mode (the model's mode is restored after)."""
    batch_size = check_int(batch_size, "batch_size")
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
