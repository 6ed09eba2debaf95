"""Projected gradient descent (Madry et al. 2018) under an L-inf budget, in pixel units.

A random start (uniform in the eps-ball, or SiN Algorithm 1's Gaussian), sign steps or Adam
steps (the PGD of SiN Section 4.3, which updates the perturbation with Adam), cross-entropy or
CW-margin loss, restarts scored all-or-nothing.
The attack of the TREND transferability matrices, the DVERGE/SQ/CLM robustness tables and the
SiN evaluation (PGD5, PGD20).
"""

from typing import Optional

import torch
import torch.nn as nn

from .ascent import ASCENTS, StepRule
from .contract import attack
from .gradient import Sigma, Start, gaussian_start, generator, gradient, uniform_start
from .losses import Loss
from ..fields import Budget, Count, Seed, StepSize


@attack()
def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = 10,
        step: Optional[StepSize] = None, restarts: Count = 1, loss: Loss = "ce", step_rule: StepRule = "sign",
        random_start: bool = True, start: Start = None, sigma: Sigma = None, eot_samples: Count = 1,
        seed: Seed = 0) -> torch.Tensor:
    """PGD: from a uniform random point of the eps-ball, `steps` ascent steps on `loss`, each
    projected back onto the eps-ball around x and onto [0, 1].

    The start: a uniform point of the eps-ball (Madry et al.), x itself with random_start=False,
    or with start="gaussian" x + N(0, sigma^2 I) clipped to [0, 1], sigma in pixel units (SiN
    Algorithm 1; not projected onto the eps-ball, the steps are: `gradient.gaussian_start`).
    Random starts draw from one generator seeded by `seed`: each restart draws anew.

    step_rule "sign": x <- x + step * sign(grad) (steepest ascent for L-inf); "adam": Adam on the
    perturbation with learning rate `step`, then projection. `step` defaults to 2.5 * eps / steps
    (Madry et al.'s rule of thumb). With restarts > 1 each sample keeps the first restart's x_adv
    that fools the model, else the last restart's; later restarts only attack samples not yet
    fooled. Returns x_adv, detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    step = 2.5 * eps / steps if step is None else step
    gen = generator(seed, x.device)
    ascend = ASCENTS[step_rule]

    def run(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        if start == "gaussian":
            x_adv = gaussian_start(xs, sigma, gen)
        else:
            x_adv = uniform_start(xs, eps, gen) if random_start else xs.clone()
        return ascend(lambda xa: gradient(model, xa, ys, loss, eot_samples), xs, x_adv, eps=eps, step=step, steps=steps)

    if restarts == 1:
        return run(x, y)
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        idx = (~fooled).nonzero().squeeze(1)
        x_r = run(x[idx], y[idx])
        best[idx] = x_r
        with torch.no_grad():
            fooled[idx] = model(x_r).argmax(dim=1) != y[idx]
        if fooled.all():
            break
    return best
