"""Training: one loop (`fit`) and the papers' objectives as strategies (DESIGN.md, "One training loop").

`fit(model, train_loader, epochs=..., lr=..., strategy=Adversarial(attack, rho=1.0))` trains in
place with progress bars, per-epoch metrics and resumable checkpoints; `cache.trained(spec)`
wraps it so a chapter trains each model once.
"""

from .loop import TRAINING_VERSION, fit
from .optim import OPTIMIZERS, SCHEDULES, lr_at
from .strategies import Adversarial, Standard
from .diversity import ADP, DVERGE, GAL
from .counter_link import CounterLinked
from .sq_ensemble import SQTraining
from .lipschitz import DefensiveQuantization
from .registry import STRATEGIES, strategy_from_spec

__all__ = ["OPTIMIZERS", "SCHEDULES", "STRATEGIES", "TRAINING_VERSION", "Adversarial", "Standard", "fit", "lr_at",
           "strategy_from_spec", "ADP", "CounterLinked", "DVERGE", "GAL", "SQTraining", "DefensiveQuantization"]
