"""FGSM and I-FGSM (BIM): one or several L-inf gradient-sign steps, budgets in pixel units.

Used as the single-step and iterated attacks of the SiN chapter (IFGSM7 is its training
adversary) and as baselines in the TREND, DVERGE and SQ chapters.
"""

from typing import Optional, Union

import torch
import torch.nn as nn

from ..checks import check_batch, check_int
from ._checks import check_eps, step_or_default
from ._iterate import sign_ascent
from .gradient import attack_mode, gradient
from .losses import LossFn, get_loss


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, loss: Union[str, LossFn] = "ce",
         eot_samples: int = 1, seed: int = 0) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): x + eps * sign(grad_x loss), clipped to [0, 1]."""
    eps = check_eps(eps)
    get_loss(loss)
    check_int(eot_samples, "eot_samples")
    check_batch(x, y)
    with attack_mode(model, seed, x.device):
        grad = gradient(model, x, y, loss, eot_samples)
        return (x + eps * grad.sign()).clamp_(0, 1).detach()


def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
          step: Optional[float] = None, loss: Union[str, LossFn] = "ce", eot_samples: int = 1,
          seed: int = 0) -> torch.Tensor:
    """Iterated FGSM / BIM (Kurakin et al. 2016): `steps` sign steps of size `step` from x,
    each projected onto the eps-ball and [0, 1]. `step` defaults to eps / steps."""
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    step = step_or_default(step, eps / steps)
    get_loss(loss)
    check_int(eot_samples, "eot_samples")
    check_batch(x, y)
    with attack_mode(model, seed, x.device):
        return sign_ascent(lambda xa: gradient(model, xa, y, loss, eot_samples), x, x.clone(),
                           eps=eps, step=step, steps=steps)
