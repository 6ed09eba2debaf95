"""Black-box transfer robustness, all-or-nothing over many adversarial versions (DVERGE Sec. 4.3,
Fig. 4 and Fig. 5).

The attacker never queries the defended model. It trains its own hold-out surrogate ensembles
(standard training, the DVERGE "Baseline"), attacks them white-box with several transfer attacks,
and shows the results to the target. The paper's list, per surrogate and per loss (cross-entropy
and the CW margin): momentum PGD (MI-FGSM's update) from three random starts, M-DI2-FGSM (random
resize-and-pad, with momentum) and SGM (the skip-gradient method), 100 iterations of step eps/5
each: 3 surrogates x 5 attacks x 2 losses = 30 versions of every image. A target is credited
with an image only if it classifies **every** version correctly (all-or-nothing), per eps.

Every version comes from `cache.adversarial`, so it is computed once and stored as data: the
same examples serve every target model, every rerun and every notebook parameter that does not
change them. Budgets are L-inf in pixel units.

SGM scales the gradient through residual branches, so it needs surrogates whose members have
residual blocks (the library's ResNets); `blackbox_accuracy` raises a ValueError naming the
surrogate before any work if one lacks them. Drop "sgm" from `kinds` for other architectures
(the DVERGE chapter's `cpu` profile does, and says so).

Used by the DVERGE chapter; `all_or_nothing` is the rule, usable with any list of versions.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from ..attacks import residual_blocks
from ..attacks._checks import check_eps
from ..checks import check_choice, check_int
from .accuracy import accuracy, correct

KINDS = ("mpgd", "mdi2fgsm", "sgm")
LOSS_NAMES = ("ce", "cw")
SGM_GAMMA = 0.2  # Wu et al. (2020) use gamma = 0.2 for ResNet sources; DVERGE states no value
DI_PROBABILITY = 0.5  # Xie et al. (2019): each step transforms the input with probability 0.5
MOMENTUM = 1.0  # Dong et al. (2018)'s decay, for momentum PGD and M-DI2-FGSM


def transfer_attacks(eps: float, *, steps: int = 100, step: float | None = None, restarts: int = 3,
                     losses: Sequence[str] = LOSS_NAMES, kinds: Sequence[str] = KINDS, seed: int = 0) -> dict[str, dict]:
    """The black-box attack list at budget `eps`, as attack specs for `cache.adversarial`:
    name -> {"name": ..., "eps": ..., ...}. DVERGE Sec. 4.3: momentum PGD from `restarts` random
    starts ("mpgd"), M-DI2-FGSM ("mdi2fgsm") and SGM ("sgm"), each with every loss in `losses`,
    `steps` iterations of `step` (default eps / 5).

    Each random start of momentum PGD is its own version, "mpgd-<loss>-r<k>" (the paper counts 3
    of them among its 5 attacks per loss).
    """
    eps = check_eps(eps)
    if eps == 0:
        raise ValueError("eps must be > 0 for an attack list (eps = 0 is the clean accuracy)")
    steps = check_int(steps, "steps")
    restarts = check_int(restarts, "restarts")
    seed = check_int(seed, "seed", minimum=0)
    step = eps / 5 if step is None else step
    for loss in losses:
        check_choice(loss, "losses entries", LOSS_NAMES)
    for kind in kinds:
        check_choice(kind, "kinds entries", KINDS)
    if not losses or not kinds:
        raise ValueError("losses and kinds must each name at least one entry")
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


def supports_sgm(source) -> bool:
    """True when every member of `source` (a model, a spec, or a list of specs/models) has
    residual blocks, so SGM can run on it. Specs are built untrained (nothing is loaded)."""
    from .. import cache

    items = source if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise ValueError("source must be a model, a spec, or a non-empty list of them")
    for item in items:
        if isinstance(item, dict):
            with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG
                item = cache.build_model(cache.normalize(item)["model"])
        if not isinstance(item, nn.Module):
            raise ValueError(f"source entries must be specs (dicts) or nn.Modules, got {type(item).__name__}")
        members = list(item.members) if isinstance(getattr(item, "members", None), nn.ModuleList) else [item]
        if not all(residual_blocks(m) for m in members):
            return False
    return True


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


def adversarial_versions(surrogates: Mapping[str, object], attacks: Mapping[str, dict], data: dict, *,
                         combine: str = "prob", device=None, progress: bool = False) -> dict[str, torch.Tensor]:
    """Every (surrogate, attack) version of data's images, through `cache.adversarial` (computed
    once, then loaded): "<surrogate>/<attack>" -> x_adv, and "y" -> the labels."""
    from .. import cache

    versions, labels = {}, None
    for s_name, source in surrogates.items():
        for a_name, spec in attacks.items():
            x_adv, y = cache.adversarial(source, spec, data, combine=combine, device=device, progress=progress)
            if labels is not None and not torch.equal(labels, y):
                raise ValueError("the surrogates' adversarial sets disagree on the labels: check `data`")
            labels = y
            versions[f"{s_name}/{a_name}"] = x_adv
    versions["y"] = labels
    return versions


def blackbox_accuracy(targets: Mapping[str, nn.Module], surrogates: Mapping[str, object], eps_grid: Sequence[float],
                      data: dict, *, attacks: Callable[[float], Mapping[str, dict]] = transfer_attacks,
                      combine: str = "prob", device=None, batch_size: int = 512, progress: bool = False) -> pd.DataFrame:
    """All-or-nothing black-box accuracy of every target at every eps: DataFrame indexed by eps
    (name "eps"), one column per target, fractions in [0, 1].

    targets: name -> trained model (an Ensemble or any nn.Module). surrogates: name -> a spec or a
    list of member specs (combined with `combine`; DVERGE averages probabilities). data:
    {"name", "split", "n"}, the first n images of that split. attacks: eps -> {name: attack spec}
    (default `transfer_attacks` with the paper's settings; bind steps, restarts, kinds with
    functools.partial). At eps = 0 the entry is the clean accuracy. `df.attrs["versions"]` holds
    the number of adversarial versions per eps and `df.attrs["n_images"]` the images evaluated.
    """
    from ..data import head

    if not targets or not surrogates:
        raise ValueError("targets and surrogates must each hold at least one entry")
    grid = [check_eps(e, "eps_grid entries") for e in eps_grid]
    if not grid:
        raise ValueError("eps_grid must hold at least one budget")
    attack_lists = {e: dict(attacks(e)) for e in grid if e > 0}
    if any(spec["name"] == "sgm" for specs in attack_lists.values() for spec in specs.values()):
        for s_name, source in surrogates.items():
            if not supports_sgm(source):
                raise ValueError(f"surrogate {s_name!r} has members without residual blocks, so SGM cannot run on "
                                 "it; use ResNet members or drop 'sgm' from the attack kinds")
    if device is None:  # where the targets live
        device = next(next(iter(targets.values())).parameters()).device
    x, y = head(data["name"], data["split"], data["n"], device)
    rows, counts = {}, {}
    for e in grid:
        if e == 0:
            rows[e] = {name: accuracy(model, x, y, batch_size) for name, model in targets.items()}
            counts[e] = 0
            continue
        versions = adversarial_versions(surrogates, attack_lists[e], data, combine=combine, device=x.device,
                                        progress=progress)
        labels = versions.pop("y")
        rows[e] = {name: all_or_nothing(model, list(versions.values()), labels, batch_size).float().mean().item()
                   for name, model in targets.items()}
        counts[e] = len(versions)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "eps"
    table.attrs["versions"] = counts
    table.attrs["n_images"] = len(y)
    return table
