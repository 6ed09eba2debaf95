"""Random dispatch over a population (CLM, paper 004): the model robustness average (Eq. 6), the
population's expected accuracy, and the saliency similarity of its submodels (Eq. 7-8).

A CLM answers every query with a submodel drawn uniformly. The paper's attacker crafts each image's
adversarial version on one submodel drawn at random, and MRA (Eq. 6) is the accuracy on those
images averaged over every submodel as the classifier:

    MRA = (1/n) sum_i (1/N) sum_j rho(m_i, x'_j),    x'_j made on a random submodel (per image)

which is exactly the expected accuracy of the dispatcher (a uniformly drawn classifier) on them. We
return it per image, the mean over classifiers, so two populations compare with a paired test.
Used by the counter-linked chapter.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_inputs, check_int
from .accuracy import correct


def dispatch_draws(n_images: int, n_members: int, seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """(n_images,) int64: one submodel index per image, uniform over n_members, from a generator
    seeded by `seed` (the same draws on every device)."""
    check_int(n_images, "n_images", minimum=0)
    check_int(n_members, "n_members")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randint(n_members, (n_images,), generator=generator).to(device)


def population_correct(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                       batch_size: int = 512) -> torch.Tensor:
    """float (N,): per image, the share of submodels that classify it correctly, i.e. the chance that
    a uniformly dispatched submodel gets it right (the inner average of Eq. 6, over classifiers)."""
    check_inputs(x, y)
    if not members:
        raise ValueError("members must hold at least one submodel")
    return torch.stack([correct(m, x, y, batch_size).float() for m in members]).mean(0)


def crafted_on_random(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, attack: Callable,
                      seed: int = 0) -> torch.Tensor:
    """x' with each image attacked on one submodel drawn at random (`dispatch_draws`, seeded):
    attack(model, x, y) -> x_adv, run once per submodel on the images drawn for it."""
    check_inputs(x, y)
    draws = dispatch_draws(len(x), len(members), seed, x.device)
    x_adv = x.clone()
    for k, member in enumerate(members):
        chosen = draws == k
        if chosen.any():
            x_adv[chosen] = attack(member, x[chosen], y[chosen])
    return x_adv


def mra_correct(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, attack: Callable,
                seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """float (N,): per image, Eq. 6's inner term: the share of submodels that classify correctly the
    image's adversarial version crafted on a randomly drawn submodel. Its mean is the MRA."""
    return population_correct(members, crafted_on_random(members, x, y, attack, seed), y, batch_size)


def saliency(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W): d f(x)[y] / dx, the gradient of the true class's output (logit) with respect to
    the input (CLM Eq. 8), in eval mode (the model's mode is restored)."""
    check_inputs(x, y)
    was_training = model.training
    model.eval()
    try:
        x = x.detach().requires_grad_(True)
        out = model(x).gather(1, y.view(-1, 1)).sum()
        return torch.autograd.grad(out, x)[0]
    finally:
        model.train(was_training)


def saliency_similarity(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor) -> pd.DataFrame:
    """Cosine similarity of every pair of submodels' saliency maps (CLM Eq. 7), per image: a
    DataFrame with one column per pair "i,j" (1-based, i < j) and one row per image."""
    if len(members) < 2:
        raise ValueError(f"members must hold at least two submodels to compare, got {len(members)}")
    maps = [saliency(m, x, y).flatten(1) for m in members]
    columns = {f"{i + 1},{j + 1}": F.cosine_similarity(maps[i], maps[j], dim=1).cpu().numpy()
               for i in range(len(maps)) for j in range(i + 1, len(maps))}
    return pd.DataFrame(columns)
