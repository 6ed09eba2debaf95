"""Ensemble: an nn.Module over member models with a combine rule (DESIGN.md).

Every rule returns (N, C) scores whose argmax is the ensemble's prediction, so attacks and
metrics treat an ensemble like any model. Used by every chapter: DVERGE averages
probabilities ("prob"), Strength in Numbers ensembles logits ("logit"), TREND votes ("vote"),
CLM answers each query with a random member ("random" per forward call, "dispatch" per image).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

COMBINES = ("prob", "logit", "vote", "random", "dispatch")


def members_of(model: nn.Module, user: str) -> nn.ModuleList:
    """The members of `model`, which must be an Ensemble of at least two; else a ValueError naming
    `user` (the strategy or metric that compares members: DVERGE, ADP, GAL, diversity, ...)."""
    if not isinstance(model, Ensemble):
        raise ValueError(f"{user} compares the members of an ensemble: model must be an Ensemble, "
                         f"got {type(model).__name__}")
    if len(model.members) < 2:
        raise ValueError(f"{user} compares members with each other: the Ensemble must have at least 2 members, "
                         f"got {len(model.members)}")
    return model.members


class Ensemble(nn.Module):
    """Members combined by one rule; input whatever the members take (images in [0, 1]).

    combine:
      "prob"   log of the mean of the members' softmax probabilities: log-probabilities, so
               cross-entropy (nll) on them is the loss of the averaged distribution.
      "logit"  mean of the members' logits.
      "vote"   vote shares: the fraction of members whose argmax is each class (rows sum to 1).
               When several classes tie for the most votes, one of them, drawn uniformly from
               the ensemble's generator, gets an extra 1e-3 / M (M members) so that argmax
               returns it: TREND's "one of the models is chosen at random" in case of conflict,
               as a uniform choice among the tied classes. The backward pass is the gradient of
               the mean logits (straight-through), as TREND's backpropagable ensemble does;
               the vote itself has no useful gradient.
      "random" the logits of one member drawn uniformly per forward call (one query), as CLM
               answers each query with a random sub-model; `last_member` records the draw.
      "dispatch" the logits of one member drawn uniformly per image: each image of a batch is its own
               query (CLM's dispatcher under a batched attack or evaluation); `last_members`
               records the (N,) draws. Its gradient is the drawn member's, so an attack's EOT
               (eot_samples) averages over the dispatch.

    Randomness ("vote" ties, "random", "dispatch") comes from the ensemble's own torch.Generator, seeded by
    `seed` (a fresh nondeterministic seed when None); `manual_seed` reseeds it. The global RNG
    is never touched.
    """

    def __init__(self, members: Iterable[nn.Module], combine: str = "prob", seed: int | None = None):
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        members = list(members)
        if not members:
            raise ValueError("members must hold at least one nn.Module, got none")
        for index, member in enumerate(members):
            if not isinstance(member, nn.Module):
                raise ValueError(f"members[{index}] must be an nn.Module, got {type(member).__name__}")
        self.members = nn.ModuleList(members)
        self.combine = combine
        self.generator = torch.Generator()
        self.manual_seed(seed)
        self.last_member: int | None = None
        self.last_members: torch.Tensor | None = None

    def manual_seed(self, seed: int | None) -> None:
        """Reseed the ensemble's generator (a nondeterministic seed when `seed` is None)."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(M, N, C): every member's logits for x."""
        outputs = [member(x) for member in self.members]
        shapes = {tuple(out.shape) for out in outputs}
        if len(shapes) != 1 or outputs[0].dim() != 2:
            raise ValueError(f"members must all return (N, C) logits of one shape, got {sorted(shapes)}")
        return torch.stack(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.combine == "random":
            self.last_member = int(torch.randint(len(self.members), (1,), generator=self.generator))
            return self.members[self.last_member](x)
        return self.combine_logits(self.member_logits(x))

    def _dispatch(self, logits: torch.Tensor) -> torch.Tensor:
        draws = torch.randint(len(logits), (logits.shape[1],), generator=self.generator).to(logits.device)
        self.last_members = draws
        return logits[draws, torch.arange(logits.shape[1], device=logits.device)]

    def combine_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The ensemble's (N, C) scores from its members' (M, N, C) logits by its combine rule, as
        forward would return them; for strategies that already hold every member's logits (ADP,
        GAL). "random" draws a member from the ensemble's generator, as one forward call does."""
        if self.combine == "random":
            self.last_member = int(torch.randint(len(logits), (1,), generator=self.generator))
            return logits[self.last_member]
        if self.combine == "dispatch":
            return self._dispatch(logits)
        if self.combine == "logit":
            return logits.mean(0)
        if self.combine == "prob":
            # log(mean_m softmax_m) computed stably as logsumexp of log-softmax minus log M.
            return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(len(logits))
        return self._vote(logits)

    def _vote(self, logits: torch.Tensor) -> torch.Tensor:
        members, n, classes = logits.shape
        votes = logits.detach().argmax(-1)  # (M, N)
        shares = torch.zeros(n, classes, dtype=logits.dtype, device=logits.device)
        shares.scatter_add_(1, votes.t(), torch.ones(n, members, dtype=logits.dtype, device=logits.device))
        shares /= members
        top = shares == shares.amax(1, keepdim=True)
        tied = top.sum(1) > 1
        if bool(tied.any()):
            keys = torch.rand(n, classes, generator=self.generator).to(logits.device)
            winner = torch.where(top, keys, -1.0).argmax(1)
            bonus = torch.zeros_like(shares)
            bonus[torch.arange(n, device=logits.device), winner] = 1e-3 / members
            shares = shares + bonus * tied.unsqueeze(1)
        mean_logits = logits.mean(0)
        return shares + (mean_logits - mean_logits.detach())  # straight-through
