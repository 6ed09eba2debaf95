"""The members' activation: ReLU (every architecture's own) or leaky ReLU, put in after building.

GAL (the baseline DVERGE compares with, paper 001 Section 4) penalises the alignment of the
members' input gradients; where a ReLU is off its gradient is zero, so the penalty has nothing to
act on there. The DVERGE authors' code trains its GAL members with leaky ReLUs for that reason
(`nn.LeakyReLU(0.1)` in zjysteven/DVERGE, models/resnet.py; the paper's text does not say so):
pass `negative_slope=0.1` to match it. The library's default slope is PyTorch's, 0.01.

- `check_activation(activation, negative_slope, activation_bits)`: ValueError naming the bad option.
- `check_slope(negative_slope)`: the slope as a float in (0, 1).
- `leaky_relu_model(model, negative_slope)`: every `nn.ReLU` of `model` becomes
  `nn.LeakyReLU(negative_slope)`, in place. The modules keep their names and places, so each
  feature `Tap` stays just before its activation and DVERGE's features are unchanged.

Leaky ReLU and `activation_bits` are refused together: both replace the same `nn.ReLU`, and a
quantised activation clipped to [0, clip] (TREND's QuantReLU) has no negative side to leak.
Initialisation stays the builders' own (He init with the ReLU gain sqrt(2) where they use it):
the leaky gain sqrt(2 / (1 + slope**2)) is under 0.5 % smaller for any slope up to 0.1.

Used by `models.build`'s `activation` and `negative_slope` options (registry.py); meant for the
DVERGE chapter's GAL members.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from ..checks import check_choice
from ..fields import ArgumentError, check_value, describe_type

ACTIVATIONS = ("relu", "leaky_relu")
DEFAULT_SLOPE = 0.01  # PyTorch's nn.LeakyReLU default

# the leak of a leaky ReLU, y = slope * x for x < 0: 0 would be a ReLU, 1 the identity
Slope = Annotated[float, Field(gt=0, lt=1)]


def check_slope(negative_slope: float) -> float:
    """`negative_slope` as a float in (0, 1), else ValueError naming it and the range."""
    try:
        return check_value(Slope, negative_slope, "negative_slope")
    except ArgumentError:
        # check_value words a bare scalar in pydantic's terms; say the range as the specs do
        raise ArgumentError(f"negative_slope must be {describe_type(Slope)}, got {negative_slope!r}") from None


def check_activation(activation: str = "relu", negative_slope: float = DEFAULT_SLOPE,
                     activation_bits: int | None = None) -> None:
    """ValueError naming `activation` or `negative_slope` when the pair is not one `build` accepts.

    activation: one of ACTIVATIONS. negative_slope: a number in (0, 1); with "relu" it must stay
    at its default, since it would change nothing but the cache key. activation_bits: must be
    None with "leaky_relu" (see the module docstring).
    """
    check_choice(activation, "activation", ACTIVATIONS)
    check_slope(negative_slope)
    if activation == "relu" and negative_slope != DEFAULT_SLOPE:
        raise ValueError(f"negative_slope applies only to activation='leaky_relu'; with activation='relu' "
                         f"leave it at {DEFAULT_SLOPE}, got {negative_slope!r}")
    if activation == "leaky_relu" and activation_bits is not None:
        raise ValueError("activation='leaky_relu' and activation_bits both replace the ReLUs (QuantReLU is "
                         "clipped at 0, it cannot leak): pass at most one")


def leaky_relu_model(model: nn.Module, negative_slope: float = DEFAULT_SLOPE) -> nn.Module:
    """`model` with every nn.ReLU replaced by nn.LeakyReLU(negative_slope) (in place; returned).

    Only exact nn.ReLU modules are replaced (not subclasses such as QuantReLU); their
    `inplace` flag is kept. Names, order and state-dict keys are unchanged (ReLUs hold no state).
    """
    check_slope(negative_slope)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.ReLU:
                setattr(parent, name, nn.LeakyReLU(negative_slope, inplace=child.inplace))
    return model
