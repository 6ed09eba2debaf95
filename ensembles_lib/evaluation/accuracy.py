"""Clean accuracy and predictions of any model on a tensor batch (every chapter's tables)."""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_inputs, check_int


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """argmax of the model's (N, C) scores, in eval mode (the model's mode is restored after); an
    empty (0,) long tensor for no images (a chapter's subset that no model gets right)."""
    batch_size = check_int(batch_size, "batch_size")
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
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


def expected_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int = 0,
                     batch_size: int = 512) -> torch.Tensor:
    """float (N,) in [0, 1]: per image, the share of `draws` predictions that are correct, the
    model's own generator reseeded to seed + k before draw k (`model.manual_seed`: a voting
    Ensemble's tie-breaks, a random-member Ensemble's draws). The expectation over the model's
    randomness, so an image a tie decides counts by its chance, not by one lucky draw (EOT for
    evaluation). A model without `manual_seed` is deterministic: one draw, 0 or 1. The TREND
    chapter's voting ensembles use it.
    """
    check_inputs(x, y)
    draws = check_int(draws, "draws")
    reseed = getattr(model, "manual_seed", None)
    if not callable(reseed):
        return correct(model, x, y, batch_size).float()
    total = torch.zeros(len(x), device=x.device)
    for k in range(draws):
        reseed(seed + k)
        total += correct(model, x, y, batch_size).float()
    return total / draws


def correct_by_all(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Boolean (N,) mask of the images every model classifies correctly (the evaluation set of the
    DVERGE and TREND transfer matrices)."""
    keep = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for model in models:
        keep &= correct(model, x, y, batch_size)
    return keep
