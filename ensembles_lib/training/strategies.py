"""Training objectives as small strategy objects: `loss(model, x, y) -> (loss, scores)`.

`fit` calls a strategy once per batch; the strategy owns everything that differs between the
papers' objectives (which inputs, which loss), the loop owns the rest. `scores` are the (N, C)
outputs on the clean batch (on x_adv for adversarial training without a clean term), used only
for the running training accuracy. `spec()` is the strategy as a JSON-able dict, part of a
trained model's cache key.

Used by every chapter that trains (Standard), by the Strength in Numbers chapter (Adversarial)
and by the DVERGE chapter's AdvT baseline (Adversarial with clean=False, objective="members").
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
from ..ensembles import Ensemble
from ..fields import ArgumentError, NonNegative, check_value
from ..specs import ADVERSARIAL_OBJECTIVES, AdversarialSpec, StandardSpec, check_adversarial_options


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

    clean=False drops the clean term: loss = L(y, m(x_adv)) (rho must stay at its default), and
    the returned scores, hence fit's train_acc, are those on x_adv (the only batch forwarded).
    objective="members" (an Ensemble only) replaces L(y, m(.)), the loss of the ensemble's
    output, by sum_i L(y, m_i(.)), each member's own cross-entropy on the same batches, x_adv
    still generated against the whole ensemble. With clean=False this is the AdvT baseline of
    the DVERGE chapter as DVERGE's authors train it (each member on its own loss on the
    ensemble's PGD examples; one summed loss gives each member the gradient of its own).

    attack: an attack spec (a dict such as {"name": "ifgsm", "eps": 0.3, "steps": 3}, validated by
        `attacks.specs.attack_spec`), or any callable attack(model, x, y) -> x_adv that leaves the
        parameters' gradients alone and restores the model's mode (the library's attacks do).
    A spec without its own seed, or a callable with a `seed` keyword, gets a fresh seed per batch
    drawn from torch's global generator, so random starts differ between batches yet a seeded (or
    resumed) run repeats exactly. The clean and adversarial batches go through the model in one
    forward pass, so batch-norm statistics see both, as in Madry-style training; separate_passes=True
    forwards them one after the other, each normalised by its own batch statistics, as SiN's Fig. 1
    describes ("two parameter-sharing copies of the network", one on clean and one on adversarial
    input).
    """

    def __init__(self, attack, rho: float = 1.0, clean: bool = True, objective: str = "ensemble",
                 separate_passes: bool = False):
        self.rho = check_value(NonNegative, rho, "rho")
        self.clean = check_value(bool, clean, "clean")
        self.separate_passes = check_value(bool, separate_passes, "separate_passes")
        if objective not in ADVERSARIAL_OBJECTIVES:
            raise ArgumentError(f"objective must be one of {', '.join(map(repr, ADVERSARIAL_OBJECTIVES))}, "
                                f"got {objective!r}")
        self.objective = objective
        try:
            check_adversarial_options(self.rho, self.clean)
        except ValueError as err:
            raise ArgumentError(str(err)) from None
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
        return cls(spec.attack, rho=spec.rho, clean=spec.clean, objective=spec.objective,
                   separate_passes=spec.separate_passes)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.objective == "members" and not isinstance(model, Ensemble):
            raise ArgumentError(f"objective='members' sums each member's own loss: model must be an Ensemble "
                                f"(with .members), got {type(model).__name__}; use objective='ensemble'")
        if self._takes_seed:
            x_adv = self.run(model, x, y, seed=int(torch.randint(0, 2**31 - 1, (1,)).item()))
        else:
            x_adv = self.run(model, x, y)
        # one forward pass over both batches, so batch-norm statistics see both (or one a batch)
        batches = [x, x_adv.detach()] if self.clean else [x_adv.detach()]
        passes = batches if self.separate_passes else [torch.cat(batches)]
        if self.objective == "members":
            logits = torch.cat([model.member_logits(b) for b in passes], dim=1)  # (M, N or 2N, C)
            losses = [self._combined(m, out, y, len(x)) for m, out in zip(model.members, logits)]
            loss = torch.stack(losses).sum()  # sum_i L(y, m_i(.)): member i's gradient is its own loss's
            scores = model.combine_logits(logits[:, : len(x)].detach())  # the ensemble's, for the accuracy
        else:
            scores = torch.cat([model(b) for b in passes])
            loss = self._combined(model, scores, y, len(x))  # SiN Eq. 3 (Eq. 4 for an Ensemble)
            scores = scores[: len(x)]
        # with clean=False these are the scores on x_adv: a clean pass only for the running
        # accuracy would cost a forward and, in train mode, move batch-norm statistics
        return loss, scores

    def _combined(self, model: nn.Module, scores: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        """(L(y, clean) + rho L(y, adv)) / (1 + rho) of `model`'s scores on [x, x_adv]
        (SiN Eq. 3), or L(y, adv) when the scores are of x_adv alone (clean=False)."""
        if not self.clean:
            return classification_loss(model, scores, y)
        loss_clean, loss_adv = classification_loss(model, scores[:n], y), classification_loss(model, scores[n:], y)
        return (loss_clean + self.rho * loss_adv) / (1.0 + self.rho)

    def spec(self) -> dict:
        """The strategy as its spec; clean and objective only where they differ from their
        defaults, so a default strategy's spec (a checkpoint's resume check) is as before."""
        attack = self.attack_spec.canonical() if self.attack_spec is not None else \
            {"name": getattr(self.run, "__name__", repr(self.run))}
        options = {k: v for k, v, default in (("clean", self.clean, True), ("objective", self.objective, "ensemble"),
                                              ("separate_passes", self.separate_passes, False)) if v != default}
        return {"name": "adversarial", "rho": self.rho, "attack": attack, **options}

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.spec().items()
                          if k in ("clean", "objective", "separate_passes"))
        return f"Adversarial(attack={self.spec()['attack']}, rho={self.rho}{options})"
