"""Adversarial attacks: functions `attack(model, x, y, *, eps, ...) -> x_adv`.

Images are float NCHW in [0, 1]; eps and step are L-inf budgets in pixel units (8/255, ...).
Every attack runs the model in eval mode and restores its mode, never writes a parameter's
.grad, and is deterministic under `seed`; bad arguments raise ValueError before any work.
Attacks on an ensemble's members (TREND's rules) take the list of members.
"""

from .adapters import autoattack, build_autoattack, square
from .distill import distill, feature_distance
from .ensemble_rules import RULES, ensemble_direction, ensemble_pgd
from .fgsm import fgsm, ifgsm
from .gradient import attack_mode, gradient, project
from .losses import LOSSES, cross_entropy, cw_margin, get_loss
from .members import MEMBER_RULES, member_losses, member_pgd
from .momentum import di2fgsm, input_diversity, mifgsm
from .pgd import STEP_RULES, pgd
from .sgm import residual_blocks, sgm, skip_gradient

__all__ = [
    "LOSSES", "RULES", "STEP_RULES", "attack_mode", "autoattack", "build_autoattack", "cross_entropy",
    "cw_margin", "di2fgsm", "ensemble_direction", "ensemble_pgd", "fgsm", "get_loss", "gradient", "ifgsm",
    "input_diversity", "mifgsm", "pgd", "project", "residual_blocks", "sgm", "skip_gradient", "square",
    "distill", "feature_distance",
    "MEMBER_RULES", "member_losses", "member_pgd",
]
