"""Evaluation: clean accuracy, all-or-nothing robust accuracy, transfer matrices.

Every function takes any `nn.Module` returning (N, C) scores and tensors x (float NCHW in [0, 1])
and y (int64); attacks are callables `attack(model, x, y) -> x_adv` with their budgets bound.
"""

from .accuracy import accuracy, correct, predict
from .blackbox import adversarial_versions, all_or_nothing, blackbox_accuracy, supports_sgm, transfer_attacks
from .diversity import diversity_matrix, ensemble_diversity, off_diagonal_mean, within_transferability
from .robustness import accuracy_by_steps, robust_accuracy
from .transfer import transfer_matrix

__all__ = ["accuracy", "accuracy_by_steps", "adversarial_versions", "all_or_nothing", "blackbox_accuracy", "correct", "diversity_matrix",
           "ensemble_diversity", "off_diagonal_mean", "predict", "robust_accuracy", "supports_sgm", "transfer_attacks", "transfer_matrix",
           "within_transferability"]
