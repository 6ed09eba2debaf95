"""The black-box protocol of DVERGE Sec. 4.3 (Fig. 4, Fig. 5) run through the cache: hold-out
surrogates trained once, every adversarial version computed once and stored as data, every target
scored all-or-nothing over the versions.

It sits above both the cache (trained surrogates, stored adversarial examples) and evaluation
(the attack list `evaluation.transfer_attacks` and the rule `evaluation.all_or_nothing`), which
know nothing of each other. The same stored examples serve every target model, every rerun and
every notebook parameter that does not change them. Budgets are L-inf in pixel units.

SGM needs surrogates whose members have residual blocks: `blackbox_accuracy` raises a ValueError
naming the surrogate before any training if one lacks them (`supports_sgm` asks beforehand; the
DVERGE chapter drops "sgm" from its kinds for other architectures, and says so).
"""

from __future__ import annotations

from typing import Annotated, Callable, Mapping, Sequence

import pandas as pd
import torch
from pydantic import Field
from torch import nn

from . import cache
from .data import head
from .evaluation import all_or_nothing, correct, has_residual_members, transfer_attacks
from .fields import validated



def untrained(source) -> nn.Module:
    """`source` itself if it is a model, else the untrained model of a training-run spec (nothing
    is trained or loaded; the caller's random state is kept)."""
    if isinstance(source, nn.Module):
        return source
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG
        return cache.build_model(source)


def supports_sgm(source) -> bool:
    """True when every member of `source` (a model, a training-run spec, or a list of them) has
    residual blocks, so SGM can run on it. Specs are built untrained (nothing is trained or loaded)."""
    items = list(source) if isinstance(source, (list, tuple, nn.ModuleList)) else [source]
    if not items:
        raise ValueError("source must be a model, a spec, or a non-empty list of them")
    return all(has_residual_members(untrained(item)) for item in items)


def adversarial_versions(surrogates: Mapping[str, object], attacks: Mapping[str, dict], data: dict, *,
                         combine: str = "prob", device=None, progress: bool = False) -> dict[str, torch.Tensor]:
    """Every (surrogate, attack) version of data's images, through `cache.adversarial` (computed
    once, then loaded): "<surrogate>/<attack>" -> x_adv, and "y" -> the labels.

    surrogates: name -> a training-run spec or a list of them (combined with `combine`).
    attacks: name -> attack spec. data: {"name", "split", "n"}, the first n images of that split."""
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


@validated
def blackbox_correct(targets: Annotated[Mapping[str, nn.Module], Field(min_length=1)],
                     surrogates: Annotated[Mapping[str, object], Field(min_length=1)],
                     eps_grid: Annotated[Sequence[Annotated[float, Field(ge=0, le=1)]], Field(min_length=1)],
                     data: dict, *, attacks: Callable[[float], Mapping[str, dict]] = transfer_attacks,
                     combine: str = "prob", device: str | torch.device | None = None,
                     batch_size: Annotated[int, Field(ge=1)] = 512,
                     progress: bool = False) -> dict[float, dict[str, torch.Tensor]]:
    """Which images every target survives, all or nothing, at every eps: eps -> target name -> a
    bool (N,) mask (at eps = 0, the clean `correct`). The per-image masks let a chapter compare two
    targets on the same images; `blackbox_accuracy` is their means.

    targets: name -> trained model (an Ensemble or any nn.Module). surrogates: name -> a spec or a
    list of member specs (combined with `combine`; DVERGE averages probabilities). eps_grid: budgets
    in [0, 1], pixel units. data: {"name", "split", "n"}, the first n images of that split.
    attacks: eps -> {name: attack spec} (default `evaluation.transfer_attacks` with the paper's
    settings; bind steps, restarts, kinds with functools.partial). Bad arguments, and SGM on a
    surrogate without residual blocks, are ValueErrors raised before anything is trained.
    """
    attack_lists = {e: dict(attacks(e)) for e in eps_grid if e > 0}
    if any(spec["name"] == "sgm" for specs in attack_lists.values() for spec in specs.values()):
        for s_name, source in surrogates.items():
            if not supports_sgm(source):
                raise ValueError(f"surrogate {s_name!r} has members without residual blocks, so SGM cannot run on "
                                 "it; use ResNet members or drop 'sgm' from the attack kinds")
    if device is None:  # where the targets live
        device = next(next(iter(targets.values())).parameters()).device
    x, y = head(data["name"], data["split"], data["n"], device)
    masks = {}
    for e in eps_grid:
        if e == 0:
            masks[e] = {name: correct(model, x, y, batch_size) for name, model in targets.items()}
            continue
        versions = adversarial_versions(surrogates, attack_lists[e], data, combine=combine, device=x.device,
                                        progress=progress)
        labels = versions.pop("y")
        masks[e] = {name: all_or_nothing(model, list(versions.values()), labels, batch_size)
                    for name, model in targets.items()}
    return masks


def blackbox_accuracy(targets: Mapping[str, nn.Module], surrogates: Mapping[str, object], eps_grid: Sequence[float],
                      data: dict, *, attacks: Callable[[float], Mapping[str, dict]] = transfer_attacks,
                      combine: str = "prob", device: str | torch.device | None = None, batch_size: int = 512,
                      progress: bool = False, masks: dict[float, dict[str, torch.Tensor]] | None = None) -> pd.DataFrame:
    """All-or-nothing black-box accuracy of every target at every eps: DataFrame indexed by eps
    (name "eps"), one column per target, fractions in [0, 1]; the means of `blackbox_correct`
    (same arguments), or of `masks` when the caller has them already. `df.attrs["versions"]` holds
    the number of adversarial versions per eps (surrogates x attacks; 0 at eps = 0) and
    `df.attrs["n_images"]` the images evaluated. Used by the DVERGE chapter (Figs. 4 and 5)."""
    if masks is None:
        masks = blackbox_correct(targets, surrogates, eps_grid, data, attacks=attacks, combine=combine, device=device,
                                 batch_size=batch_size, progress=progress)
    table = pd.DataFrame.from_dict({e: {name: mask.float().mean().item() for name, mask in by_name.items()}
                                    for e, by_name in masks.items()}, orient="index")
    table.index.name = "eps"
    table.attrs["versions"] = {e: len(surrogates) * len(attacks(e)) if e > 0 else 0 for e in masks}
    table.attrs["n_images"] = len(next(iter(masks[next(iter(masks))].values())))
    return table
