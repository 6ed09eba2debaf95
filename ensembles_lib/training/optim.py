"""Optimisers and learning-rate schedules for `fit`, both chosen by name.

A schedule here is a pure function of the global step, so the only state a checkpoint needs is
the step count: a resumed run sets exactly the learning rates an uninterrupted one would have.
Milestones count epochs, as the papers state them (SiN Sec. 4 decays by 0.2 at fixed points).
"""

from __future__ import annotations

import math

import torch

from typing import get_args

from ..checks import check_choice
from ..specs import Optimizer, Schedule

OPTIMIZERS = get_args(Optimizer)
SCHEDULES = get_args(Schedule)
# Fraction of the steps the one-cycle schedule spends rising to the peak learning rate.
ONECYCLE_WARMUP = 0.25



def make_optimizer(params, optimizer: str, *, lr: float, momentum: float, weight_decay: float,
                   nesterov: bool) -> torch.optim.Optimizer:
    """SGD (with momentum, optionally Nesterov) or Adam (momentum is its beta1), L2 weight decay."""
    check_choice(optimizer, "optimizer", OPTIMIZERS)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    return torch.optim.Adam(params, lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)


def lr_at(schedule: str, lr: float, step: int, *, steps_per_epoch: int, total_steps: int,
          milestones: tuple = (), gamma: float = 0.1) -> float:
    """The learning rate for global step `step` (0-based) of `total_steps`.

    multistep: lr * gamma ** (number of milestone epochs already reached);
    cosine: lr * (1 + cos(pi * step / total_steps)) / 2;
    onecycle: linear rise to lr over the first quarter of the steps, then linear fall to 0;
    constant: lr.
    """
    check_choice(schedule, "schedule", SCHEDULES)
    if schedule == "multistep":
        epoch = step // steps_per_epoch
        return lr * gamma ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "onecycle":
        peak = max(1, round(ONECYCLE_WARMUP * total_steps))
        if step < peak:
            return lr * (step + 1) / peak
        return lr * max(0.0, (total_steps - step) / max(1, total_steps - peak))
    return lr


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = value
