"""Training: one loop (`fit`) and the papers' objectives as strategies (DESIGN.md, "One training loop").

`fit(model, train_loader, epochs=..., lr=..., strategy=Adversarial(attack, rho=1.0))` trains in
place with progress bars, per-epoch metrics and resumable checkpoints; `cache.trained(spec)`
wraps it so a chapter trains each model once.
"""

from .loop import TRAINING_VERSION, fit
from .optim import OPTIMIZERS, SCHEDULES, lr_at
from .strategies import ATTACK_NAMES, Adversarial, SpecAttack, Standard
from .diversity import ADP, DVERGE, GAL
from .registry import STRATEGY_NAMES, strategy_from_spec

__all__ = ["ATTACK_NAMES", "OPTIMIZERS", "SCHEDULES", "STRATEGY_NAMES", "TRAINING_VERSION", "Adversarial",
           "SpecAttack", "Standard", "fit", "lr_at", "strategy_from_spec",
           "ADP", "DVERGE", "GAL"]
