"""Defensive Quantization's Lipschitz regulariser (Lin, Gan and Han 2019, cited by the SQ paper's
Table 4): cross-entropy plus beta / 2 times, for every weight layer, the squared Frobenius distance
of its Gram matrix from the identity, which keeps each layer close to orthogonal and so its
Lipschitz constant near 1; trained on a quantised network (the registry's weight_bits and
activation_bits), so that quantisation does not amplify adversarial noise:

    loss = L_class + beta / 2 * sum_l || W_l W_l^T - I ||_F^2

W_l is the layer's weight as a matrix (output channels x inputs: a convolution's kernel flattened),
and its Gram matrix is taken on the smaller side. Used by the SQ ensembles chapter's DQ baseline.
"""

from __future__ import annotations

import torch
from torch import nn

from ..fields import NonNegative, check_value
from ..specs import DQSpec
from .strategies import classification_loss


def orthogonality_penalty(weight: torch.Tensor) -> torch.Tensor:
    """|| W W^T - I ||_F^2 of a weight as an (out, in) matrix, on the smaller of its two Gram matrices."""
    matrix = weight.flatten(1)
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return (gram - torch.eye(len(gram), device=gram.device, dtype=gram.dtype)).pow(2).sum()


class DefensiveQuantization:
    """Cross-entropy plus DQ's orthogonality term over every Conv2d and Linear weight of the model."""

    def __init__(self, beta: float = 3e-4):
        self.beta = check_value(NonNegative, beta, "beta")

    @classmethod
    def from_spec(cls, spec: DQSpec) -> "DefensiveQuantization":
        return cls(spec.beta)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = model(x)
        weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        penalty = torch.stack([orthogonality_penalty(w) for w in weights]).sum()
        return classification_loss(model, scores, y) + self.beta / 2 * penalty, scores

    def spec(self) -> dict:
        return {"name": "dq", "beta": self.beta}

    def __repr__(self) -> str:
        return f"DefensiveQuantization(beta={self.beta!r})"
