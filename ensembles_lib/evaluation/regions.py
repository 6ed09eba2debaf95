"""Decision regions around one image (DVERGE Fig. 1): the class each model predicts over a 2-D
slice of the L-inf eps-ball, computed here and drawn by `plots.decision_regions`.

The vertical direction is a surrogate's adversarial direction u = sign(grad_x CE(surrogate(x), y));
the horizontal one a random Rademacher vector v (+-1 per pixel, seeded). The grid point (i, j) is
the image clip(x + a_i u + b_j v, 0, 1), with a_i, b_j on an evenly spaced grid over [-eps, eps]
(pixel units); the image itself is the centre. Since u and v are sign vectors, every point lies
within |a| + |b| <= 2 eps of x in L-inf. Used by the DVERGE chapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Mapping

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ..attacks import attack_mode, gradient
from .accuracy import predict
from ..fields import validated



@dataclass(frozen=True)
class DecisionGrid:
    """What `decision_grid` computed, ready to draw.

    regions: model name -> (resolution, resolution) int64 array of predicted classes; entry [i, j]
        is the prediction at a = offsets[i] along the surrogate's direction (rows, vertical) and
        b = offsets[j] along the random direction (columns, horizontal).
    offsets: (resolution,) float array, evenly spaced from -eps to eps.
    eps: the grid's half-width (pixel units). label: the image's true class.
    num_classes: the number of classes the models score.
    """

    regions: dict[str, np.ndarray]
    offsets: np.ndarray
    eps: float
    label: int
    num_classes: int


@torch.no_grad()
def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    """The width of `model`'s scores on x, in eval mode (the mode restored)."""
    was_training = model.training
    model.eval()
    try:
        return model(x).shape[1]
    finally:
        model.train(was_training)


@validated
def decision_grid(models: Annotated[Mapping[str, nn.Module], Field(min_length=1)], x: torch.Tensor,
                  y: Annotated[int, Field(ge=0)], surrogate: nn.Module, *, eps: Annotated[float, Field(gt=0, le=1)],
                  resolution: Annotated[int, Field(ge=3)] = 41, seed: Annotated[int, Field(ge=0)] = 0,
                  batch_size: Annotated[int, Field(ge=1)] = 512) -> DecisionGrid:
    """The predicted class of every model over a `resolution` x `resolution` grid of the slice
    spanned by `surrogate`'s adversarial direction and a random direction (seeded by `seed`),
    a and b in [-eps, eps] (pixel units), around one image.

    models: name -> model (an Ensemble or a member), in the order they are to be drawn. x: one
    image, (C, H, W) or (1, C, H, W), float in [0, 1]; y: its label. The models' and the
    surrogate's modes are restored. Returns a `DecisionGrid`.
    """
    if x.dim() not in (3, 4) or (x.dim() == 4 and len(x) != 1) or not x.is_floating_point():
        raise ValueError(f"x must be one image, float (C, H, W) or (1, C, H, W), got {x.dtype} {tuple(x.shape)}")
    x = (x if x.dim() == 4 else x[None]).detach()
    num_classes = _num_classes(next(iter(models.values())), x)
    if y >= num_classes:
        raise ValueError(f"y must be a class in [0, {num_classes}), got {y}")
    label = torch.tensor([y], device=x.device)
    with attack_mode(surrogate, seed, x.device):
        u = gradient(surrogate, x, label).sign()
    generator = torch.Generator().manual_seed(seed)
    v = (torch.randint(0, 2, x.shape, generator=generator) * 2 - 1).to(x)
    offsets = torch.linspace(-eps, eps, resolution, device=x.device)
    a, b = torch.meshgrid(offsets, offsets, indexing="ij")  # a: rows (vertical), b: columns (horizontal)
    grid = (x + a.reshape(-1, 1, 1, 1) * u + b.reshape(-1, 1, 1, 1) * v).clamp(0, 1)
    regions = {name: predict(model, grid, batch_size).reshape(resolution, resolution).cpu().numpy()
               for name, model in models.items()}
    return DecisionGrid(regions=regions, offsets=offsets.cpu().numpy(), eps=eps, label=y, num_classes=num_classes)
