"""Evaluation: clean accuracy, all-or-nothing robust accuracy, the strong white-box suite (per-image
worst case over PGD, APGD-CE/DLR, APGD-T and Square), transfer matrices, decision grids.

Every function takes any `nn.Module` returning (N, C) scores and tensors x (float NCHW in [0, 1])
and y (int64); attacks are callables `attack(model, x, y) -> x_adv` with their budgets bound.
Nothing here reads the cache: what needs both (the black-box protocol) is `ensembles_lib.blackbox`.
"""

from .accuracy import accuracy, correct, correct_by_all, expected_correct, predict
from .blackbox import all_or_nothing, has_residual_members, transfer_attacks
from .diversity import diversity_matrix, ensemble_diversity, member_table, off_diagonal_mean, within_transferability
from .regions import DecisionGrid, decision_grid
from .robustness import accuracy_by_steps, correct_by_steps, robust_accuracy
from .strong import (DEFAULT_SUITE, SUITE_NAMES, Suite, SuiteAttack, attack_check, converged, cumulative_accuracy,
                     gradient_worst, steps_convergence, strong_accuracy, strong_correct, suite)
from .transfer import named_models, transfer_matrix

__all__ = ["DEFAULT_SUITE", "DecisionGrid", "SUITE_NAMES", "Suite", "SuiteAttack", "accuracy", "accuracy_by_steps",
           "attack_check", "correct_by_all", "cumulative_accuracy", "expected_correct", "gradient_worst",
           "all_or_nothing", "converged", "correct", "correct_by_steps", "decision_grid", "diversity_matrix",
           "ensemble_diversity", "has_residual_members", "member_table", "named_models", "off_diagonal_mean",
           "predict", "robust_accuracy", "steps_convergence", "strong_accuracy", "strong_correct", "suite",
           "transfer_attacks", "transfer_matrix", "within_transferability"]
