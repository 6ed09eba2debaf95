"""Strategy specs -> strategy objects: the one place that knows every training objective by name.

The cache stores a trained model's strategy as a validated spec (`specs.StrategySpec`);
`strategy_from_spec` builds the object, and `strategy.spec()` is its inverse (defaults filled in).
Kept apart from the strategies themselves so that they import each other's pieces without a cycle.
"""

from __future__ import annotations

from ..specs import (ADPSpec, AdversarialSpec, CounterLinkedSpec, DQSpec, DVERGESpec, GALSpec, SQSpec, StandardSpec,
                     strategy_spec)
from .counter_link import CounterLinked
from .diversity import ADP, DVERGE, GAL
from .lipschitz import DefensiveQuantization
from .sq_ensemble import SQTraining
from .strategies import Adversarial, Standard

STRATEGIES = {StandardSpec: Standard, AdversarialSpec: Adversarial, DVERGESpec: DVERGE, ADPSpec: ADP, GALSpec: GAL,
              CounterLinkedSpec: CounterLinked, SQSpec: SQTraining, DQSpec: DefensiveQuantization}


def strategy_from_spec(spec):
    """The strategy object a spec describes: a dict ({"name": "dverge", "eps": 0.07, ...}) or a
    validated `specs` model. SpecError (a ValueError) naming the bad field for an invalid one."""
    spec = strategy_spec(spec)
    return STRATEGIES[type(spec)].from_spec(spec)
