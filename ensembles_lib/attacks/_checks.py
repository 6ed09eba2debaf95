"""Attack budgets in pixel units (the generic checks live in ensembles_lib.checks)."""

import math
from numbers import Real



def check_eps(eps, name: str = "eps") -> float:
    """An L-inf budget in pixel units: a finite number in [0, 1]."""
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps) or not 0 <= eps <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (pixel units, e.g. 8/255), got {eps!r}")
    return float(eps)


def check_step(step, name: str = "step") -> float:
    """A step size in pixel units: a finite number in (0, 1]."""
    if isinstance(step, bool) or not isinstance(step, Real) or not math.isfinite(step) or not 0 < step <= 1:
        raise ValueError(f"{name} must be a number in (0, 1] (pixel units, e.g. 2/255), got {step!r}")
    return float(step)



def check_unit(value, name: str, *, low_open: bool = False) -> float:
    """A probability-like number in [0, 1] (or (0, 1] with low_open)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        raise ValueError(f"{name} must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")
    return float(value)




def step_or_default(step, default: float) -> float:
    """`step` checked as a step size, or `default` (derived from eps, so already valid) when None."""
    return float(default) if step is None else check_step(step)
