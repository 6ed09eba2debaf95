"""Counter-linked models (CLM, paper 004, Sec. 2): a population of submodels trained side by side,
whose first-layer weights a periodic similarity examination (PRSE) keeps apart.

Every submodel's first weight layer (the first Conv2d or Linear; LeNet-5's 6 5x5 filters) has the
same fixed random half of its weights marked "counter-linked" by a link tensor (the paper's masks,
Fig. 3). Every `period` optimiser steps, each submodel m_i is compared with another one m_j drawn
at random, and each of its counter-linked weights within `delta` of m_j's pushes away by alpha,
negatively for odd-numbered submodels and positively for even ones:

    beta = 1[|W_i - W_j| < delta]                                                   (Eq. 4)
    W_i <- W_i + (-1)^i alpha * beta * link                                         (Eq. 5)

(submodels numbered from 1, as the paper's m_1 ... m_n). The paper trains each submodel for an
epoch in turn; we train them on the same batches with one summed loss, which gives each submodel
the gradient of its own loss (they share no parameter), and run PRSE from `fit`'s after-step hook.
With an attack (CLM-Adv) each submodel trains on adversarial examples made against itself.
Used by the counter-linked chapter.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ensembles import members_of
from ..fields import Count, Positive, Seed, check_value
from ..specs import CounterLinkedSpec
from .strategies import Adversarial, classification_loss


def link_mask(shape: tuple[int, ...] | torch.Size, seed: int) -> torch.Tensor:
    """The link tensor (CLM Fig. 3): bool, True for a counter-linked weight, each weight marked with
    probability 1/2 from a generator seeded by `seed`; the same for every submodel of a population."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.rand(tuple(shape), generator=generator) < 0.5


def first_weight(model: nn.Module) -> nn.Parameter:
    """The weight of `model`'s first Conv2d or Linear layer in module order (CLM links layer 1)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            return module.weight
    raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to counter-link")


def prse(w_i: torch.Tensor, w_j: torch.Tensor, link: torch.Tensor, *, alpha: float, delta: float,
         number: int) -> torch.Tensor:
    """Submodel `number`'s (1-based) new first-layer weight after one similarity examination against
    submodel j's weight w_j (Eq. 4-5): every linked weight closer than `delta` to w_j's moves by
    alpha, down for odd `number`, up for even. Returns a new tensor; the others are unchanged."""
    if w_i.shape != w_j.shape or w_i.shape != link.shape:
        raise ValueError(f"w_i, w_j and link must have one shape, got {tuple(w_i.shape)}, {tuple(w_j.shape)}, "
                         f"{tuple(link.shape)}")
    beta = (w_i - w_j).abs() < delta  # Eq. 4
    return w_i + (-1) ** number * alpha * (beta & link.to(w_i.device)).to(w_i.dtype)  # Eq. 5


class CounterLinked:
    """Each submodel of an Ensemble population on its own loss, with PRSE every `period` steps.

    loss: sum over submodels of their cross-entropy on the batch (attack None), or on adversarial
    examples made against each submodel alone (`Adversarial(attack, clean=False)` per submodel).
    after_step(model, step): called by `fit` after every optimiser step; on steps that are multiples
    of `period` it runs `prse` for every submodel against one other drawn uniformly, from a generator
    seeded by (seed, step), so a resumed run repeats the same draws.
    """

    def __init__(self, alpha: float, delta: float, period: int = 10, attack=None, seed: int = 0):
        self.alpha = check_value(Positive, alpha, "alpha")
        self.delta = check_value(Positive, delta, "delta")
        self.period = check_value(Count, period, "period")
        self.seed = check_value(Seed, seed, "seed")
        self.adversarial = None if attack is None else Adversarial(attack, clean=False)
        self._links: dict[tuple[int, ...], torch.Tensor] = {}

    @classmethod
    def from_spec(cls, spec: CounterLinkedSpec) -> "CounterLinked":
        return cls(spec.alpha, spec.delta, spec.period, spec.attack, spec.seed)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        members = members_of(model, "counter-linked training")
        losses, logits = [], []
        for member in members:
            if self.adversarial is None:
                out = member(x)
                losses.append(classification_loss(member, out, y))
            else:
                loss, out = self.adversarial.loss(member, x, y)
                losses.append(loss)
            logits.append(out.detach())
        # each submodel's gradient is that of its own loss; the running accuracy is the population's mean logits
        return torch.stack(losses).sum(), torch.stack(logits).mean(0)

    def link(self, weight: torch.Tensor) -> torch.Tensor:
        """The population's link tensor for a first-layer weight of this shape."""
        shape = tuple(weight.shape)
        if shape not in self._links:
            self._links[shape] = link_mask(shape, self.seed).to(weight.device)
        return self._links[shape]

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if step % self.period:
            return
        members = members_of(model, "counter-linked training")
        weights = [first_weight(m) for m in members]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        before = [w.detach().clone() for w in weights]  # every examination compares with the weights before it
        for i, weight in enumerate(weights):
            j = int(torch.randint(len(members) - 1, (1,), generator=generator))
            j += j >= i  # uniform over the other submodels
            weight.copy_(prse(before[i], before[j], self.link(weight), alpha=self.alpha, delta=self.delta,
                              number=i + 1))

    def spec(self) -> dict:
        attack = None if self.adversarial is None else self.adversarial.spec()["attack"]
        return {"name": "counter_linked", "alpha": self.alpha, "delta": self.delta, "period": self.period,
                "attack": attack, "seed": self.seed}

    def __repr__(self) -> str:
        return "CounterLinked(" + ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "name") + ")"
