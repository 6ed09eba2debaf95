"""Robust accuracy under a set of attacks, all-or-nothing across them (the robustness tables of
the DVERGE, SQ, CLM and SiN chapters)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..checks import check_inputs, check_int
from .accuracy import correct

RESERVED = ("clean", "all")


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    attacks: dict[str, Callable], batch_size: int = 512) -> dict[str, float]:
    """Accuracy on clean inputs and under each attack, and the all-or-nothing robust accuracy.

    attacks: name -> `attack(model, x, y) -> x_adv` (e.g. functools.partial(pgd, eps=8/255,
    steps=20)). Each attack runs on batches of `batch_size`. Returns {"clean": ..., <name>: ...,
    "all": ...}, fractions in [0, 1], where "all" counts a sample as robust only if it is
    classified correctly clean and after every attack -- the worst case over the attacks, per
    sample, as robustness tables report it (it is <= the smallest per-attack accuracy).
    """
    check_inputs(x, y)
    batch_size = check_int(batch_size, "batch_size")
    if not isinstance(attacks, dict) or not attacks:
        raise ValueError("attacks must be a non-empty dict name -> attack(model, x, y)")
    for name, attack in attacks.items():
        if name in RESERVED:
            raise ValueError(f"attacks: the name {name!r} is reserved for a result ({', '.join(RESERVED)}); rename it")
        if not callable(attack):
            raise ValueError(f"attacks[{name!r}] must be callable attack(model, x, y) -> x_adv")
    if len(x) == 0:
        raise ValueError("x is empty: robust_accuracy needs at least one sample")
    survived = correct(model, x, y, batch_size)
    results = {"clean": survived.float().mean().item()}
    for name, attack in attacks.items():
        ok = torch.cat([correct(model, attack(model, x[i:i + batch_size], y[i:i + batch_size]),
                                y[i:i + batch_size], batch_size) for i in range(0, len(x), batch_size)])
        results[name] = ok.float().mean().item()
        survived &= ok
    results["all"] = survived.float().mean().item()
    return results


class _Recorder(nn.Module):
    """`model`, noting after every forward call which samples it still classifies correctly."""

    def __init__(self, model: nn.Module, y: torch.Tensor):
        super().__init__()
        self.model, self.y, self.correct = model, y, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.model(x)
        # a query on part of the batch (a restart on the survivors) is counted but cannot be read
        self.correct.append((scores.argmax(1) == self.y).detach() if len(x) == len(self.y) else None)
        return scores


def correct_by_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Callable, steps: int) -> list[torch.Tensor]:
    """Which images are classified correctly after 0, 1, ..., `steps` steps of ONE run of an
    iterative attack: entry k, a bool (N,) mask, equals `correct` under the same attack run for k
    steps (the first k iterates of a seeded run do not depend on how many follow); entry 0 is the
    clean one. The per-image masks let a chapter compare two models on the same images.

    attack: `attack(model, x, y, steps=...) -> x_adv` querying the model once per step (pgd,
    ifgsm, member attacks with eot_samples=1 and one restart). One run of `steps` steps replaces
    `steps` separate runs: the Strength in Numbers chapter's accuracy-vs-steps curve (Fig. 2c).
    """
    check_inputs(x, y)
    check_int(steps, "steps", 1)
    recorder = _Recorder(model, y)
    x_adv = attack(recorder, x, y, steps=steps)
    if len(recorder.correct) != steps or any(c is None for c in recorder.correct):
        raise ValueError(f"attack made {len(recorder.correct)} model queries for {steps} steps: accuracy_by_steps "
                         "needs one query per step (eot_samples=1, one restart)")
    # query k (0-based) saw the iterate after k steps; the returned x_adv is the one after `steps`
    return [correct(model, x, y)] + recorder.correct[1:] + [correct(model, x_adv, y)]


def accuracy_by_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Callable, steps: int) -> list[float]:
    """Accuracy after 0, 1, ..., `steps` steps of ONE run of an iterative attack: the means of
    `correct_by_steps` (entry 0 is the clean accuracy)."""
    return [mask.float().mean().item() for mask in correct_by_steps(model, x, y, attack, steps)]
