"""The sign-ascent loop shared by I-FGSM, MI-FGSM, DI2-FGSM and SGM (pixel units)."""

from typing import Callable

import torch

from .gradient import project, working_layout


def sign_ascent(grad_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x_adv: torch.Tensor,
                *, eps: float, step: float, steps: int, mu: float = 0.0) -> torch.Tensor:
    """`steps` L-inf steepest-ascent steps from x_adv, projected onto the eps-ball around x and [0, 1].

    With mu > 0 the direction is the sign of the accumulated momentum of L1-normalised gradients
    (MI-FGSM, Dong et al. 2018: g_{t+1} = mu g_t + grad / ||grad||_1); with mu = 0 it is
    the sign of the gradient (I-FGSM / BIM, Kurakin et al. 2016).
    """
    x, x_adv = working_layout(x), working_layout(x_adv)
    momentum = torch.zeros_like(x) if mu > 0 else None
    for _ in range(steps):
        grad = grad_fn(x_adv)
        if momentum is not None:
            l1 = grad.abs().sum(dim=tuple(range(1, grad.dim())), keepdim=True)
            # clamp: a zero gradient (flat loss) must not turn into NaN
            grad = momentum.mul_(mu).add_(grad / l1.clamp_min(1e-12))
        x_adv = project(x_adv + step * grad.sign(), x, eps)
    return x_adv.detach().contiguous()
