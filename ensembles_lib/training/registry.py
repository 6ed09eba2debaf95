"""Strategy specs -> strategy objects: the one place that knows every training objective by name.

The cache stores a trained model's strategy as a JSON-able spec ({"name": ..., parameters});
`strategy_from_spec` rebuilds the object, and `strategy.spec()` is its inverse (defaults filled in).
Kept apart from the strategies themselves so that they import each other's pieces without a cycle.
"""

from __future__ import annotations

from .diversity import ADP, DVERGE, GAL
from .strategies import Adversarial, SpecAttack, Standard

DIVERSITY_STRATEGIES = {"dverge": DVERGE, "adp": ADP, "gal": GAL}
STRATEGY_NAMES = ("standard", "adversarial", *DIVERSITY_STRATEGIES)


def strategy_from_spec(spec: dict):
    """Standard() from {"name": "standard"}; Adversarial from {"name": "adversarial", "rho", "attack": {...}};
    DVERGE, ADP, GAL (diversity.py) from {"name": "dverge" | "adp" | "gal", their parameters}."""
    if not isinstance(spec, dict) or spec.get("name") not in STRATEGY_NAMES:
        raise ValueError(f"strategy must be a dict whose 'name' is one of {', '.join(STRATEGY_NAMES)}, got {spec!r}")
    if spec["name"] in DIVERSITY_STRATEGIES:
        return DIVERSITY_STRATEGIES[spec["name"]].from_spec(spec)
    allowed = {"standard": {"name"}, "adversarial": {"name", "rho", "attack"}}[spec["name"]]
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"strategy {spec['name']!r}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    if spec["name"] == "standard":
        return Standard()
    if "attack" not in spec:
        raise ValueError("strategy 'adversarial': missing key 'attack'")
    return Adversarial(SpecAttack(spec["attack"]), rho=spec.get("rho", 1.0), attack_spec=spec["attack"])
