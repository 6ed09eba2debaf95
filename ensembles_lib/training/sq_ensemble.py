"""Training an SQ ensemble (paper 002, Eq. 3 and 7): fine-tune a network built with stochastic
quantisation (`models.stochastic_quantize`) on its members' classification loss, plus beta times
the mutual information between the quantised input and the quantised features, plus mu times the
features' bin spacing:

    loss = L_class + beta I(X~; T~) + mu (b_1^T - b_0^T)                                  (Eq. 7)

L_class is each member's cross-entropy averaged over the `samples` members the model draws per
image (the paper averages every term over the samples x~); I(X~; T~) is `sq_information`'s per
image MI, averaged over the batch; b_1^T - b_0^T is the feature SQ's bin spacing averaged over
members and images. Minimising I maximises the members' diversity H(T~ | X~) for a given H(T~).
beta = mu = 0 is the paper's "SQ @ Input" baseline's loss (it has no feature SQ to regularise).
Used by the SQ ensembles chapter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import ArgumentError, NonNegative, check_value
from ..models.stochastic_quantize import sq_controller, sq_information
from ..specs import SQSpec


class SQTraining:
    """Eq. 7 on a model built with the `sq` option: beta weighs the MI term, mu the bin spacing."""

    def __init__(self, beta: float = 0.0, mu: float = 0.0):
        self.beta = check_value(NonNegative, beta, "beta")
        self.mu = check_value(NonNegative, mu, "mu")

    @classmethod
    def from_spec(cls, spec: SQSpec) -> "SQTraining":
        return cls(spec.beta, spec.mu)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        controller = sq_controller(model)
        regularised = self.beta > 0 or self.mu > 0
        if regularised and controller.features is None:
            raise ArgumentError(f"beta={self.beta} and mu={self.mu} regularise the feature SQ: build the model with "
                                "sq at='input+features', or set both to 0")
        with controller.recording():
            scores = model(x)
            logits = controller.member_logits  # (samples, N, C)
            loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(logits)))  # mean over members and images
            if regularised:
                features = controller.features
                probs = features.last_probs
                mi = sq_information(probs.view(len(logits), len(x), *probs.shape[1:]))["mi"].mean()  # Eq. 4-6
                loss = loss + self.beta * mi + self.mu * features.last_spacing.mean()  # Eq. 7
        return loss, scores.detach()

    def spec(self) -> dict:
        return {"name": "sq", "beta": self.beta, "mu": self.mu}

    def __repr__(self) -> str:
        return f"SQTraining(beta={self.beta!r}, mu={self.mu!r})"
