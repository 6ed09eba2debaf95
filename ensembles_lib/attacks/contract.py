"""The attack contract: the one wrapper every attack goes through, so that an attack's file holds
only its algorithm.

`@attack()` on `def pgd(model, x, y, *, eps: Budget, steps: Count = 10, ...)` makes `pgd`:

1. validate its keyword arguments once, against its own signature (the single declaration of each
   parameter's type, bounds and default; `params` holds the vocabulary), with one error naming
   every bad parameter and what it accepts (`AttackArgumentError`, a ValueError);
2. check its inputs once, at entry: x a finite float (N, C, H, W) batch in [0, 1], y int64 labels
   of shape (N,) on x's device, >= 0, and below the model's class count, read from the shape of
   the model's first output (a forward hook: no extra forward pass, no host-device sync per step);
3. run the algorithm under `attack_mode` (eval mode, frozen parameters, seeded randomness, all
   restored), on x in the working layout (channels-last on the CPU), and return a detached,
   contiguous NCHW x_adv.

`@attack(members=True)` attacks take their ensemble's members first: a list, a tuple or an
`nn.ModuleList`; `@attack(source=True)` attacks take (model, x, x_source), two image batches and
no labels (feature distillation). Pixel units throughout. Used by every attack chapter.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from numbers import Integral, Real
from typing import Any, Callable, Iterator, Optional, Sequence, get_type_hints

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .gradient import attack_mode, working_layout
from ..checks import check_images, check_inputs
from ..fields import STRICT, ArgumentError, describe_type, explain

__all__ = ["attack", "check_images", "check_inputs", "member_list", "AttackArgumentError"]

# an attack's keywords: strict values (fields.STRICT) and no keyword it does not declare
ARGUMENTS = ConfigDict(extra="forbid", **STRICT)


class AttackArgumentError(ArgumentError):
    """A bad argument of an attack or a bad attack spec; the message names each bad parameter and
    what it accepts."""


def member_list(members: Any) -> list[nn.Module]:
    """`members` (a list, a tuple or an nn.ModuleList of nn.Module, at least one) as a list."""
    if isinstance(members, (list, tuple, nn.ModuleList)) and members and \
            all(isinstance(m, nn.Module) for m in members):
        return list(members)
    raise AttackArgumentError("members must be a non-empty list, tuple or nn.ModuleList of nn.Module (the "
                              f"ensemble's members, e.g. ensemble.members), got {type(members).__name__}")


@contextlib.contextmanager
def labels_within_classes(models: Sequence[nn.Module], y_max: Optional[int]) -> Iterator[None]:
    """While active, the first (N, C) output of each model is checked against the labels: a label
    >= C is an AttackArgumentError before any loss reads it (where cross-entropy would raise an
    IndexError on the CPU and a device-side assert on a GPU). The check reads shapes only."""
    if y_max is None:
        yield
        return
    handles: dict[int, Any] = {}

    def check(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 2 and y_max >= output.shape[1]:
            raise AttackArgumentError(f"y holds label {y_max} outside [0, {output.shape[1]})")
        handles[id(module)].remove()  # once a model: later steps pay nothing

    try:
        for m in models:
            if id(m) not in handles:
                handles[id(m)] = m.register_forward_hook(check)
        yield
    finally:
        for h in handles.values():
            h.remove()


def _plain_numbers(options: dict) -> dict:
    # numpy and other registered number types (np.int64 from a grid, np.float32) count as the
    # Python int or float they stand for; the strict validation would refuse them otherwise
    out = {}
    for key, value in options.items():
        if isinstance(value, Integral) and not isinstance(value, (bool, int)):
            value = int(value)
        elif isinstance(value, Real) and not isinstance(value, (bool, int, float)):
            value = float(value)
        out[key] = value
    return out


def declaration(fn: Callable) -> dict[str, tuple[Any, Any]]:
    """The keyword-only parameters of `fn` as {name: (annotated type, default or ...)}, in order."""
    hints = get_type_hints(fn, include_extras=True)
    return {p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
            for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def attack(*, members: bool = False, source: bool = False, layout: bool = True) -> Callable[[Callable], Callable]:
    """Decorate an attack algorithm `fn(model, x, y, *, <declared keywords>, seed)` with the contract
    (module docstring). members: the first argument is a list of members; source: the third is a
    second image batch (x_source) instead of labels; layout=False keeps x in the caller's layout
    (for third-party code that reshapes with .view). The algorithm receives validated keywords,
    x detached (in the working layout), and runs inside attack_mode; it returns x_adv.

    The decorated function keeps `fn`'s signature (inspect.signature shows it) and carries
    `.params`, the pydantic model of its keywords, and `.declaration`, their types and defaults.
    """

    def decorate(fn: Callable) -> Callable:
        declared = declaration(fn)
        if "seed" not in declared:
            raise TypeError(f"{fn.__name__}: an attack must take a `seed` keyword")
        params: type[BaseModel] = create_model(fn.__name__, __config__=ARGUMENTS, **declared)
        positional = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != 3:
            raise TypeError(f"{fn.__name__}: an attack takes three positional inputs, e.g. (model, x, y)")
        names = [p.name for p in positional]
        binder = inspect.Signature([*positional, inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD)])

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> torch.Tensor:
            bound = binder.bind(*args, **kwargs)
            first, x, third = (bound.arguments[n] for n in names)
            given = _plain_numbers(bound.arguments.get("options", {}))
            try:
                options = dict(params.model_validate(given))
            except ValidationError as err:
                raise AttackArgumentError(explain(err, params, given, owner=fn.__name__)) from None
            if members:
                models = member_list(first)
                first = models
            elif isinstance(first, nn.Module):
                models = [first]
            else:
                raise AttackArgumentError(f"{names[0]} must be an nn.Module, got {type(first).__name__}")
            if source:
                check_images(x, names[1])
                check_images(third, names[2])
                if third.shape != x.shape or third.device != x.device:
                    raise AttackArgumentError(f"{names[2]} must have {names[1]}'s shape {tuple(x.shape)} and device "
                                              f"{x.device}, got {tuple(third.shape)} on {third.device}")
                third, y_max = third.detach(), None
            else:
                y_max = check_inputs(x, third)
                if callable(options.get("loss")):
                    y_max = None  # a loss of the caller's own may read labels its own way
            x = x.detach()
            if layout:
                x = working_layout(x)
                third = working_layout(third) if source else third
            with attack_mode(models, options["seed"], x.device), labels_within_classes(models, y_max):
                x_adv = fn(first, x, third, **options)
            return x_adv.detach().contiguous()

        run.params = params
        run.declaration = declared
        # help() and inspect.signature show what each keyword accepts in words, not pydantic's
        # metadata objects; __annotations__ keeps the types (typing.get_type_hints reads those)
        signature = inspect.signature(fn)
        run.__signature__ = signature.replace(parameters=[
            p.replace(annotation=describe_type(p.annotation)) if p.name in declared else p
            for p in signature.parameters.values()])
        return run

    return decorate
