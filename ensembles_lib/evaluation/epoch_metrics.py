"""Metrics recorded after every training epoch, named in a cache spec's "eval" key.

`EPOCH_METRICS` maps a name to `fn(model, x, y, **params) -> dict` of numbers (each one's
parameters are declared once, in `specs.MetricSpec`); the cache calls each metric a spec lists on
the first n images of the spec's evaluation split and merges the dicts into the epoch's record (`training.fit`'s eval_fn). A chapter that needs another
curve along training adds a function here: the Strength in Numbers chapter plots clean and robust
accuracy per epoch (its Fig. 2a/2b), the DVERGE chapter diversity and transferability (its Fig. 2).
"""

from __future__ import annotations

import torch
from torch import nn

from ..attacks.specs import attack_spec
from ..ensembles import members_of
from ..specs import Spec
from .accuracy import accuracy
from .accuracy import correct_by_all
from .diversity import ensemble_diversity, within_transferability


def clean(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """{"clean_acc": accuracy on the clean images} (a fraction)."""
    return {"clean_acc": accuracy(model, x, y)}


def robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: dict) -> dict:
    """{"robust_acc": accuracy on attack(model, x, y)}; `attack` is an attack spec ({"name", ...})."""
    x_adv = attack_spec(attack).run(model, x, y)
    return {"robust_acc": accuracy(model, x_adv, y)}


def diversity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
              step: float | None = None, seed: int = 0) -> dict:
    """{"diversity": mean pairwise vulnerability diversity (DVERGE Eq. 2, nats) of the Ensemble's
    members}, on the images every member gets right (NaN when fewer than two are). Distillation
    with budget `eps` and `steps` steps of `step` (default eps / steps), pixel units."""
    members = list(members_of(model, "the 'diversity' metric"))
    if int(correct_by_all(members, x, y).sum()) < 2:
        return {"diversity": float("nan")}
    return {"diversity": ensemble_diversity(members, x, y, eps=eps, steps=steps, step=step, seed=seed)}


def transferability(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: dict,
                    among_source_fooled: bool = False) -> dict:
    """{"transferability": mean off-diagonal transfer rate between the Ensemble's members (DVERGE
    Fig. 2)} under `attack` (an attack spec), on the images every member gets right (NaN if none);
    among_source_fooled counts only the examples that fool their own source (`transfer_matrix`)."""
    members = list(members_of(model, "the 'transferability' metric"))
    if not correct_by_all(members, x, y).any():
        return {"transferability": float("nan")}
    return {"transferability": within_transferability(members, x, y, attack_spec(attack).run,
                                                      among_source_fooled=among_source_fooled)}


EPOCH_METRICS = {"clean": clean, "robust": robust, "diversity": diversity, "transferability": transferability}


def evaluate(metrics: list[Spec], model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Every metric in `metrics` (validated `specs.MetricSpec`s, as in a TrainingRun's eval) on
    (x, y), merged into one dict (later names win on a clash)."""
    record = {}
    for spec in metrics:
        params = {field: getattr(spec, field) for field in type(spec).model_fields if field != "name"}
        record.update(EPOCH_METRICS[spec.name](model, x, y, **params))
    return record
