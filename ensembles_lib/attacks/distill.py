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

from ..models import feature_layers, features
from .ascent import sign_ascent
from .contract import attack, check_images
from .gradient import attack_mode, generator, uniform_start
from ..fields import Budget, Count, NonNegative, Seed, StepSize


@attack(source=True)
def distill(model: nn.Module, x: torch.Tensor, x_source: torch.Tensor, *, layer: str, eps: Budget,
            steps: Count = 10, step: Optional[StepSize] = None, mu: NonNegative = 1.0, random_start: bool = False,
            seed: Seed = 0) -> torch.Tensor:
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
    _check_layer(model, layer)
    with torch.no_grad():
        target = features(model, x, layer)
    start = uniform_start(x_source, eps, generator(seed, x.device)) if random_start else x_source.clone()

    def descent(z: torch.Tensor) -> torch.Tensor:
        # minus the gradient: sign_ascent ascends, Eq. 1 descends the feature distance
        z = z.detach().requires_grad_(True)
        distance = (features(model, z, layer) - target).pow(2).sum()  # Eq. 1, summed over the batch
        return -torch.autograd.grad(distance, z)[0]

    return sign_ascent(descent, x_source, start, eps=eps, step=eps / steps if step is None else step, steps=steps,
                       mu=mu)


def feature_distance(model: nn.Module, a: torch.Tensor, b: torch.Tensor, *, layer: str) -> torch.Tensor:
    """Per-sample ||f^l(a) - f^l(b)||_2^2 at `layer` (the quantity Eq. 1 minimises), shape (N,).

    a, b: float NCHW image batches of one shape in [0, 1]. Computed without gradients in eval
    mode (restored afterwards); for tests and diagnostics.
    """
    _check_layer(model, layer)
    check_images(a, "a")
    check_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"b must have a's shape {tuple(a.shape)}, got {tuple(b.shape)}")
    with attack_mode(model, 0, a.device), torch.no_grad():
        diff = features(model, a, layer) - features(model, b, layer)
        return diff.pow(2).flatten(1).sum(1)


def _check_layer(model: nn.Module, layer: str) -> None:
    taps = feature_layers(model)
    if layer not in taps:
        raise ValueError(f"layer must be one of feature_layers(model) = {taps}, got {layer!r}")
