"""Projected gradient descent (Madry et al. 2018) under an L-inf budget, in pixel units.

Random start, sign steps or Adam steps (the PGD of SiN Section 4.3, which updates the
perturbation with Adam), cross-entropy or CW-margin loss, restarts scored all-or-nothing.
The attack of the TREND transferability matrices, the DVERGE/SQ/CLM robustness tables and the
SiN evaluation (PGD5, PGD20).
"""

from typing import Optional, Union

import torch
import torch.nn as nn

from ..checks import check_batch, check_choice, check_int
from ._checks import check_eps, step_or_default
from .gradient import attack_mode, generator, gradient, project, uniform_start, working_layout
from .losses import LossFn, get_loss

STEP_RULES = ("sign", "adam")
ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba's defaults; SiN does not state other values
ADAM_EPS = 1e-8


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
        step: Optional[float] = None, restarts: int = 1, loss: Union[str, LossFn] = "ce",
        step_rule: str = "sign", random_start: bool = True, eot_samples: int = 1, seed: int = 0) -> torch.Tensor:
    """PGD: from a uniform random point of the eps-ball, `steps` ascent steps on `loss`, each
    projected back onto the eps-ball around x and onto [0, 1].

    step_rule "sign": x <- x + step * sign(grad) (steepest ascent for L-inf); "adam": Adam on the
    perturbation with learning rate `step`, then projection. `step` defaults to 2.5 * eps / steps
    (Madry et al.'s rule of thumb). With restarts > 1 each sample keeps the first restart's x_adv
    that fools the model, else the last restart's; later restarts only attack samples not yet
    fooled. Returns x_adv, detached, in [0, 1], with ||x_adv - x||_inf <= eps.
    """
    eps = check_eps(eps)
    steps = check_int(steps, "steps")
    step = step_or_default(step, 2.5 * eps / steps)
    restarts = check_int(restarts, "restarts")
    get_loss(loss)
    check_choice(step_rule, "step_rule", STEP_RULES)
    check_int(eot_samples, "eot_samples")
    check_batch(x, y)
    x = working_layout(x.detach())
    with attack_mode(model, seed, x.device):
        gen = generator(seed, x.device)
        run = _adam_run if step_rule == "adam" else _sign_run

        def attack(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            start = uniform_start(xs, eps, gen) if random_start else xs.clone()
            return run(lambda xa: gradient(model, xa, ys, loss, eot_samples), xs, start, eps, step, steps)

        if restarts == 1:
            return attack(x, y).contiguous()
        best = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(restarts):
            idx = (~fooled).nonzero().squeeze(1)
            x_r = attack(x[idx], y[idx])
            best[idx] = x_r
            with torch.no_grad():
                fooled[idx] = model(x_r).argmax(dim=1) != y[idx]
            if fooled.all():
                break
        return best.contiguous()


def _sign_run(grad_fn, x, x_adv, eps, step, steps):
    for _ in range(steps):
        x_adv = project(x_adv + step * grad_fn(x_adv).sign(), x, eps)
    return x_adv.detach()


def _adam_run(grad_fn, x, x_adv, eps, step, steps):
    """Adam ascent on delta = x_adv - x (Kingma & Ba 2015, Algorithm 1), projected after every step."""
    b1, b2 = ADAM_BETAS
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    for t in range(1, steps + 1):
        g = grad_fn(x_adv)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        x_adv = project(x_adv + step * m_hat / (v_hat.sqrt() + ADAM_EPS), x, eps)
    return x_adv.detach()
