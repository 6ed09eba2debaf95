"""Per-sample attack losses on logits: cross-entropy and the Carlini-Wagner margin.

Every attack maximises one of these; both return one value a sample (shape (N,)) so that the
input gradient of their sum is the per-sample gradient, independent of the batch size.
Used by every attack chapter (TREND, DVERGE, SQ, SiN, CLM).
"""

from typing import Annotated, Callable, Literal, Union

import torch
import torch.nn.functional as F
from pydantic import Field

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample, -log softmax(z)_y, shape (N,)."""
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin max_{j != y} z_j - z_y of each sample, shape (N,).

    Positive exactly when the sample is misclassified, so maximising it is untargeted.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    # Push the true class to -inf so the max runs over the other classes only.
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true


LOSSES = {"ce": cross_entropy, "cw": cw_margin}
LossName = Literal[tuple(LOSSES)]  # what a JSON attack spec may name
# what an attack's `loss` keyword accepts: a name, or any per-sample loss function
Loss = Union[LossName, Annotated[LossFn, Field(description="logits, y -> per-sample loss of shape (N,)")]]


def get_loss(loss: Union[str, LossFn]) -> LossFn:
    """The loss named `loss` ("ce" or "cw"), or `loss` itself when it is a callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable (logits, y) -> (N,), got {loss!r}")
    return LOSSES[loss]
