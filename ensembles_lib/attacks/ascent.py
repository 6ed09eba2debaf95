"""The one projected-ascent loop of the iterative attacks, and the step directions it takes
(L-inf, pixel units): the gradient's sign (I-FGSM / PGD), the sign of accumulated momentum
(MI-FGSM), Adam's update (SiN's PGD), or any direction an attack computes (TREND's ensemble rules).

Every step is x_adv <- Proj(x_adv + step * direction(x_adv)), the projection onto the eps-ball
around x intersected with [0, 1]. Used by every iterative attack, hence every attack chapter.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from .gradient import project

Direction = Callable[[torch.Tensor], torch.Tensor]  # x_adv -> the step's direction, shaped like x_adv

ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba's defaults; SiN does not state other values
ADAM_EPS = 1e-8


def projected_ascent(direction: Direction, x: torch.Tensor, x_adv: torch.Tensor, *, eps: float, step: float,
                     steps: int) -> torch.Tensor:
    """`steps` steps x_adv <- Proj(x_adv + step * direction(x_adv)) from x_adv (not detached)."""
    for _ in range(steps):
        x_adv = project(x_adv + step * direction(x_adv), x, eps)
    return x_adv


def sign_direction(grad_fn: Direction, mu: float = 0.0, *, like: torch.Tensor) -> Direction:
    """sign(grad) (I-FGSM / BIM, Kurakin et al. 2016) with mu = 0; with mu > 0 the sign of the
    momentum g_{t+1} = mu g_t + grad / ||grad||_1 of L1-normalised gradients (MI-FGSM, Dong et
    al. 2018), whose state (shaped like `like`) lives as long as the returned function."""
    if mu == 0:
        return lambda x_adv: grad_fn(x_adv).sign()
    momentum = torch.zeros_like(like)

    def direction(x_adv: torch.Tensor) -> torch.Tensor:
        grad = grad_fn(x_adv)
        l1 = grad.abs().sum(dim=tuple(range(1, grad.dim())), keepdim=True)
        # clamp: a zero gradient (flat loss) must not turn into NaN
        return momentum.mul_(mu).add_(grad / l1.clamp_min(1e-12)).sign()

    return direction


def adam_direction(grad_fn: Direction, *, like: torch.Tensor) -> Direction:
    """Adam's bias-corrected update m_hat / (sqrt(v_hat) + eps) (Kingma & Ba 2015, Algorithm 1) of
    the gradient ascent on delta = x_adv - x; with learning rate `step` this is SiN's PGD."""
    b1, b2 = ADAM_BETAS
    m, v = torch.zeros_like(like), torch.zeros_like(like)
    t = 0

    def direction(x_adv: torch.Tensor) -> torch.Tensor:
        nonlocal t
        t += 1
        g = grad_fn(x_adv)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        return (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + ADAM_EPS)

    return direction


def sign_ascent(grad_fn: Direction, x: torch.Tensor, x_adv: torch.Tensor, *, eps: float, step: float, steps: int,
                mu: float = 0.0) -> torch.Tensor:
    """`steps` L-inf steepest-ascent steps along `sign_direction(grad_fn, mu)`: I-FGSM and PGD's
    sign steps with mu = 0, MI-FGSM with mu > 0."""
    return projected_ascent(sign_direction(grad_fn, mu, like=x), x, x_adv, eps=eps, step=step, steps=steps)


def adam_ascent(grad_fn: Direction, x: torch.Tensor, x_adv: torch.Tensor, *, eps: float, step: float,
                steps: int) -> torch.Tensor:
    """`steps` Adam steps with learning rate `step` on the perturbation, each projected."""
    return projected_ascent(adam_direction(grad_fn, like=x), x, x_adv, eps=eps, step=step, steps=steps)


ASCENTS = {"sign": sign_ascent, "adam": adam_ascent}  # PGD's step rules by name
STEP_RULES = tuple(ASCENTS)
StepRule = Literal[STEP_RULES]
