"""Feature taps: named points inside a model where the pre-activation output can be read.

DVERGE (paper 001, Eq. 1) distils features at "the output before the activation (e.g. ReLU)
of the l-th hidden layer". Each architecture declares its tap points by placing a `Tap` (an
identity module) exactly where that pre-activation value flows, just before the ReLU that
follows a residual block or conv stage. `feature_layers` lists the taps by module name in
forward order, and `features` reads one through a forward hook, the same way for every
architecture (and for wrappers around them: a quantised model, an Ensemble's members).
Used by the DVERGE chapter (feature distillation) and by the attacks that distil features.
"""

from __future__ import annotations

import torch
from torch import nn


class Tap(nn.Identity):
    """Identity marker: its output is the pre-activation feature map at this point."""


class _StopForward(Exception):
    """Raised by the tap hook to end the forward pass once the feature has been read."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value


def feature_layers(model: nn.Module) -> list[str]:
    """Names of the model's `Tap` modules, in forward order (the order the model defines them).

    Every architecture in the registry defines its modules in the order its forward uses them,
    so registration order is forward order.
    """
    return [name for name, module in model.named_modules() if isinstance(module, Tap)]


def features(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The pre-activation output of `model` at tap `layer` for input `x` (NCHW, [0, 1]).

    Runs the forward pass up to that tap only (the hook raises to stop it), so it costs less
    than a full forward. The graph is kept: gradients flow from the result back to `x`. The
    model's train/eval mode is left as it is (BatchNorm behaves as the caller chose).
    """
    taps = dict((name, module) for name, module in model.named_modules() if isinstance(module, Tap))
    if layer not in taps:
        raise ValueError(f"layer must be one of feature_layers(model) = {list(taps)}, got {layer!r}")

    def hook(_module, _inputs, output):
        raise _StopForward(output)

    handle = taps[layer].register_forward_hook(hook)
    try:
        model(x)
    except _StopForward as stop:
        return stop.value
    finally:
        handle.remove()
    raise RuntimeError(f"tap {layer!r} was not reached by the forward pass")
