"""Thin adapters to torchattacks' AutoAttack and Square attack (L-inf, pixel units), run under
our attack contract: eval mode restored, parameters' .grad untouched, seeded without disturbing
the caller's global RNG. Used by the robustness tables of the DVERGE, SQ and CLM chapters.
"""

from typing import Literal

import torch
import torch.nn as nn
import torchattacks
from torchattacks.attacks.apgd import APGD
from torchattacks.attacks.apgdt import APGDT
from torchattacks.attacks.fab import FAB

from .contract import attack
from ..fields import Budget, Count, PositiveUnit, Seed

AUTOATTACK_VERSIONS = ("standard", "plus", "rand")
AUTOATTACK_STEPS = 100  # Croce & Hein 2020 run APGD, APGD-T and FAB for 100 iterations


def build_autoattack(model: nn.Module, *, eps: float, version: str = "standard", n_classes: int = 10,
                     seed: int = 0) -> torchattacks.AutoAttack:
    """torchattacks.AutoAttack with the official iteration counts.

    torchattacks builds APGD, APGD-T and FAB with its default steps=10; the published AutoAttack
    uses 100, so every such component is set to 100 (checked against torchattacks 3.5.1's
    autoattack.py; Square already gets the official 5000 queries).
    """
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version=version, n_classes=n_classes, seed=seed)
    for component in attack._autoattack.attacks:
        if isinstance(component, (APGD, APGDT, FAB)):
            component.steps = AUTOATTACK_STEPS
    return attack


# layout=False: torchattacks flattens images with .view, which a channels-last tensor refuses
@attack(layout=False)
def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
               version: Literal[AUTOATTACK_VERSIONS] = "standard", seed: Seed = 0) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020) L-inf at budget eps; `version` "standard", "plus" or "rand".

    The number of classes is read from the model's output. Returns x_adv, detached, in [0, 1].
    """
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    return build_autoattack(model, eps=eps, version=version, n_classes=n_classes, seed=seed)(x, y)


@attack(layout=False)
def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, n_queries: Count = 5000,
           p_init: PositiveUnit = 0.8, seed: Seed = 0) -> torch.Tensor:
    """Square attack (Andriushchenko et al. 2020), a score-based black-box L-inf attack with
    `n_queries` model queries a sample and the margin loss. Returns x_adv, detached, in [0, 1]."""
    attack = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=n_queries, n_restarts=1,
                                 p_init=p_init, loss="margin", seed=seed)
    return attack(x, y)
