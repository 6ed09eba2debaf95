"""Argument checks shared by the attacks: each raises ValueError naming the parameter and the
allowed values, before any forward pass."""

import math
from numbers import Integral, Real

import torch


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


def check_count(value, name: str) -> int:
    """A positive integer count (steps, restarts, eot_samples, n_queries)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_unit(value, name: str, *, low_open: bool = False) -> float:
    """A probability-like number in [0, 1] (or (0, 1] with low_open)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        raise ValueError(f"{name} must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")
    return float(value)


def check_choice(value, name: str, allowed) -> str:
    """One of the strings in `allowed`."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """x float (N, C, H, W) in [0, 1]; y int64 (N,) on the same device."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must lie in [0, 1] (normalisation belongs inside the model)")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', type(y))}")
    if y.device != x.device:
        raise ValueError(f"y must be on x's device {x.device}, got {y.device}")


def step_or_default(step, default: float) -> float:
    """`step` checked as a step size, or `default` (derived from eps, so already valid) when None."""
    return float(default) if step is None else check_step(step)
