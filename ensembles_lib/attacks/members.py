"""PGD against an ensemble through its separate members (SiN Appendix A.2, "transfer" attacks).

Instead of differentiating through the ensemble's averaged output (and its softmax), each step
ascends a loss built from the members' own logits: the loss of one member drawn at random per
step (Athalye et al. 2018b's expectation over members), the mean of the members' losses, or per
sample the largest member loss. SiN uses the CW margin on logits, so no softmax is on the path.
L-inf, pixel units. Used by the Strength in Numbers chapter (its Table 2).
"""

from typing import Literal, Optional, Sequence, Union

import torch
import torch.nn as nn

from ..checks import check_choice
from .ascent import ASCENTS, StepRule
from .contract import attack
from .gradient import generator, uniform_start
from .losses import Loss, LossFn, get_loss
from ..fields import Budget, Count, Seed, StepSize

MEMBER_RULES = ("random", "mean", "max")
MemberRule = Literal[MEMBER_RULES]


def member_losses(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                  loss: Union[str, LossFn] = "cw") -> torch.Tensor:
    """(M, N): every member's per-sample `loss` on its own logits (CW margin: SiN Appendix A)."""
    loss_fn = get_loss(loss)
    return torch.stack([loss_fn(member(x), y) for member in members])


def member_objective(losses: torch.Tensor, rule: str) -> torch.Tensor:
    """(N,): the per-sample loss the attack ascends, from the members' (M, N) losses.

    "mean": (1/M) sum_m L_m; "max": max_m L_m per sample (with the CW margin, the member nearest
    to misclassifying the sample, or furthest past it). "random" is no reduction (one member's loss
    a step) and lives in `member_pgd`.
    """
    check_choice(rule, "rule", ("mean", "max"))
    return losses.mean(dim=0) if rule == "mean" else losses.amax(dim=0)


@attack(members=True)
def member_pgd(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, rule: MemberRule, eps: Budget,
               step: Optional[StepSize] = None, steps: Count = 20, loss: Loss = "cw",
               step_rule: StepRule = "sign", random_start: bool = True, seed: Seed = 0) -> torch.Tensor:
    """PGD on an ensemble given as its `members` (a list, tuple or nn.ModuleList, e.g.
    ensemble.members), each step ascending a loss of the members' own outputs.

    rule "random": each step follows the gradient of one member drawn uniformly (from a generator
    seeded by `seed`); "mean": the mean of the members' per-sample losses; "max": per sample, the
    largest member loss. loss "cw" (default, the CW margin on logits of SiN Appendix A) or "ce".
    step_rule "sign" (x <- x + step * sign(grad)) or "adam" (Adam on the perturbation with learning
    rate `step`), as in `pgd`; `step` defaults to 2.5 * eps / steps. The members must return
    logits. Returns x_adv, detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    loss_fn = get_loss(loss)
    gen = generator(seed, x.device)
    start = uniform_start(x, eps, gen) if random_start else x.clone()
    # every step's member drawn up front: one host copy, not one sync per step
    draws = iter(torch.randint(len(members), (steps,), generator=gen, device=x.device).tolist()) \
        if rule == "random" else None

    def grad_fn(x_adv: torch.Tensor) -> torch.Tensor:
        x_adv = x_adv.detach().requires_grad_(True)
        if draws is not None:
            objective = loss_fn(members[next(draws)](x_adv), y)
        else:
            objective = member_objective(member_losses(members, x_adv, y, loss_fn), rule)
        return torch.autograd.grad(objective.sum(), x_adv)[0]

    return ASCENTS[step_rule](grad_fn, x, start, eps=eps, step=2.5 * eps / steps if step is None else step,
                              steps=steps)
