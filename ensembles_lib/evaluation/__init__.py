"""Evaluation: clean accuracy, all-or-nothing robust accuracy, transfer matrices.

Every function takes any `nn.Module` returning (N, C) scores and tensors x (float NCHW in [0, 1])
and y (int64); attacks are callables `attack(model, x, y) -> x_adv` with their budgets bound.
"""

from .accuracy import accuracy, correct, predict
from .robustness import robust_accuracy
from .transfer import transfer_matrix

__all__ = ["accuracy", "correct", "predict", "robust_accuracy", "transfer_matrix"]
