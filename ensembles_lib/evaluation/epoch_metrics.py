"""Metrics recorded after every training epoch, named in a cache spec's "eval" key.

`EPOCH_METRICS` maps a name to `fn(model, x, y, **params) -> dict` of numbers; the cache calls
each metric a spec lists on the first n images of the spec's evaluation split and merges the
dicts into the epoch's history record (`training.fit`'s eval_fn). A chapter that needs another
curve along training adds a function here: the Strength in Numbers chapter plots clean and robust
accuracy per epoch (its Fig. 2a/2b), the DVERGE chapter diversity and transferability (its Fig. 2).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..ensembles import members_of
from .accuracy import accuracy


def clean(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """{"clean_acc": accuracy on the clean images} (a fraction)."""
    return {"clean_acc": accuracy(model, x, y)}


def robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: dict) -> dict:
    """{"robust_acc": accuracy on attack(model, x, y)}; `attack` is an attack spec ({"name", ...})."""
    from ..training.strategies import SpecAttack  # training imports evaluation's package at import time

    x_adv = SpecAttack(attack)(model, x, y)
    return {"robust_acc": accuracy(model, x_adv, y)}


def diversity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
              step: float | None = None, seed: int = 0) -> dict:
    """{"diversity": mean pairwise vulnerability diversity (DVERGE Eq. 2, nats) of the Ensemble's
    members}, on the images every member gets right (NaN when fewer than two are). Distillation
    with budget `eps` and `steps` steps of `step` (default eps / steps), pixel units."""
    from .diversity import correct_by_all, ensemble_diversity

    members = list(members_of(model, "the 'diversity' metric"))
    if int(correct_by_all(members, x, y).sum()) < 2:
        return {"diversity": float("nan")}
    return {"diversity": ensemble_diversity(members, x, y, eps=eps, steps=steps, step=step, seed=seed)}


def transferability(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: dict) -> dict:
    """{"transferability": mean off-diagonal transfer rate between the Ensemble's members (DVERGE
    Fig. 2)} under `attack` (an attack spec), on the images every member gets right (NaN if none)."""
    from ..training.strategies import SpecAttack
    from .diversity import correct_by_all, within_transferability

    members = list(members_of(model, "the 'transferability' metric"))
    if not correct_by_all(members, x, y).any():
        return {"transferability": float("nan")}
    return {"transferability": within_transferability(members, x, y, SpecAttack(attack))}


EPOCH_METRICS = {"clean": clean, "robust": robust, "diversity": diversity, "transferability": transferability}


def check_metric(spec: dict, where: str = "metric") -> dict:
    """`spec` ({"name": ..., params}) checked against its function's keyword parameters; returned as is."""
    if not isinstance(spec, dict) or spec.get("name") not in EPOCH_METRICS:
        raise ValueError(f"{where} must be a dict whose 'name' is one of {', '.join(EPOCH_METRICS)}, got {spec!r}")
    parameters = inspect.signature(EPOCH_METRICS[spec["name"]]).parameters
    accepted = {p for p, info in parameters.items() if info.kind == info.KEYWORD_ONLY}
    required = {p for p in accepted if parameters[p].default is inspect.Parameter.empty}
    given = set(spec) - {"name"}
    if given - accepted:
        raise ValueError(f"{where} {spec['name']!r}: unknown parameter(s) {', '.join(sorted(given - accepted))}; "
                         f"it accepts {', '.join(sorted(accepted)) or 'none'}")
    if required - given:
        raise ValueError(f"{where} {spec['name']!r}: missing parameter(s) {', '.join(sorted(required - given))}")
    if "attack" in spec:
        from ..training.strategies import SpecAttack

        SpecAttack(spec["attack"])  # ValueError for a bad attack spec, before any training
    return spec


def evaluate(metrics: list[dict], model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Every metric in `metrics` on (x, y), merged into one dict (later names win on a clash)."""
    record = {}
    for spec in metrics:
        params = {k: v for k, v in spec.items() if k != "name"}
        record.update(EPOCH_METRICS[spec["name"]](model, x, y, **params))
    return record
