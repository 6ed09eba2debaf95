"""Training objectives as small strategy objects: `loss(model, x, y) -> (loss, scores)`.

`fit` calls a strategy once per batch; the strategy owns everything that differs between the
papers' objectives (which inputs, which loss), the loop owns the rest. `scores` are the (N, C)
outputs on the clean batch, used only for the running training accuracy. `spec()` is the
strategy as a JSON-able dict, part of a trained model's cache key.

Used by every chapter that trains (Standard) and by the Strength in Numbers chapter (Adversarial).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import attacks
from ..checks import check_number

ATTACK_NAMES = ("fgsm", "ifgsm", "pgd", "mifgsm", "di2fgsm", "sgm")  # the attacks taking (model, x, y)


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

    `attack(model, x, y) -> x_adv` must leave the parameters' gradients alone and restore the
    model's mode (the library's attacks do). If it accepts a `seed` keyword, each batch gets a
    fresh seed drawn from torch's global generator, so random starts differ between batches yet a
    seeded (or resumed) run repeats exactly. The clean and adversarial batches go through the
    model in one forward pass, so batch-norm statistics see both, as in Madry-style training.
    """

    def __init__(self, attack: Callable, rho: float = 1.0, attack_spec: dict | None = None):
        if not callable(attack):
            raise ValueError(f"attack must be a callable attack(model, x, y) -> x_adv, got {attack!r}")
        check_number(rho, "rho", minimum=0)
        self.attack = attack
        self.rho = float(rho)
        self.attack_spec = attack_spec if attack_spec is not None else getattr(attack, "spec", None)
        if isinstance(attack, SpecAttack):
            self._takes_seed = attack.takes_seed
        else:
            try:
                self._takes_seed = "seed" in inspect.signature(attack).parameters
            except (TypeError, ValueError):
                self._takes_seed = False

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._takes_seed:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            x_adv = self.attack(model, x, y, seed=seed)
        else:
            x_adv = self.attack(model, x, y)
        scores = model(torch.cat([x, x_adv.detach()]))
        clean, adv = scores[: len(x)], scores[len(x):]
        loss_clean, loss_adv = classification_loss(model, clean, y), classification_loss(model, adv, y)
        loss = (loss_clean + self.rho * loss_adv) / (1.0 + self.rho)  # SiN Eq. 3 (Eq. 4 for an Ensemble)
        return loss, clean

    def spec(self) -> dict:
        attack = self.attack.full_spec() if isinstance(self.attack, SpecAttack) else self.attack_spec
        if attack is None:
            attack = {"name": getattr(self.attack, "__name__", repr(self.attack))}
        return {"name": "adversarial", "rho": self.rho, "attack": attack}

    def __repr__(self) -> str:
        return f"Adversarial(attack={self.spec()['attack']}, rho={self.rho})"


class SpecAttack:
    """A library attack with its keyword arguments bound, built from a JSON-able spec.

    Calling it runs `attack(model, x, y, **kwargs)`; `seed`, where the attack takes one and the
    spec does not fix it, is passed through per call (Adversarial draws one per batch).
    """

    def __init__(self, spec: dict):
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"attack spec must be a dict with a 'name' (one of {', '.join(ATTACK_NAMES)}), "
                             f"got {spec!r}")
        name = spec["name"]
        if name not in ATTACK_NAMES:
            raise ValueError(f"attack name {name!r} is not supported: use one of {', '.join(ATTACK_NAMES)}")
        self.function = getattr(attacks, name)
        self.kwargs = {k: v for k, v in spec.items() if k != "name"}
        self.spec = dict(spec)
        self.__name__ = name
        parameters = inspect.signature(self.function).parameters
        accepted = [p for p, info in parameters.items() if info.kind == info.KEYWORD_ONLY]
        unknown = sorted(set(self.kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"attack {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"it accepts {', '.join(accepted)}")
        missing = [p for p in accepted if parameters[p].default is inspect.Parameter.empty and p not in self.kwargs]
        if missing:
            raise ValueError(f"attack {name!r}: missing parameter(s) {', '.join(missing)}")
        self.takes_seed = "seed" in accepted and "seed" not in self.kwargs
        self._defaults = {p: parameters[p].default for p in accepted
                          if p != "seed" and parameters[p].default is not inspect.Parameter.empty}

    def full_spec(self) -> dict:
        """The spec with the attack's JSON-able defaults filled in: a changed default changes a cache key."""
        defaults = {k: v for k, v in self._defaults.items() if v is None or isinstance(v, (bool, int, float, str))}
        return {**defaults, **self.spec}

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        extra = {"seed": seed} if self.takes_seed and seed is not None else {}
        return self.function(model, x, y, **self.kwargs, **extra)

    def __repr__(self) -> str:
        return f"SpecAttack({self.spec})"
