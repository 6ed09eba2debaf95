"""TREND's gradient rules for attacking an ensemble through its members (TREND Section V-A):
Gradient Average, Sign All (Eq. 6) and Sign Average (Eq. 7), and the PGD that steps along them.
L-inf, pixel units. Used by the TREND chapter (its Fig. 7 compares the three rules).
"""

from typing import Literal, Optional, Sequence

import torch
import torch.nn as nn

from ..checks import check_choice
from .ascent import projected_ascent
from .contract import attack
from .gradient import generator, gradient, uniform_start
from .losses import Loss
from ..fields import Budget, Count, Seed, StepSize

RULES = ("gradient_average", "sign_all", "sign_average")
Rule = Literal[RULES]


def ensemble_direction(grads: Sequence[torch.Tensor], rule: str) -> torch.Tensor:
    """The ensemble's ascent direction sgn(G_ensemble) from the members' input gradients G_m.

    gradient_average: sign of the mean gradient (the averaging of Tramer et al., TREND's [43]);
    sign_all: S where every member's sign S_m = sgn(G_m) agrees, 0 elsewhere (TREND Eq. 6);
    sign_average: (1/N) sum_m sgn(G_m), a value in [-1, 1] per pixel (TREND Eq. 7).
    """
    check_choice(rule, "rule", RULES)
    if len(grads) == 0:
        raise ValueError("grads must hold at least one member's gradient")
    g = torch.stack(list(grads))
    if rule == "gradient_average":
        return g.mean(dim=0).sign()
    signs = g.sign()
    if rule == "sign_all":  # TREND Eq. 6
        agree = (signs == signs[0]).all(dim=0)
        return torch.where(agree, signs[0], torch.zeros_like(signs[0]))
    return signs.mean(dim=0)  # TREND Eq. 7


@attack(members=True)
def ensemble_pgd(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
                 steps: Count = 20, step: Optional[StepSize] = None, rule: Rule = "sign_average",
                 random_start: bool = True, loss: Loss = "ce", eot_samples: Count = 1,
                 seed: Seed = 0) -> torch.Tensor:
    """PGD on an ensemble given as its `members` (a list, tuple or nn.ModuleList): each step
    x <- Proj(x + step * sgn(G_ensemble)) with the direction from `ensemble_direction(rule)`;
    random_start=False gives the I-FGSM form.

    TREND attacks with 20 steps of size 0.01 at eps = 8/255 (Sections IV and V-C); `step`
    defaults to 2.5 * eps / steps like `pgd`. Returns x_adv, detached, in [0, 1].
    """
    start = uniform_start(x, eps, generator(seed, x.device)) if random_start else x.clone()

    def direction(x_adv: torch.Tensor) -> torch.Tensor:
        return ensemble_direction([gradient(m, x_adv, y, loss, eot_samples) for m in members], rule)

    return projected_ascent(direction, x, start, eps=eps, step=2.5 * eps / steps if step is None else step,
                            steps=steps)
