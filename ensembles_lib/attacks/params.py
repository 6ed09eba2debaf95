"""The vocabulary of attack parameters: each kind of keyword (an L-inf budget, a step size, a count,
a seed...) declared once as an annotated type with its bounds, and the plain-words description of
what a declared type accepts, which every argument error quotes.

An attack's signature is its parameters' single declaration (`pgd(..., *, eps: Budget, steps:
Count = 10, ...)`): `contract.attack` validates calls against it and `specs` derives the JSON spec
of the attack from it, so a bound or a default is written in one place. Budgets and steps are in
pixel units (images in [0, 1]). Used by every attack, hence by every chapter that attacks.
"""

from __future__ import annotations

import collections.abc
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

# torch seeds generators with unsigned 64-bit integers; attack_mode seeds a random model's own
# generators with seed + 1 + k, so the top half is kept free for that offset.
SEED_MAX = 2**63 - 1

Budget = Annotated[float, Field(ge=0, le=1, description="pixel units, e.g. 8/255")]
StepSize = Annotated[float, Field(gt=0, le=1, description="pixel units, e.g. 2/255")]
Count = Annotated[int, Field(ge=1)]
Unit = Annotated[float, Field(ge=0, le=1)]
PositiveUnit = Annotated[float, Field(gt=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]

# strict: a bool is not a count and a string is not a budget; NaN and inf are refused.
ARGUMENTS = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class AttackArgumentError(ValueError):
    """A bad argument of an attack or a bad attack spec; the message names each bad parameter and
    what it accepts."""


def describe_type(annotation: Any, metadata: tuple = ()) -> str:
    """What a value of the declared type may be, in words: "a number in [0, 1] (pixel units, e.g.
    8/255)", "an int >= 1", "one of 'sign', 'adam'", "... or None"."""
    description = None
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata = (*metadata, *extra)
    bounds = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            bounds += item.metadata
            description = item.description or description
        else:
            bounds.append(item)
    text = _kind(annotation, bounds)
    return f"{text} ({description})" if description else text


def describe_field(field: FieldInfo) -> str:
    """`describe_type` of a pydantic model's field (whose top-level bounds pydantic keeps apart)."""
    text = describe_type(field.annotation, tuple(field.metadata))
    return f"{text} ({field.description})" if field.description else text


def _kind(annotation: Any, bounds: list) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        text = " or ".join(describe_type(a) for a in options if a is not type(None))
        return f"{text} or None" if type(None) in options else text
    if origin is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    if annotation is bool:
        return "True or False"
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return "a callable"
    noun = {int: "an int", float: "a number"}.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return noun + _interval(bounds)


def _interval(bounds: list) -> str:
    def bound(attribute: str, bracket: str):
        # pydantic keeps Field(ge=...) etc. as annotated_types objects carrying one attribute each
        return next(((getattr(b, attribute), bracket) for b in bounds if getattr(b, attribute, None) is not None), None)

    low, high = bound("ge", "[") or bound("gt", "("), bound("le", "]") or bound("lt", ")")
    if low and high:
        return f" in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
    if low:
        return f" {'>=' if low[1] == '[' else '>'} {_number(low[0])}"
    if high:
        return f" {'<=' if high[1] == ']' else '<'} {_number(high[0])}"
    return ""


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def explain(err: ValidationError, fields: dict[str, FieldInfo], *, where: str = "", owner: str = "it",
            variant: str | None = None) -> str:
    """One line per bad parameter of a ValidationError from a model with `fields`:
    "<where><name> must be <what it accepts>, got <value>" (a union's several complaints about one
    parameter become one line); an unknown parameter lists the parameters there are. `variant`:
    the tag a discriminated union puts first in each location, skipped."""
    lines: dict[str, str] = {}
    for problem in err.errors(include_url=False):
        loc = problem["loc"][1:] if variant is not None and problem["loc"][:1] == (variant,) else problem["loc"]
        name = str(loc[0]) if loc else ""
        if name in lines:
            continue
        if problem["type"] == "extra_forbidden":
            lines[name] = f"{where}{name} is not a parameter of {owner} (it accepts {', '.join(fields)})"
        elif name not in fields:
            lines[name] = f"{where}{name or 'value'}: {problem['msg']}"
        elif problem["type"] == "missing":
            lines[name] = f"{where}{name} is required: {describe_field(fields[name])}"
        else:
            lines[name] = f"{where}{name} must be {describe_field(fields[name])}, got {problem['input']!r}"
    return "; ".join(lines.values())
