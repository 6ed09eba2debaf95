"""TREND's gradient rules for attacking an ensemble through its members (TREND Section V-A):
Gradient Average, Sign All (Eq. 6) and Sign Average (Eq. 7), and the PGD that steps along them.
L-inf, pixel units. Used by the TREND chapter (its Fig. 7 compares the three rules).
"""

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from ..checks import check_batch, check_choice, check_int
from ._checks import check_eps, step_or_default
from .gradient import attack_mode, generator, gradient, project, uniform_start, working_layout
from .losses import LossFn, get_loss

RULES = ("gradient_average", "sign_all", "sign_average")


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


def ensemble_pgd(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, eps: float,
                 steps: int = 20, step: Optional[float] = None, rule: str = "sign_average",
                 random_start: bool = True, loss: Union[str, LossFn] = "ce", eot_samples: int = 1,
                 seed: int = 0) -> torch.Tensor:
    """PGD on an ensemble given as its `members`: each step x <- Proj(x + step * sgn(G_ensemble))
    with the direction from `ensemble_direction(rule)`; random_start=False gives the I-FGSM form.

    TREND attacks with 20 steps of size 0.01 at eps = 8/255 (Sections IV and V-C); `step`
    defaults to 2.5 * eps / steps like `pgd`. Returns x_adv, detached, in [0, 1].
    """
    members = list(members) if not isinstance(members, nn.Module) else None
    if not members or not all(isinstance(m, nn.Module) for m in members):
        raise ValueError("members must be a non-empty list of nn.Module (the ensemble's members)")
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    step = step_or_default(step, 2.5 * eps / steps)
    check_choice(rule, "rule", RULES)
    get_loss(loss)
    check_int(eot_samples, "eot_samples")
    check_batch(x, y)
    x = working_layout(x.detach())
    with attack_mode(members, seed, x.device):
        x_adv = uniform_start(x, eps, generator(seed, x.device)) if random_start else x.clone()
        for _ in range(steps):
            direction = ensemble_direction([gradient(m, x_adv, y, loss, eot_samples) for m in members], rule)
            x_adv = project(x_adv + step * direction, x, eps)
        return x_adv.detach().contiguous()
