"""Argument checks shared by the whole library: each returns the value or raises a ValueError naming
the parameter and what it accepts, before any expensive work (data loading, training, attacks).

`check_inputs(x, y)` is the one check of an image batch and its labels that every attack (through
the attack contract) and every evaluation function makes: a finite float (N, C, H, W) batch in
[0, 1], int64 labels of shape (N,) on its device, in one device-to-host copy. Typed parameters are
declared in `fields` and validated by pydantic; the plain checks below serve the modules that take
a few scalars (data, models)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable, Optional

import torch

from .fields import ArgumentError


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


def check_images(x: Any, name: str = "x") -> None:
    """ArgumentError unless `x` is a finite float (N, C, H, W) tensor in [0, 1]; one host sync."""
    _check_image_type(x, name)
    if x.numel():
        _check_values(name, *torch.stack(torch.aminmax(x)).tolist())


def check_inputs(x: Any, y: Any) -> Optional[int]:
    """`check_images(x)` plus y int64 labels of shape (N,) on x's device, all >= 0; returns the
    largest label (None for an empty batch) for the class-count check. One host sync in all."""
    _check_image_type(x, "x")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != x.shape[:1]:
        got = f"dtype {y.dtype} shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ArgumentError(f"y must be int64 labels of shape ({x.shape[0]},), got {got}")
    if y.device != x.device:
        raise ArgumentError(f"y must be on x's device {x.device}, got {y.device}")
    if not x.numel():
        return None
    # the four extremes in one tensor, so that the whole check costs one device-to-host copy; a NaN
    # anywhere in x makes both of its extremes NaN (min and max propagate it), an inf shows in one
    extremes = (*torch.aminmax(x), *torch.aminmax(y))
    low, high, y_min, y_max = torch.stack([v.double() for v in extremes]).tolist()
    _check_values("x", low, high)
    y_min, y_max = int(y_min), int(y_max)
    if y_min < 0:
        raise ArgumentError(f"y holds label {y_min} outside [0, number of classes)")
    return y_max


def _check_image_type(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"dtype {x.dtype} shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ArgumentError(f"{name} must be a float tensor of shape (N, C, H, W), got {got}")


def _check_values(name: str, low: float, high: float) -> None:
    if not math.isfinite(low) or not math.isfinite(high):
        held = "NaN" if math.isnan(low) else "-inf" if low == -math.inf else "inf"
        raise ArgumentError(f"{name} must be finite, but it holds {held}")
    if low < 0 or high > 1:
        raise ArgumentError(f"{name} must lie in [0, 1] (normalisation belongs inside the model), "
                                  f"got values in [{low:g}, {high:g}]")
