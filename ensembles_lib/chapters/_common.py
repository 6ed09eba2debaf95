"""Parameters that several chapters declare alike (not a chapter: nothing here is registered).

`suite_params(cpu=..., smoke=...)`: the white-box suite's sizes (`evaluation.strong`), as the
DVERGE and Strength in Numbers chapters declare them: APGD iterations, targeted-APGD target
classes and Square queries; gpu and paper take AutoAttack's published 100, 9 and 5000.
`ATTACK_TOL`: the tolerance of both chapters' attack-strength checks.
"""

from __future__ import annotations

from ..profiles import Param

# Declared before the runs: the attack-strength check (evaluation.attack_check) flags a model when
# Square beats the gradient attacks, or the convergence curve's last two points, or its longest run
# and the suite's worst case, differ by more than this (accuracy units: two points)
ATTACK_TOL = 0.02

AUTOATTACK_SIZES = (100, 9, 5000)  # APGD iterations, APGD-T targets (CIFAR-10), Square queries


def suite_params(cpu: tuple[int, int, int], smoke: tuple[int, int, int]) -> tuple[Param, Param, Param]:
    """Params suite_steps, suite_targets, square_queries, each (steps, targets, queries) tuple giving
    one profile's values (cpu and smoke; gpu and paper: AUTOATTACK_SIZES)."""
    values = {"smoke": smoke, "cpu": cpu, "gpu": AUTOATTACK_SIZES, "paper": AUTOATTACK_SIZES}
    pick = [{profile: sizes[i] for profile, sizes in values.items()} for i in range(3)]
    return (Param("suite_steps", "int", pick[0], "iterations of APGD-CE, APGD-DLR and APGD-T in the white-box suite "
                  "(AutoAttack: 100)", minimum=1, maximum=1000),
            Param("suite_targets", "int", pick[1], "target classes of targeted APGD in the white-box suite (AutoAttack: "
                  "9 on CIFAR-10)", minimum=1, maximum=99),
            Param("square_queries", "int", pick[2], "queries an image of the gradient-free Square attack (AutoAttack: "
                  "5000)", minimum=1, maximum=100000))
