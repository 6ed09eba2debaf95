"""Transferability matrices: how often adversarial images made on one model fool another.

The protocol of TREND (Sec. III, "Transferability") and DVERGE (Sec. 4.2): keep only the images
every model classifies correctly, attack each source model white-box, and count how many of its
adversarial images each target misclassifies, as a fraction of the images kept. The diagonal is
therefore the white-box success rate. TREND counts an image as transferred only if its
adversarial version fools both the source and the target (`require_source_fooled=True`); the
two counts differ only by the rare images the white-box attack fails on.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from ..checks import check_inputs, check_bool, check_int
from .accuracy import correct, correct_by_all


def named_models(models) -> dict[str, nn.Module]:
    """`models` as a dict name -> module: a dict as it is, a list, tuple or nn.ModuleList named
    "model 0", "model 1", ...; ValueError unless it is a non-empty collection of nn.Modules."""
    if isinstance(models, dict):
        named = dict(models)
    elif isinstance(models, (list, tuple, nn.ModuleList)):
        named = {f"model {i}": m for i, m in enumerate(models)}
    else:
        raise ValueError(f"models must be a dict name -> module or a list of modules, got {type(models).__name__}")
    if not named:
        raise ValueError("models is empty: it must hold at least one model")
    for name, model in named.items():
        if not isinstance(model, nn.Module):
            raise ValueError(f"models[{name!r}] must be an nn.Module, got {type(model).__name__}")
    return named


def transfer_fooled(models: dict[str, nn.Module] | Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                    attack: Callable, batch_size: int = 512,
                    allow_empty: bool = False) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Per image, which targets each source's adversarial version fools: (names, keep, fooled).

    keep: bool (N,), the images every model classifies correctly (the only ones attacked);
    fooled: bool (S, S, n_kept), fooled[s, t, i] = the adversarial version of kept image i made
    on source s is misclassified by target t (so fooled[s, s] is the white-box success). TREND's
    "transferred" is fooled[s, t] & fooled[s, s]. ValueError if no image is kept, unless
    allow_empty (then fooled has no images and nothing is attacked). Used by
    `transfer_matrix` and by the TREND chapter's paired claims and transferability curves.
    """
    named = named_models(models)
    check_inputs(x, y)
    batch_size = check_int(batch_size, "batch_size")
    if not callable(attack):
        raise ValueError("attack must be callable attack(model, x, y) -> x_adv")
    check_bool(allow_empty, "allow_empty")
    keep = correct_by_all(list(named.values()), x, y, batch_size)
    if not keep.any() and not allow_empty:
        raise ValueError(f"no image of the {len(x)} given is classified correctly by every model; use more images")
    x_kept, y_kept = x[keep], y.to(x.device)[keep]
    names = list(named)
    fooled = torch.zeros(len(names), len(names), len(x_kept), dtype=torch.bool, device=x.device)
    for s, source in enumerate(names if len(x_kept) else []):
        x_adv = torch.cat([attack(named[source], x_kept[i:i + batch_size], y_kept[i:i + batch_size])
                           for i in range(0, len(x_kept), batch_size)])
        for t, target in enumerate(names):
            fooled[s, t] = ~correct(named[target], x_adv, y_kept, batch_size)
    return names, keep, fooled


def transfer_matrix(models: dict[str, nn.Module] | Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                    attack: Callable, batch_size: int = 512, require_source_fooled: bool = False,
                    among_source_fooled: bool = False) -> pd.DataFrame:
    """DataFrame M with M.loc[source, target] = fraction of the adversarial images generated on
    `source` (from the images every model gets right) that `target` misclassifies, in [0, 1].

    models: dict name -> model, or a list or nn.ModuleList (named "model 0", ...). attack:
    `attack(model, x, y) -> x_adv`, run on batches of `batch_size`. `M.attrs["n_images"]` is the
    number of images used, `M.attrs["n_total"]` the number given. With require_source_fooled,
    an image counts for a target only if it also fools its source (TREND's definition). With
    among_source_fooled, an off-diagonal cell is the fraction of the images that fool the source
    which also fool the target (NaN where the source is never fooled), so a white-box attack that
    failed on its own source does not count as "no transfer" (DVERGE Fig. 3's reading); the
    diagonal stays the source's own success rate, and `M.attrs["n_fooled"]` holds, per source, how
    many images fooled it. ValueError if no image is classified correctly by every model. Used by
    the TREND and DVERGE chapters.
    """
    check_bool(require_source_fooled, "require_source_fooled")
    check_bool(among_source_fooled, "among_source_fooled")
    names, keep, fooled = transfer_fooled(models, x, y, attack, batch_size)
    table = pd.DataFrame(0.0, index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))
    n_fooled = {}
    for s, source in enumerate(names):
        source_fooled = fooled[s, s]
        n_fooled[source] = int(source_fooled.sum().item())
        for t, target in enumerate(names):
            if among_source_fooled and t != s:
                table.loc[source, target] = (fooled[s, t][source_fooled].float().mean().item() if n_fooled[source]
                                             else float("nan"))
                continue
            hit = fooled[s, t] & source_fooled if require_source_fooled else fooled[s, t]
            table.loc[source, target] = hit.float().mean().item()
    table.attrs["n_fooled"] = n_fooled
    table.attrs["n_images"] = int(keep.sum().item())
    table.attrs["n_total"] = len(x)
    return table
