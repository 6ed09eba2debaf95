"""Argument checks shared by the whole library: each returns the value or raises ValueError naming
the parameter and what it accepts, before any expensive work (data loading, training, attacks)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable

import torch


def check_choice(value, name: str, allowed: Iterable):
    """`value` if it is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_int(value, name: str, minimum: int = 1) -> int:
    """`value` as an int if it is an integer >= `minimum` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_number(value, name: str, *, minimum: float, strict: bool = False) -> float:
    """`value` as a float if it is a finite number >= `minimum` (> with strict)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value > minimum if strict else value >= minimum)):
        raise ValueError(f"{name} must be a number {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """x a float (N, C, H, W) batch in [0, 1]; y its int64 (N,) labels on the same device."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N, C, H, W), got {getattr(x, 'shape', type(x))}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must lie in [0, 1] (normalisation belongs inside the model)")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape ({x.shape[0]},), got {getattr(y, 'shape', type(y))}")
    if y.device != x.device:
        raise ValueError(f"y must be on x's device {x.device}, got {y.device}")
