"""Training objectives as small strategy objects: `loss(model, x, y) -> (loss, scores)`.

`fit` calls a strategy once per batch; the strategy owns everything that differs between the
papers' objectives (which inputs, which loss), the loop owns the rest. `scores` are the (N, C)
outputs on the clean batch, used only for the running training accuracy. `spec()` is the
strategy as a JSON-able dict, part of a trained model's cache key.

Used by every chapter that trains (Standard) and by the Strength in Numbers chapter (Adversarial).
`from_spec(spec)` builds a strategy from its validated spec (`specs.StrategySpec`).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pydantic import BaseModel

from ..attacks.specs import attack_spec
from ..fields import NonNegative, check_value
from ..specs import AdversarialSpec, StandardSpec


def outputs_log_probs(model: nn.Module) -> bool:
    """True when `model` returns log-probabilities (an Ensemble with combine="prob"), not logits:
    it says so with an `outputs_log_probs` attribute, or it has `combine == "prob"`."""
    flag = getattr(model, "outputs_log_probs", None)
    return bool(flag) if flag is not None else getattr(model, "combine", None) == "prob"


def classification_loss(model: nn.Module, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `scores` against `y`.

    For a model that outputs log of the mean member probabilities, the cross-entropy of the
    ensemble's prediction is nll_loss on those scores (SiN Eq. 4, L(y, 1/k sum_i m_i(x)));
    applying log_softmax again would be harmless (they already normalise) but we say what we mean.
    """
    if outputs_log_probs(model):
        return F.nll_loss(scores, y)
    return F.cross_entropy(scores, y)


class Standard:
    """Empirical risk minimisation: cross-entropy on the clean batch (SiN Eq. 1)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = model(x)
        return classification_loss(model, scores, y), scores

    @classmethod
    def from_spec(cls, spec: StandardSpec) -> "Standard":
        return cls()

    def spec(self) -> dict:
        return {"name": "standard"}

    def __repr__(self) -> str:
        return "Standard()"


class Adversarial:
    """Adversarial training on clean and adversarial inputs, weighted by rho (SiN Eq. 3 and 4).

    loss = (L(y, m(x)) + rho * L(y, m(x_adv))) / (1 + rho), where x_adv = attack(model, x, y) is
    generated against the whole `model` given to `fit` -- for an Ensemble, the whole ensemble
    (SiN Algorithm 1) -- at the current parameters. The 1 / (1 + rho) factor is ours: with rho = 1
    it is the average of the two losses that SiN Sec. 4 trains with ("averaged ... i.e. rho = 1"),
    and it keeps the learning rate's meaning the same as for Standard. rho = 0 is clean training.

    attack: an attack spec (a dict such as {"name": "ifgsm", "eps": 0.3, "steps": 3}, validated by
        `attacks.specs.attack_spec`), or any callable attack(model, x, y) -> x_adv that leaves the
        parameters' gradients alone and restores the model's mode (the library's attacks do).
    A spec without its own seed, or a callable with a `seed` keyword, gets a fresh seed per batch
    drawn from torch's global generator, so random starts differ between batches yet a seeded (or
    resumed) run repeats exactly. The clean and adversarial batches go through the model in one
    forward pass, so batch-norm statistics see both, as in Madry-style training.
    """

    def __init__(self, attack, rho: float = 1.0):
        self.rho = check_value(NonNegative, rho, "rho")
        if callable(attack) and not isinstance(attack, BaseModel):
            self.attack_spec = None
            self.run = attack
            try:
                self._takes_seed = "seed" in inspect.signature(attack).parameters
            except (TypeError, ValueError):
                self._takes_seed = False
        else:
            self.attack_spec = attack_spec(attack)
            self.run = self.attack_spec.run
            self._takes_seed = self.attack_spec.seed is None

    @classmethod
    def from_spec(cls, spec: AdversarialSpec) -> "Adversarial":
        return cls(spec.attack, rho=spec.rho)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._takes_seed:
            x_adv = self.run(model, x, y, seed=int(torch.randint(0, 2**31 - 1, (1,)).item()))
        else:
            x_adv = self.run(model, x, y)
        scores = model(torch.cat([x, x_adv.detach()]))
        clean, adv = scores[: len(x)], scores[len(x):]
        loss_clean, loss_adv = classification_loss(model, clean, y), classification_loss(model, adv, y)
        loss = (loss_clean + self.rho * loss_adv) / (1.0 + self.rho)  # SiN Eq. 3 (Eq. 4 for an Ensemble)
        return loss, clean

    def spec(self) -> dict:
        attack = self.attack_spec.canonical() if self.attack_spec is not None else \
            {"name": getattr(self.run, "__name__", repr(self.run))}
        return {"name": "adversarial", "rho": self.rho, "attack": attack}

    def __repr__(self) -> str:
        return f"Adversarial(attack={self.spec()['attack']}, rho={self.rho})"
