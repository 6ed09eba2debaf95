"""Diversity-promoting ensemble training: DVERGE (paper 001) and the two baselines it compares
with, ADP (Pang et al. 2019) and GAL (Kariyappa & Qureshi 2019), as training strategies.

Each strategy trains the members of an `Ensemble` jointly: `loss(model, x, y) -> (loss, scores)`
returns one scalar whose gradient, for every member's parameters, is that member's own
objective (the members' parameters are disjoint, so one optimiser over all of them takes each
member's step at once). `scores` are the ensemble's (N, C) outputs on the clean batch, used only
for fit's running training accuracy. `spec()` is the complete JSON-able strategy (defaults
filled in), part of a trained model's cache key; `strategy_from_spec(s.spec())` rebuilds it.

Hyper-parameters where DVERGE's Appendix A is silent or absent from our text of the paper come
from its authors' reference configuration (zjysteven/DVERGE, arguments.py): ADP alpha 2,
beta 0.5; GAL coefficient 0.5; the DVERGE+AdvT balance 1.0. Our implementations are written
from the papers' equations. Used by the DVERGE chapter.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import distill
from ..ensembles import members_of
from ..models import feature_layers
from ..specs import ADPSpec, DVERGESpec, GALSpec, validate

# ADP's numerical guards (Pang et al. 2019): added inside the log of the ensemble entropy, and to
# the diagonal of the Gram matrix so that its log-determinant stays finite when the members'
# non-maximal predictions are (nearly) linearly dependent.
ENTROPY_GUARD = 1e-20
DET_GUARD = 1e-6


def eval_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) in eval mode without gradients, the modes restored: clean-batch scores for the
    running accuracy that neither build a graph nor move batch-norm running statistics."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            return model(x)
    finally:
        for m, training in modes.items():
            m.training = training


# ----------------------------------------------------------------------------------------- DVERGE


class DVERGE:
    """DVERGE's round-robin diversity training (paper 001, Eq. 5 and Algorithm 1).

    For each batch (x, y): every image is paired with a source image (x_s, y_s), another image of
    the same batch drawn uniformly (a batch of one is its own source); every member f_j distils
    x'_j = x'_{f_j^l}(x, x_s) at this epoch's layer l (Eq. 1: `attacks.distill`, momentum PGD
    with `steps` steps of size `step` in the eps-ball of x_s); then

        loss = sum_i sum_{j != i} CE(f_i(x'_j), y_s)                                  (Eq. 5)

    each term a batch mean. Every member's parameters receive exactly the gradient of its own
    term sum_{j != i} CE(f_i(x'_j), y_s), and all distillations are made before any update, so
    one optimiser step over all members' (disjoint) parameters equals Algorithm 1's round robin
    of per-member SGD steps (lines 15-17). Member i's training forward runs on the concatenation
    of the others' distilled batches, so its batch-norm statistics are those of the M - 1
    batches together (Algorithm 1 does not say; one forward per member is the cheaper choice).

    layers: the tap names to draw from (each must be a tap of every member), or None for all of
        a member's `models.feature_layers`. `start_epoch(epoch)` (fit calls it) draws the
        epoch's layer, uniformly (Algorithm 1 line 7), from a generator seeded by (seed, epoch),
        so a resumed run draws the same layers. The draw is a fraction u in [0, 1) mapped to
        each member's list (index floor(u * len)), so members of different depths are distilled
        at the same relative depth; with one architecture all members share the layer.
    adv_attack: an attack spec ({"name": "pgd", "eps": 8/255, "steps": 10, "step": 2/255} as in
        the authors' configuration) for DVERGE+AdvT (Appendix C.4): member i also minimises
        rho * CE(f_i(x_adv_i), y), x_adv_i the attack on f_i alone at the clean batch, in the
        same forward as its distilled batches. rho balances the two objectives (1.0, the
        authors' default). Each batch draws the attack's seed from torch's global generator, as
        Adversarial does, so a seeded or resumed fit repeats exactly.
    mu: the distillation's momentum decay (1.0: MI-FGSM, the paper's ref. [29]); `step`
        defaults to eps / steps (the paper's eps / 10 at 10 steps).

    scores: the ensemble's output on the clean batch in eval mode (an extra, gradient-free
    forward; in train mode it would move the batch-norm statistics with batches DVERGE never
    trains on).
    """

    def __init__(self, eps: float, **params):
        self.config = validate(DVERGESpec, {"eps": eps, **params}, "DVERGE")
        self.eps, self.steps, self.step, self.mu = self.config.eps, self.config.steps, self.config.step, self.config.mu
        self.layers, self.seed, self.rho = self.config.layers, self.config.seed, self.config.rho
        self.attack = self.config.adv_attack
        self.epoch = 0

    @classmethod
    def from_spec(cls, spec: DVERGESpec) -> "DVERGE":
        return cls(**spec.model_dump(exclude={"name"}))

    # -- the epoch's layer (Algorithm 1, line 7)

    def start_epoch(self, epoch: int) -> None:
        """Select the distillation layer of `epoch` (0-based): a function of (seed, epoch) only."""
        self.epoch = epoch

    def layer_fraction(self, epoch: int | None = None) -> float:
        """The epoch's uniform draw u in [0, 1) that picks its layer."""
        epoch = self.epoch if epoch is None else epoch
        return float(np.random.default_rng([self.seed, epoch]).random())

    def layer_for(self, member: nn.Module, epoch: int | None = None) -> str:
        """The tap of `member` that the epoch (default: the current one) distils at."""
        names = self.layers if self.layers is not None else feature_layers(member)
        if not names:
            raise ValueError(f"{type(member).__name__} has no feature layers (models.Tap) to distil at")
        return names[int(self.layer_fraction(epoch) * len(names))]

    def _check(self, model: nn.Module) -> nn.ModuleList:
        members = members_of(model, "DVERGE")
        for index, member in enumerate(members):
            taps = feature_layers(member)
            if not taps:
                raise ValueError(f"members[{index}] ({type(member).__name__}) has no feature layers to distil at")
            unknown = [name for name in (self.layers or []) if name not in taps]
            if unknown:
                raise ValueError(f"layers {unknown} are not feature layers of members[{index}]: choose from {taps}")
        return members

    # -- the objective

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        members = self._check(model)
        n, m = len(x), len(members)
        # Algorithm 1 line 10: each image's source is a uniformly drawn other image of the batch.
        # Torch's global generator, which fit checkpoints, so a resumed run pairs the same images.
        if n > 1:
            source = (torch.arange(n) + torch.randint(1, n, (n,))) % n
        else:
            source = torch.zeros(1, dtype=torch.long)
        source = source.to(x.device)
        x_s, y_s = x[source], y[source]
        distilled = [distill(member, x, x_s, layer=self.layer_for(member), eps=self.eps, steps=self.steps,
                             step=self.step, mu=self.mu) for member in members]  # Eq. 1, Algorithm 1 line 13
        adversarial = None
        if self.attack is not None:
            seed = int(torch.randint(0, 2**31 - 1 - m, (1,)).item())  # used when the spec fixes no seed
            adversarial = [self.attack.run(member, x, y, seed=seed + i)
                           for i, member in enumerate(members)]
        total = x.new_zeros(())
        for i, member in enumerate(members):
            inputs = [distilled[j] for j in range(m) if j != i]
            targets = [y_s] * (m - 1)
            if adversarial is not None:
                inputs.append(adversarial[i])
                targets.append(y)
            ce = F.cross_entropy(member(torch.cat(inputs)), torch.cat(targets), reduction="none")
            member_loss = ce[: (m - 1) * n].view(m - 1, n).mean(1).sum()  # Eq. 5: sum_{j != i} L_{f_i}(x'_j, y_s)
            if adversarial is not None:
                member_loss = member_loss + self.rho * ce[(m - 1) * n:].mean()  # + AdvT (Appendix C.4)
            total = total + member_loss
        return total, eval_scores(model, x)

    def spec(self) -> dict:
        return self.config.canonical()

    def __repr__(self) -> str:
        extra = f", adv_attack={self.attack.canonical()}, rho={self.rho}" if self.attack is not None else ""
        return (f"DVERGE(eps={self.eps:.4g}, steps={self.steps}, step={self.step:.4g}, mu={self.mu}, "
                f"layers={self.layers}, seed={self.seed}{extra})")


# -------------------------------------------------------------------------------------------- ADP


def ensemble_entropy(probs: torch.Tensor) -> torch.Tensor:
    """H(mean_k p_k) per sample, for members' probabilities `probs` (M, N, C): shape (N,)."""
    mean = probs.mean(0)
    return -(mean * torch.log(mean + ENTROPY_GUARD)).sum(-1)


def ensemble_log_det(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ADP's log ensemble diversity, log det(M~^T M~ + DET_GUARD I), per sample: shape (N,).

    Column k of M~ is member k's non-maximal prediction: its probability vector with the true
    class y removed, scaled to unit L2 norm (Pang et al. 2019, Sec. 3.2). The determinant is the
    squared volume spanned by the members' non-maximal predictions: largest when they are
    mutually orthogonal.
    """
    m, n, c = probs.shape
    keep = torch.ones(n, c, dtype=torch.bool, device=probs.device)
    keep[torch.arange(n, device=probs.device), y] = False
    non_max = probs.transpose(0, 1)[keep.unsqueeze(1).expand(n, m, c)].view(n, m, c - 1)
    non_max = F.normalize(non_max, dim=-1)
    gram = non_max @ non_max.transpose(1, 2) + DET_GUARD * torch.eye(m, device=probs.device, dtype=probs.dtype)
    return torch.logdet(gram)


class ADP:
    """Adaptive Diversity Promoting training (Pang et al. 2019): for members' probabilities p_k,

        loss = sum_k CE(p_k, y) - alpha * H(mean_k p_k) - beta * log det(M~^T M~)

    each term a batch mean: the members' cross-entropies, the ensemble entropy (ensemble_entropy)
    and the log ensemble diversity of the non-maximal predictions (ensemble_log_det), with the
    numerical guards ENTROPY_GUARD and DET_GUARD. alpha = 2, beta = 0.5 as in DVERGE's comparison.
    scores: the ensemble's combination (its `combine` rule) of the same clean forward.
    """

    def __init__(self, **params):
        self.config = validate(ADPSpec, params, "ADP")
        self.alpha, self.beta = self.config.alpha, self.config.beta

    @classmethod
    def from_spec(cls, spec: ADPSpec) -> "ADP":
        return cls(**spec.model_dump(exclude={"name"}))

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        members_of(model, "ADP")
        logits = model.member_logits(x)
        ce = sum(F.cross_entropy(member, y) for member in logits)
        probs = torch.softmax(logits, dim=-1)
        loss = ce - self.alpha * ensemble_entropy(probs).mean() - self.beta * ensemble_log_det(probs, y).mean()
        return loss, model.combine_logits(logits.detach())

    def spec(self) -> dict:
        return self.config.canonical()

    def __repr__(self) -> str:
        return f"ADP(alpha={self.alpha}, beta={self.beta})"


# -------------------------------------------------------------------------------------------- GAL


def gradient_alignment(gradients: list[torch.Tensor]) -> torch.Tensor:
    """GAL's coherence penalty per sample: log sum_{a < b} exp(cos(g_a, g_b)), shape (N,).

    gradients: one (N, ...) input gradient per member. The log-sum-exp is a smooth maximum of
    the pairwise cosine similarities; it reaches 1 + log(M (M - 1) / 2) when all gradients are
    aligned. Needs at least two members.
    """
    if len(gradients) < 2:
        raise ValueError(f"gradients must hold at least 2 members' gradients, got {len(gradients)}")
    flat = [g.flatten(1) for g in gradients]
    cosines = [F.cosine_similarity(flat[a], flat[b], dim=1)
               for a in range(len(flat)) for b in range(a + 1, len(flat))]
    return torch.logsumexp(torch.stack(cosines, dim=1), dim=1)


class GAL:
    """Gradient Alignment Loss training (Kariyappa & Qureshi 2019): for members' cross-entropies
    CE_k and their input gradients g_k = d CE_k / dx (per sample),

        loss = sum_k CE_k + coefficient * log sum_{a < b} exp(cos(g_a, g_b))

    the penalty averaged over the batch (gradient_alignment). The gradients are taken with
    create_graph=True, so training differentiates through them (double backpropagation).
    coefficient 0.5: the authors' DVERGE configuration. DVERGE's appendix notes that GAL needed
    leaky ReLUs in place of ReLUs to avoid vanishing gradients; that is an architecture choice,
    made where the members are built. scores: the ensemble's combination of the clean forward.
    """

    # oneDNN's second-order convolution kernels ran about 2x slower channels-last (models.layout)
    channels_last = False

    def __init__(self, **params):
        self.config = validate(GALSpec, params, "GAL")
        self.coefficient = self.config.coefficient

    @classmethod
    def from_spec(cls, spec: GALSpec) -> "GAL":
        return cls(**spec.model_dump(exclude={"name"}))

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        members_of(model, "GAL")
        x = x.detach().requires_grad_(True)
        logits = model.member_logits(x)
        # summed over the batch, so that sample n's input gradient is that of its own loss
        ce = [F.cross_entropy(member, y, reduction="sum") for member in logits]
        gradients = [torch.autograd.grad(c, x, create_graph=True)[0] for c in ce]
        penalty = gradient_alignment(gradients).mean()
        loss = sum(c / len(x) for c in ce) + self.coefficient * penalty
        return loss, model.combine_logits(logits.detach())

    def spec(self) -> dict:
        return self.config.canonical()

    def __repr__(self) -> str:
        return f"GAL(coefficient={self.coefficient})"
