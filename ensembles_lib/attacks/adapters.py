"""Thin adapters to torchattacks' AutoAttack, APGD (CE / DLR), APGD-T and Square attack (L-inf,
pixel units), run under our attack contract: eval mode restored, parameters' .grad untouched,
seeded without disturbing the caller's global RNG. Used by the robustness tables of the DVERGE,
SQ and CLM chapters and by the strong white-box suite (`evaluation.strong`).
"""

from typing import Literal, Optional

import torch
import torch.nn as nn
import torchattacks
from torchattacks.attacks.apgd import APGD
from torchattacks.attacks.apgdt import APGDT
from torchattacks.attacks.fab import FAB

from .contract import AttackArgumentError, attack
from ..fields import Budget, Count, PositiveUnit, Seed

AUTOATTACK_VERSIONS = ("standard", "plus", "rand")
AUTOATTACK_STEPS = 100  # Croce & Hein 2020 run APGD, APGD-T and FAB for 100 iterations
AUTOATTACK_QUERIES = 5000  # and Square for 5000 queries


def build_autoattack(model: nn.Module, *, eps: float, version: str = "standard", n_classes: int = 10,
                     seed: int = 0, steps: int = AUTOATTACK_STEPS, n_queries: int = AUTOATTACK_QUERIES,
                     n_targets: int | None = None) -> torchattacks.AutoAttack:
    """torchattacks.AutoAttack with the official iteration counts, or smaller ones for a CPU run.

    torchattacks builds APGD, APGD-T and FAB with its default steps=10; the published AutoAttack
    uses 100, so every such component is set to `steps` (default 100; checked against torchattacks
    3.5.1's autoattack.py). Square gets `n_queries` (official: 5000); APGD-T and FAB-T attack
    `n_targets` target classes (None: torchattacks' default, n_classes - 1 up to 9).
    """
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version=version, n_classes=n_classes, seed=seed)
    for component in attack._autoattack.attacks:
        if isinstance(component, (APGD, APGDT, FAB)):
            component.steps = steps
        if n_targets is not None and hasattr(component, "n_target_classes"):
            component.n_target_classes = min(n_targets, n_classes - 1)
        if isinstance(component, torchattacks.Square):
            component.n_queries = n_queries
    return attack


# layout=False: torchattacks flattens images with .view, which a channels-last tensor refuses
@attack(layout=False)
def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
               version: Literal[AUTOATTACK_VERSIONS] = "standard", steps: Count = AUTOATTACK_STEPS,
               n_queries: Count = AUTOATTACK_QUERIES, n_targets: Optional[Count] = None,
               seed: Seed = 0) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020) L-inf at budget eps; `version` "standard", "plus" or "rand".

    steps, n_queries, n_targets: the iterations of APGD, APGD-T and FAB, Square's queries and the
    targets of the targeted attacks; the defaults are the published ones (100, 5000, up to 9), and
    smaller values give the reduced AutoAttack of a CPU run. The number of classes is read from the
    model's output. Returns x_adv, detached, in [0, 1].
    """
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    return build_autoattack(model, eps=eps, version=version, n_classes=n_classes, seed=seed, steps=steps,
                            n_queries=n_queries, n_targets=n_targets)(x, y)


@attack(layout=False)
def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, n_queries: Count = 5000,
           p_init: PositiveUnit = 0.8, seed: Seed = 0) -> torch.Tensor:
    """Square attack (Andriushchenko et al. 2020), a score-based black-box L-inf attack with
    `n_queries` model queries a sample and the margin loss. Returns x_adv, detached, in [0, 1]."""
    attack = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=n_queries, n_restarts=1,
                                 p_init=p_init, loss="margin", seed=seed)
    return attack(x, y)


APGD_LOSSES = ("ce", "dlr")


def _class_count(model: nn.Module, x: torch.Tensor, needed: int, what: str) -> int:
    """The model's class count (read from one output); AttackArgumentError if below `needed`."""
    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    if n_classes < needed:
        raise AttackArgumentError(f"{what} needs a model with at least {needed} classes, got {n_classes}")
    return n_classes


@attack(layout=False)
def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget, steps: Count = AUTOATTACK_STEPS,
         restarts: Count = 1, loss: Literal[APGD_LOSSES] = "ce", seed: Seed = 0) -> torch.Tensor:
    """APGD (Croce & Hein 2020) L-inf at budget eps: `steps` iterations with the step size halved
    where the loss stalls, on cross-entropy ("ce", AutoAttack's APGD-CE) or the difference of logits
    ratio ("dlr", APGD-DLR; needs >= 3 classes). Restarts attack only the samples not yet fooled.
    Returns x_adv, detached, in [0, 1]."""
    if loss == "dlr":
        _class_count(model, x, 3, "apgd with loss='dlr'")
    attack = torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, seed=seed, loss=loss)
    return attack(x, y)


@attack(layout=False)
def apgd_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
                  steps: Count = AUTOATTACK_STEPS, restarts: Count = 1, n_targets: Count = 9,
                  seed: Seed = 0) -> torch.Tensor:
    """APGD-T (Croce & Hein 2020) L-inf at budget eps: APGD on the targeted DLR loss, once for each
    of the `n_targets` classes the model ranks highest after the true one (AutoAttack's standard
    suite: 9 on CIFAR-10), each run only on samples not yet fooled; a model with fewer classes
    gets all its n_classes - 1 (needs >= 4 classes). Returns x_adv, detached, in [0, 1]."""
    n_classes = _class_count(model, x, 4, "apgd_targeted")
    attack = torchattacks.APGDT(model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, seed=seed,
                                n_classes=n_classes)
    attack.n_target_classes = min(n_targets, n_classes - 1)
    return attack(x, y)
