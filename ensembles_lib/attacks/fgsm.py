"""FGSM and I-FGSM (BIM): one or several L-inf gradient-sign steps, budgets in pixel units.

Used as the single-step and iterated attacks of the SiN chapter (IFGSM7 is its training
adversary, optionally from SiN Algorithm 1's Gaussian start) and as baselines in the TREND,
DVERGE and SQ chapters.
"""

from typing import Optional

import torch
import torch.nn as nn

from .ascent import sign_ascent
from .contract import attack
from .gradient import Sigma, Start, gaussian_start, generator, gradient
from .losses import Loss
from ..fields import Budget, Count, Seed, StepSize


@attack()
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, loss: Loss = "ce",
         eot_samples: Count = 1, seed: Seed = 0) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): x + eps * sign(grad_x loss), clipped to [0, 1]."""
    return (x + eps * gradient(model, x, y, loss, eot_samples).sign()).clamp_(0, 1)


@attack()
def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = 10,
          step: Optional[StepSize] = None, start: Start = None, sigma: Sigma = None, loss: Loss = "ce",
          eot_samples: Count = 1, seed: Seed = 0) -> torch.Tensor:
    """Iterated FGSM / BIM (Kurakin et al. 2016): `steps` sign steps of size `step` from x,
    each projected onto the eps-ball and [0, 1]. `step` defaults to eps / steps.

    start="gaussian" starts from x + N(0, sigma^2 I) clipped to [0, 1] instead (SiN Algorithm 1;
    sigma in pixel units, drawn from a generator seeded by `seed`; the start is not projected
    onto the eps-ball, the steps are: `gradient.gaussian_start`)."""
    x_adv = gaussian_start(x, sigma, generator(seed, x.device)) if start == "gaussian" else x.clone()
    return sign_ascent(lambda xa: gradient(model, xa, y, loss, eot_samples), x, x_adv,
                       eps=eps, step=eps / steps if step is None else step, steps=steps)
