"""Black-box transfer robustness, all-or-nothing over many adversarial versions (DVERGE Sec. 4.3,
Fig. 4 and Fig. 5): the attack list and the rule. `ensembles_lib.blackbox` runs the protocol,
computing each version once through the cache.

The attacker never queries the defended model. It trains its own hold-out surrogate ensembles
(standard training, the DVERGE "Baseline"), attacks them white-box with several transfer attacks,
and shows the results to the target. The paper's list, per surrogate and per loss (cross-entropy
and the CW margin): momentum PGD (MI-FGSM's update) from three random starts, M-DI2-FGSM (random
resize-and-pad, with momentum) and SGM (the skip-gradient method), 100 iterations of step eps/5
each: 3 surrogates x 5 attacks x 2 losses = 30 versions of every image. A target is credited
with an image only if it classifies **every** version correctly (all-or-nothing), per eps.
Budgets are L-inf in pixel units.

SGM scales the gradient through residual branches, so it needs surrogates whose members have
residual blocks (the library's ResNets): `has_residual_members` says whether a model has them.

Used by the DVERGE chapter; `all_or_nothing` is the rule, usable with any list of versions.
"""

from __future__ import annotations

from typing import Annotated, Literal, Sequence, get_args

import torch
from pydantic import Field
from torch import nn

from ..attacks import residual_blocks
from .accuracy import correct
from ..fields import validated

Kind = Literal["mpgd", "mdi2fgsm", "sgm"]
LossName = Literal["ce", "cw"]
KINDS: tuple[str, ...] = get_args(Kind)
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
SGM_GAMMA = 0.2  # Wu et al. (2020) use gamma = 0.2 for ResNet sources; DVERGE states no value
DI_PROBABILITY = 0.5  # Xie et al. (2019): each step transforms the input with probability 0.5
MOMENTUM = 1.0  # Dong et al. (2018)'s decay, for momentum PGD and M-DI2-FGSM



@validated
def transfer_attacks(eps: Annotated[float, Field(gt=0, le=1)], *, steps: Annotated[int, Field(ge=1)] = 100,
                     step: Annotated[float, Field(gt=0, le=1)] | None = None, restarts: Annotated[int, Field(ge=1)] = 3,
                     losses: Annotated[Sequence[LossName], Field(min_length=1)] = LOSS_NAMES,
                     kinds: Annotated[Sequence[Kind], Field(min_length=1)] = KINDS,
                     seed: Annotated[int, Field(ge=0)] = 0) -> dict[str, dict]:
    """The black-box attack list at budget `eps` (pixel units, > 0: eps = 0 is the clean accuracy),
    as attack specs for `cache.adversarial`: name -> {"name": ..., "eps": ..., ...}. DVERGE Sec. 4.3:
    momentum PGD from `restarts` random starts ("mpgd"), M-DI2-FGSM ("mdi2fgsm") and SGM ("sgm"),
    each with every loss in `losses` ("ce", "cw"), `steps` iterations of `step` (default eps / 5).

    Each random start of momentum PGD is its own version, "mpgd-<loss>-r<k>" (the paper counts 3
    of them among its 5 attacks per loss). A bad argument is a ValueError naming it, raised here.
    """
    step = eps / 5 if step is None else step
    common = {"eps": eps, "steps": steps, "step": step}
    specs: dict[str, dict] = {}
    for loss in losses:
        if "mpgd" in kinds:
            for r in range(restarts):
                specs[f"mpgd-{loss}-r{r}"] = {"name": "mifgsm", **common, "mu": MOMENTUM, "loss": loss,
                                              "random_start": True, "seed": seed + r}
        if "mdi2fgsm" in kinds:
            specs[f"mdi2fgsm-{loss}"] = {"name": "di2fgsm", **common, "mu": MOMENTUM, "p": DI_PROBABILITY,
                                         "loss": loss, "seed": seed}
        if "sgm" in kinds:
            specs[f"sgm-{loss}"] = {"name": "sgm", **common, "gamma": SGM_GAMMA, "loss": loss, "seed": seed}
    return specs


def has_residual_members(model: nn.Module) -> bool:
    """True when every member of `model` (an Ensemble's members, or the model itself) has residual
    blocks, so SGM can run on it."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    members = model.members if isinstance(getattr(model, "members", None), nn.ModuleList) else [model]
    return all(residual_blocks(m) for m in members)


def all_or_nothing(model: nn.Module, versions: Sequence[torch.Tensor], y: torch.Tensor,
                   batch_size: int = 512) -> torch.Tensor:
    """Boolean (N,) mask: sample n counts only if `model` classifies versions[k][n] as y[n] for
    every k (DVERGE's all-or-nothing black-box criterion)."""
    if not versions:
        raise ValueError("versions must hold at least one adversarial batch")
    survived = torch.ones(len(y), dtype=torch.bool, device=y.device)
    for k, x_adv in enumerate(versions):
        if len(x_adv) != len(y):
            raise ValueError(f"versions[{k}] has {len(x_adv)} images, y has {len(y)}")
        survived &= correct(model, x_adv, y, batch_size)
    return survived
