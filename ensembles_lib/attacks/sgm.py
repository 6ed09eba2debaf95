"""Skip gradient method (SGM, Wu et al. 2020): a transfer attack that backpropagates more
through the skip connections of residual blocks than through their residual branches.
L-inf, pixel units; used by the TREND chapter, where ResNet sources transfer unusually well.
"""

import contextlib
from typing import Iterator, List, Optional

import torch
import torch.nn as nn

from .ascent import sign_ascent
from .contract import attack
from .gradient import gradient
from .losses import Loss
from ..fields import Budget, Count, NonNegative, PositiveUnit, Seed, StepSize


def residual_blocks(model: nn.Module) -> List[nn.Module]:
    """Residual blocks of `model`: modules computing F(x) + shortcut(x) that expose their skip
    path as an `nn.Module` attribute `shortcut` (nn.Identity for an identity skip), as the ResNets
    of ensembles_lib.models (and torchvision's `downsample`-free convention) do."""
    return [m for m in model.modules() if isinstance(getattr(m, "shortcut", None), nn.Module)]


@contextlib.contextmanager
def skip_gradient(model: nn.Module, gamma: float) -> Iterator[None]:
    """While active, each residual block passes back g_shortcut + gamma * g_branch instead of
    g_shortcut + g_branch (Wu et al. 2020, with their gamma in (0, 1]).

    The block's full backward hook sees the total input gradient; the shortcut's hook sees the
    skip part; their difference is the branch part, which is scaled. Raises ValueError when the
    model has no residual blocks, since SGM would then silently be I-FGSM.
    """
    blocks = residual_blocks(model)
    if not blocks:
        raise ValueError(f"sgm needs a model with residual blocks (modules with an nn.Module attribute "
                         f"`shortcut`); {type(model).__name__} has none")
    handles = []
    try:
        for block in blocks:
            skip: list = []

            def save_skip(module, grad_input, grad_output, skip=skip):
                skip.append(grad_input[0])

            def scale_branch(module, grad_input, grad_output, skip=skip):
                g_total, g_skip = grad_input[0], skip.pop()
                return (g_skip + gamma * (g_total - g_skip),) + tuple(grad_input[1:])

            handles.append(block.shortcut.register_full_backward_hook(save_skip))
            handles.append(block.register_full_backward_hook(scale_branch))
        yield
    finally:
        for h in handles:
            h.remove()


@attack()
def sgm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = 10,
        step: Optional[StepSize] = None, gamma: PositiveUnit = 0.5, mu: NonNegative = 0.0, loss: Loss = "ce",
        eot_samples: Count = 1, seed: Seed = 0) -> torch.Tensor:
    """I-FGSM (with momentum mu > 0: MI-FGSM) whose gradients pass the residual branches scaled
    by `gamma` in (0, 1]; gamma = 1 is the plain attack. `step` defaults to eps / steps."""
    with skip_gradient(model, gamma):
        return sign_ascent(lambda xa: gradient(model, xa, y, loss, eot_samples), x, x.clone(),
                           eps=eps, step=eps / steps if step is None else step, steps=steps, mu=mu)
