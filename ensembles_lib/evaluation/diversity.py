"""Vulnerability diversity (DVERGE Eq. 2) and within-ensemble transferability (DVERGE Sec. 4.2).

Diversity: for a target image x with label y and an independent source image x_s, feature
distillation (Eq. 1, `attacks.distill`) finds x'_f(x, x_s) within eps of x_s (L-inf, pixel units)
whose layer-l features in model f match those of x. If another model g still calls x'_f "y", g
shares f's non-robust features around x; the cross-entropy L_g(x'_f, y) is therefore small when
the two models are vulnerable in the same way. The pairwise diversity is

    d(f_i, f_j) = 1/2 E_{(x,y), (x_s,y_s), l} [ L_{f_i}(x'_{f_j}(x, x_s), y) + L_{f_j}(x'_{f_i}(x, x_s), y) ]

(nats; higher = more diverse), and an ensemble's diversity is its mean over member pairs.

Estimating the expectation: every image is paired with another image of the same batch as its
source (a random cyclic derangement, so x_s is never x itself), and every image draws its own
layer, uniformly among the taps of each model (`models.feature_layers`). The layer draw is a
uniform number u per image, mapped to each model's list of taps, so the same images and draws
serve every pair and d(f_i, f_j) = d(f_j, f_i) exactly. Everything is seeded.

Transferability: the mean off-diagonal entry of `transfer_matrix` over the members, i.e. how
often an attack crafted on one member fools another (DVERGE Fig. 2 and 3; the paper's attack
is PGD-50 with step eps/5 and five random starts, passed in by the caller).

Following the paper, both are measured on images every member classifies correctly. Used by the
DVERGE chapter (Fig. 2, Fig. 3) and, per epoch, by `epoch_metrics` ("diversity", "transferability").
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import distill
from ..checks import check_inputs, check_int
from ..models import feature_layers
from .accuracy import correct, correct_by_all  # noqa: F401 (correct_by_all: also imported from here)
from .transfer import named_models, transfer_matrix


def source_pairing(n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices src (n,) with src[k] != k: image k's source is image src[k] (a random n-cycle)."""
    if n < 2:
        raise ValueError(f"diversity needs at least 2 images to pair targets with sources, got {n}")
    order = torch.randperm(n, generator=generator)
    src = torch.empty(n, dtype=torch.long)
    src[order] = order.roll(-1)  # each image's source is the next one along the random cycle
    return src


def member_table(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, needed: int,
                 measure: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """`measure()` (a member-by-member table: a transfer or diversity matrix) when at least `needed`
    images are classified correctly by every member, else the same table of NaN with
    attrs n_images 0: barely trained members (a run shrunk to a few images) leave nothing to
    attack, and the claims built on the table are then undecided. Used by the DVERGE chapter."""
    if int(correct_by_all(members, x, y).sum()) >= needed:
        return measure()
    names = [str(k + 1) for k in range(len(members))]
    empty = pd.DataFrame(float("nan"), index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))
    empty.attrs.update(n_images=0, n_total=len(x))
    return empty


def distilled_images(model: nn.Module, x: torch.Tensor, x_source: torch.Tensor, u: torch.Tensor, *, eps: float,
                     steps: int = 10, step: float | None = None, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """x'_f(x, x_source) of Eq. 1 for every image, image k distilled at tap
    floor(u[k] * L) of `model`'s L taps (u in [0, 1) per image). Detached, in [0, 1]."""
    layers = feature_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no feature taps (models.feature_layers is empty); "
                         "vulnerability diversity needs a model built by ensembles_lib.models")
    index = (u * len(layers)).long().clamp_(max=len(layers) - 1).to(x.device)
    out = torch.empty_like(x_source)
    for k, layer in enumerate(layers):
        chosen = (index == k).nonzero().squeeze(1)
        for part in chosen.split(batch_size):
            out[part] = distill(model, x[part], x_source[part], layer=layer, eps=eps, step=step, steps=steps,
                                seed=seed + k)
    return out


@torch.no_grad()
def _mean_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Mean cross-entropy (nats) of `model` on (x, y), in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        total = sum(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="sum").item()
                    for i in range(0, len(x), batch_size))
    finally:
        model.train(was_training)
    return total / len(x)


def diversity_matrix(models, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
                     step: float | None = None, seed: int = 0, only_correct: bool = True,
                     batch_size: int = 256) -> pd.DataFrame:
    """Symmetric DataFrame D with D.loc[i, j] = d(f_i, f_j) of DVERGE Eq. 2, in nats.

    models: dict name -> model or a list (named "model 0", ...), each with feature taps. eps, steps,
    step: the distillation of Eq. 1 (pixel units; the paper measures with its training eps, 10
    steps of eps/10). only_correct: keep only the images every model classifies correctly, as the
    paper does. The diagonal holds L_f(x'_f(x, x_s), y), a model on its own distillations (low:
    distillation makes f see y). D.attrs["n_images"] is the number of images used. ValueError if
    fewer than two images remain.
    """
    named = named_models(models)
    check_inputs(x, y)
    steps = check_int(steps, "steps")
    seed = check_int(seed, "seed", minimum=0)
    batch_size = check_int(batch_size, "batch_size")
    if only_correct:
        keep = correct_by_all(list(named.values()), x, y)
        x, y = x[keep], y[keep]
    generator = torch.Generator().manual_seed(seed)
    src = source_pairing(len(x), generator).to(x.device)
    u = torch.rand(len(x), generator=generator)
    x_source = x[src]
    names = list(named)
    distilled = {name: distilled_images(named[name], x, x_source, u, eps=eps, steps=steps, step=step, seed=seed,
                                        batch_size=batch_size) for name in names}
    # loss[a][b] = L_{f_b}(x'_{f_a}(x, x_s), y): model b on model a's distilled images
    loss = {a: {b: _mean_ce(named[b], distilled[a], y, batch_size) for b in names} for a in names}
    table = pd.DataFrame(0.0, index=pd.Index(names, name="model"), columns=pd.Index(names, name="model"))
    for a in names:
        for b in names:
            table.loc[a, b] = 0.5 * (loss[a][b] + loss[b][a])  # DVERGE Eq. 2
    table.attrs["n_images"] = len(x)
    return table


def off_diagonal_mean(table: pd.DataFrame) -> float:
    """Mean of a square member-by-member table's off-diagonal cells (ordered pairs): the
    ensemble's diversity from diversity_matrix, its transferability from transfer_matrix."""
    values = table.to_numpy(dtype=float)
    n = len(values)
    if n < 2:
        raise ValueError("an ensemble average over member pairs needs at least 2 members")
    return float((values.sum() - values.trace()) / (n * (n - 1)))


def ensemble_diversity(members, x: torch.Tensor, y: torch.Tensor, **kwargs) -> float:
    """The mean of d(f_i, f_j) (Eq. 2) over the pairs i != j of `members`, in nats.

    kwargs go to `diversity_matrix` (eps is required)."""
    return off_diagonal_mean(diversity_matrix(members, x, y, **kwargs))


def within_transferability(members, x: torch.Tensor, y: torch.Tensor, attack: Callable,
                           batch_size: int = 512, among_source_fooled: bool = False) -> float:
    """Mean off-diagonal of `transfer_matrix(members, x, y, attack)`: the fraction of adversarial
    images crafted on one member that fool another (with among_source_fooled: of those that fool
    the member they were crafted on), averaged over ordered pairs, in [0, 1]. Images are those all
    members classify correctly (transfer_matrix's rule)."""
    return off_diagonal_mean(transfer_matrix(members, x, y, attack, batch_size=batch_size,
                                             among_source_fooled=among_source_fooled))
