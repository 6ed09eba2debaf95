"""PGD against an ensemble through its separate members (SiN Appendix A.2, "transfer" attacks).

Instead of differentiating through the ensemble's averaged output (and its softmax), each step
ascends a loss built from the members' own logits: the loss of one member drawn at random per
step (Athalye et al. 2018b's expectation over members), the mean of the members' losses, or per
sample the largest member loss. SiN uses the CW margin on logits, so no softmax is on the path.
L-inf, pixel units. Used by the Strength in Numbers chapter (its Table 2).
"""

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from ..checks import check_batch, check_choice, check_int
from ._checks import check_eps, step_or_default
from .gradient import attack_mode, generator, uniform_start, working_layout
from .losses import LossFn, get_loss
from .pgd import STEP_RULES, _adam_run, _sign_run

MEMBER_RULES = ("random", "mean", "max")


def _member_list(members) -> list:
    """`members` as a list of modules: a list/tuple, or an ensemble's nn.ModuleList (a Module that
    is a list of members all the same); a single model or anything else gives an empty list."""
    if isinstance(members, nn.ModuleList) or isinstance(members, (list, tuple)):
        return list(members)
    return []


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


def member_pgd(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, *, rule: str, eps: float,
               step: Optional[float] = None, steps: int = 20, loss: Union[str, LossFn] = "cw",
               step_rule: str = "sign", random_start: bool = True, seed: int = 0) -> torch.Tensor:
    """PGD on an ensemble given as its `members`, each step ascending a loss of the members' own outputs.

    rule "random": each step follows the gradient of one member drawn uniformly (from a generator
    seeded by `seed`); "mean": the mean of the members' per-sample losses; "max": per sample, the
    largest member loss. loss "cw" (default, the CW margin on logits of SiN Appendix A) or "ce".
    step_rule "sign" (x <- x + step * sign(grad)) or "adam" (Adam on the perturbation with learning
    rate `step`), as in `pgd`; `step` defaults to 2.5 * eps / steps. The members must return
    logits. Returns x_adv, detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    members = _member_list(members)
    if not members or not all(isinstance(m, nn.Module) for m in members):
        raise ValueError("members must be a non-empty list of nn.Module (the ensemble's members, e.g. "
                         "list(ensemble.members))")
    check_choice(rule, "rule", MEMBER_RULES)
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    step = step_or_default(step, 2.5 * eps / steps)
    loss_fn = get_loss(loss)
    check_choice(step_rule, "step_rule", STEP_RULES)
    check_batch(x, y)
    x = working_layout(x.detach())
    with attack_mode(members, seed, x.device):
        gen = generator(seed, x.device)
        start = uniform_start(x, eps, gen) if random_start else x.clone()

        def grad_fn(x_adv: torch.Tensor) -> torch.Tensor:
            x_adv = x_adv.detach().requires_grad_(True)
            if rule == "random":
                drawn = members[int(torch.randint(len(members), (1,), generator=gen, device=x.device))]
                objective = loss_fn(drawn(x_adv), y)
            else:
                objective = member_objective(member_losses(members, x_adv, y, loss_fn), rule)
            return torch.autograd.grad(objective.sum(), x_adv)[0]

        run = _adam_run if step_rule == "adam" else _sign_run
        return run(grad_fn, x, start, eps, step, steps).contiguous()
