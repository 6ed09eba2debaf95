"""Measuring stochastically quantised (SQ) networks (the SQ ensembles chapter): attacks and the
information terms run over batches (an SQ forward holds `samples` copies of every image and their bin
probabilities, so a whole test set at once does not fit), and the MI-threshold attack detector.

All images in [0, 1]; information in nats, per image.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from ..checks import check_inputs, check_int
from ..models.stochastic_quantize import recorded_information


def attacked(attack: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """attack(model, x, y) -> x_adv on batches of `batch_size` images, concatenated. Each batch is
    attacked with the attack's own seed, so one image's result does not depend on the batch size
    only where the attack draws per image; the chapter keeps one batch size."""
    check_inputs(x, y)
    batch_size = check_int(batch_size, "batch_size")
    return torch.cat([attack(model, x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def information(model: nn.Module, x: torch.Tensor, batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Per image, I(X~; T~), H(T~) and H(T~ | X~) of an SQ network (`sq_information`, SQ Eq. 4-6),
    from one forward of its members on batches: {"mi", "h_t", "h_t_given_x"}, each (N,) in nats."""
    batch_size = check_int(batch_size, "batch_size")
    parts = [recorded_information(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return {key: torch.cat([p[key] for p in parts]) for key in ("mi", "h_t", "h_t_given_x")}


def detector_roc(clean: torch.Tensor | np.ndarray, attacked_scores: torch.Tensor | np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC of a detector that flags an image as attacked when its score exceeds a threshold (SQ
    Fig. 7: the score is the image's MI minus the mean clean MI, so the threshold sweep is the same on
    either): false- and true-positive rates over every threshold, and the area under the curve (0.5:
    no better than chance; below 0.5: attacks lower the score)."""
    clean, attacked_scores = (np.asarray(torch.as_tensor(s).detach().cpu(), dtype=float).ravel()
                              for s in (clean, attacked_scores))
    if clean.size == 0 or attacked_scores.size == 0:
        raise ValueError("clean and attacked_scores must each hold at least one image's score")
    truth = np.r_[np.zeros(clean.size), np.ones(attacked_scores.size)]
    scores = np.r_[clean, attacked_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    return fpr, tpr, float(roc_auc_score(truth, scores))
