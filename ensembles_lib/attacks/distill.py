"""Feature distillation (DVERGE, paper 001, Eq. 1): an image that looks like a source image x_s
but whose features at one layer of a model match those of a target image x.

    x' = argmin_z ||f^l(z) - f^l(x)||_2^2   subject to ||z - x_s||_inf <= eps, z in [0, 1]

solved, as DVERGE Sec. 4.1 does, by PGD with momentum (MI-FGSM's update, Dong et al. 2018, the
paper's ref. [29]) descending the feature distance: the paper runs 10 steps of size eps / 10.
f^l is the pre-activation output at a `Tap` of the model (`models.features`), so any registered
architecture can be distilled at any of its `models.feature_layers`. Budgets are in pixel units.
Used by the DVERGE training strategy (training/diversity.py) and the DVERGE chapter's
vulnerability-diversity metric (Eq. 2).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from ..checks import check_bool, check_int, check_number
from ..models import feature_layers, features
from ._checks import check_eps, step_or_default
from ._iterate import sign_ascent
from .gradient import attack_mode, generator, uniform_start


def distill(model: nn.Module, x: torch.Tensor, x_source: torch.Tensor, *, layer: str, eps: float,
            steps: int = 10, step: Optional[float] = None, mu: float = 1.0, random_start: bool = False,
            seed: int = 0) -> torch.Tensor:
    """DVERGE Eq. 1: x' in the eps-ball of `x_source` (and [0, 1]) whose `layer` features under
    `model` approach those of the target images `x`.

    x, x_source: float NCHW batches of the same shape in [0, 1]; sample n of x' pairs x[n]
        (whose features are matched) with x_source[n] (which x'[n] stays close to).
    layer: one of `models.feature_layers(model)` (a pre-activation tap).
    eps, step: L-inf budget and step size in pixel units; `step` defaults to eps / steps (the
        paper's eps / 10 at its 10 steps).
    mu: momentum decay of the MI-FGSM update (g <- mu g + grad / ||grad||_1, step along
        -sign(g)); 1.0 as in Dong et al.; 0 gives plain sign-gradient descent.
    random_start: start from a uniform random point of the eps-ball around x_source (drawn
        from a generator seeded by `seed`) instead of x_source itself. DVERGE states no random
        start, so the default starts at x_source and the result does not depend on `seed`.

    The model runs in eval mode (restored afterwards) and its parameters' .grad are never
    written. Returns x' detached, contiguous NCHW, with ||x' - x_source||_inf <= eps.
    """
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    step = step_or_default(step, eps / steps)
    check_number(mu, "mu", minimum=0)
    check_bool(random_start, "random_start")
    check_int(seed, "seed", minimum=0)
    taps = feature_layers(model)
    if layer not in taps:
        raise ValueError(f"layer must be one of feature_layers(model) = {taps}, got {layer!r}")
    _check_images(x, "x")
    _check_images(x_source, "x_source")
    if x_source.shape != x.shape or x_source.device != x.device:
        raise ValueError(f"x_source must have x's shape {tuple(x.shape)} and device {x.device}, "
                         f"got {tuple(x_source.shape)} on {x_source.device}")
    x, x_source = x.detach(), x_source.detach()
    with attack_mode(model, seed, x.device):
        with torch.no_grad():
            target = features(model, x, layer)
        start = uniform_start(x_source, eps, generator(seed, x.device)) if random_start else x_source.clone()

        def descent(z: torch.Tensor) -> torch.Tensor:
            # minus the gradient: sign_ascent ascends, Eq. 1 descends the feature distance
            z = z.detach().requires_grad_(True)
            distance = (features(model, z, layer) - target).pow(2).sum()  # Eq. 1, summed over the batch
            return -torch.autograd.grad(distance, z)[0]

        return sign_ascent(descent, x_source, start, eps=eps, step=step, steps=steps, mu=mu)


def feature_distance(model: nn.Module, a: torch.Tensor, b: torch.Tensor, *, layer: str) -> torch.Tensor:
    """Per-sample ||f^l(a) - f^l(b)||_2^2 at `layer` (the quantity Eq. 1 minimises), shape (N,).

    Computed without gradients in eval mode (restored afterwards); for tests and diagnostics.
    """
    taps = feature_layers(model)
    if layer not in taps:
        raise ValueError(f"layer must be one of feature_layers(model) = {taps}, got {layer!r}")
    with attack_mode(model, 0, a.device), torch.no_grad():
        diff = features(model, a, layer) - features(model, b, layer)
        return diff.pow(2).flatten(1).sum(1)


def _check_images(x, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] (normalisation belongs inside the model)")
