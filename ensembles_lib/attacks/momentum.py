"""Transfer attacks: MI-FGSM (momentum, Dong et al. 2018) and DI2-FGSM / M-DI2-FGSM (input
diversity, Xie et al. 2019). L-inf, pixel units. Used by the transferability chapters (TREND,
DVERGE) as stronger black-box sources.
"""

import math
from typing import Annotated, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from .ascent import sign_ascent
from .contract import attack
from .gradient import generator, gradient, uniform_start
from .losses import Loss
from ..fields import Budget, Count, NonNegative, Seed, StepSize, Unit

ResizeRate = Annotated[float, Field(ge=1, le=4)]


@attack()
def mifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = 10,
           step: Optional[StepSize] = None, mu: NonNegative = 1.0, loss: Loss = "ce",
           random_start: bool = False, eot_samples: Count = 1, seed: Seed = 0) -> torch.Tensor:
    """Momentum iterative FGSM: sign steps along g_{t+1} = mu g_t + grad / ||grad||_1
    (Dong et al. 2018); `step` defaults to eps / steps, mu to the paper's 1.0. random_start=True
    starts from a uniform point of the eps-ball drawn with `seed` ("momentum PGD": DVERGE's
    black-box protocol runs it from three random starts); False starts at x, as Dong et al. do."""
    start = uniform_start(x, eps, generator(seed, x.device)) if random_start else x.clone()
    return sign_ascent(lambda xa: gradient(model, xa, y, loss, eot_samples), x, start,
                       eps=eps, step=eps / steps if step is None else step, steps=steps, mu=mu)


@attack()
def di2fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = 10,
            step: Optional[StepSize] = None, p: Unit = 0.5, resize_rate: ResizeRate = 1.1, mu: NonNegative = 0.0,
            loss: Loss = "ce", eot_samples: Count = 1, seed: Seed = 0) -> torch.Tensor:
    """Diverse-inputs iterative FGSM: every gradient is taken through a random resize-and-pad of
    each sample, applied with probability `p` (Xie et al. 2019). mu > 0 adds momentum
    (M-DI2-FGSM). `step` defaults to eps / steps.

    Xie et al. enlarge a 299-pixel image to a random size in [299, 330) and pad it to 330; we keep
    the model's input size instead (our models have fixed input sizes): a sample is shrunk by a
    random factor in [1/resize_rate, 1] (nearest neighbour) and zero-padded at a random offset.
    """
    gen = generator(seed, x.device)

    def diverse(xa: torch.Tensor) -> torch.Tensor:
        return input_diversity(xa, p=p, resize_rate=resize_rate, generator=gen)

    return sign_ascent(lambda xa: gradient(model, xa, y, loss, eot_samples, transform=diverse), x, x.clone(),
                       eps=eps, step=eps / steps if step is None else step, steps=steps, mu=mu)


def input_diversity(x: torch.Tensor, *, p: float, resize_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Each sample, with probability p, shrunk to a random integer size in [floor(H / resize_rate), H]
    and placed at a random offset on a zero canvas of the original size; differentiable in x.

    Done as one batched affine grid sample so that per-sample sizes cost no Python loop.
    """
    n, _, h, w = x.shape
    dev = x.device
    apply = torch.rand(n, generator=generator, device=dev) < p
    low = max(1, math.floor(h / resize_rate))
    rnd = torch.randint(low, h + 1, (n,), generator=generator, device=dev).float()
    rnd = torch.where(apply, rnd, torch.full_like(rnd, h))
    scale = rnd / h
    new_w = torch.round(scale * w)
    # offsets in pixels, uniform over the positions that keep the shrunk image on the canvas
    top = torch.floor(torch.rand(n, generator=generator, device=dev) * (h - rnd + 1))
    left = torch.floor(torch.rand(n, generator=generator, device=dev) * (w - new_w + 1))
    # output pixel centre u (normalised, align_corners=False) samples input (u + 1)/s - 2 off/(s L) - 1
    theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = 1 / scale
    theta[:, 1, 1] = 1 / scale
    theta[:, 0, 2] = 1 / scale - 2 * left / (scale * w) - 1
    theta[:, 1, 2] = 1 / scale - 2 * top / (scale * h) - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
