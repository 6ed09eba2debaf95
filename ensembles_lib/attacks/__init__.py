"""Adversarial attacks: functions `attack(model, x, y, *, eps, ...) -> x_adv`.

Images are float NCHW in [0, 1]; eps and step are L-inf budgets in pixel units (8/255, ...).
Every attack goes through one contract (`contract.attack`): its keyword arguments are validated
against its signature, x and y are checked once at entry (finite images in [0, 1], int64 labels
in range), the model runs in eval mode with frozen parameters (restored afterwards; no
parameter's .grad is written), randomness is seeded by `seed`, and x_adv comes back detached,
contiguous NCHW. A bad argument raises `AttackArgumentError` (a ValueError) naming it, before any
work. Attacks on an ensemble's members (TREND's rules, SiN's member attacks) take the members as
a list, tuple or nn.ModuleList. `specs` holds the JSON attack specs that training and the
artifact store use.
"""

from .adapters import APGD_LOSSES, AUTOATTACK_VERSIONS, apgd, apgd_targeted, autoattack, build_autoattack, square
from .ascent import STEP_RULES, adam_ascent, projected_ascent, sign_ascent
from .contract import attack, check_images, check_inputs, member_list
from .distill import distill, feature_distance
from .ensemble_rules import RULES, ensemble_direction, ensemble_pgd
from .fgsm import fgsm, ifgsm
from .gradient import attack_mode, generator, gradient, project, uniform_start, working_layout
from .losses import LOSSES, cross_entropy, cw_margin, get_loss
from .members import MEMBER_RULES, member_losses, member_objective, member_pgd
from .momentum import di2fgsm, input_diversity, mifgsm
from .contract import AttackArgumentError
from .pgd import pgd
from .sgm import residual_blocks, sgm, skip_gradient
from .specs import ATTACK_NAMES, AttackSpec, attack_spec

__all__ = [
    "APGD_LOSSES", "ATTACK_NAMES", "AUTOATTACK_VERSIONS", "AttackArgumentError", "AttackSpec", "LOSSES",
    "MEMBER_RULES", "RULES", "STEP_RULES", "adam_ascent", "apgd", "apgd_targeted", "attack", "attack_mode",
    "attack_spec", "autoattack", "build_autoattack", "check_images", "check_inputs", "cross_entropy", "cw_margin",
    "di2fgsm", "distill", "ensemble_direction", "ensemble_pgd", "feature_distance", "fgsm", "generator", "get_loss",
    "gradient", "ifgsm", "input_diversity", "member_list", "member_losses", "member_objective", "member_pgd",
    "mifgsm", "pgd", "project", "projected_ascent", "residual_blocks", "sgm", "sign_ascent", "skip_gradient",
    "square", "uniform_start", "working_layout",
]
