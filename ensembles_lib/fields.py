"""The kinds of values the library's parameters take, and how a refused value is explained.

Each kind (an L-inf budget, a step size, a count, a seed ...) is declared once here as an
annotated type with its bounds; attack signatures, specs and evaluation functions annotate their
parameters with these, and pydantic validates them (strict: a bool is not a count and "0.1" is
not a budget; NaN and inf are refused). `explain` turns any pydantic ValidationError into one
line per bad value, naming where it is and what it accepts:

    spec.strategy.attack.eps must be a number in [0, 1] (pixel units, e.g. 8/255), got 2
    epsilon is not a parameter of pgd (it accepts eps, steps, step, ...)

Budgets and steps are in pixel units (images in [0, 1]). Imports no torch, so the command line
can use it before torch loads. Used by `attacks` (the attack contract), `specs`, `evaluation`
and `profiles` (SEED_MAX).
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import types
import typing
from typing import Annotated, Any, Callable, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, Tag, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

# numpy's legacy seeding (np.random.seed, RandomState) takes at most 2**32 - 1; torch takes more.
SEED_MAX = 2**32 - 1

Budget = Annotated[float, Field(ge=0, le=1, description="pixel units, e.g. 8/255")]
StepSize = Annotated[float, Field(gt=0, le=1, description="pixel units, e.g. 2/255")]
Count = Annotated[int, Field(ge=1)]
Unit = Annotated[float, Field(ge=0, le=1)]
PositiveUnit = Annotated[float, Field(gt=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]

# strict: a bool is not a count and a string is not a number; NaN and inf are refused.
# arbitrary types: models, tensors and callables are checked by isinstance / callability.
STRICT = ConfigDict(strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)

F = TypeVar("F", bound=Callable[..., Any])


class ArgumentError(ValueError):
    """A refused parameter value or spec; the message names each bad value and what it accepts."""


# --------------------------------------------------------------------------------- in words


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
        tags = [tag for _, tag in _variants(annotation) if tag is not None]
        if len(tags) == len(options) > 1:  # a discriminated union of specs
            return "a spec whose name is one of " + ", ".join(map(repr, tags))
        text = " or ".join(describe_type(a) for a in options if a is not type(None))
        return f"{text} or None" if type(None) in options else text
    if origin is Literal:
        return "one of " + ", ".join(map(repr, get_args(annotation)))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        tag = _variants(annotation)[0][1]
        return f"a {tag!r} spec" if tag else f"a {annotation.__name__} dict"
    if annotation is bool:
        return "True or False"
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return "a callable"
    noun = {int: "an int", float: "a number", str: "a string"}.get(annotation,
                                                                   getattr(annotation, "__name__", str(annotation)))
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


# --------------------------------------------------------------------------------- explaining errors

# errors about one value of a declared kind: said as "must be <what the field accepts>"
_VALUE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_type", "float_type",
                 "bool_type", "string_type", "literal_error", "finite_number", "int_from_float", "callable_type",
                 "list_type", "tuple_type", "dict_type", "none_required"}


def _variants(annotation: Any, tag: str | None = None) -> list[tuple[Any, str | None]]:
    """The (type, tag) pairs a possibly Annotated, Optional or discriminated annotation may hold;
    a variant's tag is its pydantic `Tag` or the value of its `name: Literal[...]` field."""
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        tag = next((m.tag for m in extra if isinstance(m, Tag)), tag)
    if get_origin(annotation) in (Union, types.UnionType):
        return [v for option in get_args(annotation) for v in _variants(option)]
    if tag is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        name = annotation.model_fields.get("name")
        literal = get_args(name.annotation) if name is not None and get_origin(name.annotation) is Literal else ()
        tag = literal[0] if len(literal) == 1 else None
    return [(annotation, tag)]


def _locate(kind: Any, value: Any, loc: tuple, missing: bool) -> tuple[str, str | None, list[str], str | None]:
    """Walk an error's location through the input and the declared types: the path in words
    (dotted keys, [i] for list items; a union's variant tag, which names no key, is skipped), what
    the value there may be (in words), the parameters its parent accepts, and the parent's name."""
    path, node, what, accepted, owner = "", value, None, [], None
    variants = _variants(kind)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        is_key = isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) \
            or (missing and last)
        if not is_key:  # the tag of the variant a discriminated union chose: keep that variant
            variants = [v for v in variants if v[1] == part] or variants
            continue
        models = [(m, tag) for m, tag in variants if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(part, int):
            path += f"[{part}]"
            items = [get_args(m)[0] for m, _ in variants if get_origin(m) in (list, tuple) and get_args(m)]
            variants = _variants(items[0]) if items else []
            what = describe_type(items[0]) if items else None
        else:
            path += f".{part}" if path else str(part)
            model, tag = models[0] if models else (None, None)
            field = model.model_fields.get(part) if model is not None else None
            if model is not None:
                named = _variants(model, None)[0][1] is not None  # "name" is its tag, not a parameter
                accepted = [f for f in model.model_fields if not (named and f == "name")]
                owner = tag or model.__name__
            variants = _variants(field.annotation) if field is not None else []
            what = describe_field(field) if field is not None else None
        node = None if missing and last else node[part] if isinstance(node, (dict, list)) else None
    return path, what, accepted, owner


def explain(err: ValidationError, kind: Any, value: Any, where: str = "", owner: str | None = None) -> str:
    """One line per bad value of `value` (what was validated as `kind`): "<where>.<path> must be
    <what it accepts>, got <value>" for a value of the wrong kind or range, "... is required: ...",
    "<name> is not a parameter of <owner> (it accepts ...)" for an unknown key, else pydantic's own
    words. Several complaints about one place (a union's variants) become one line."""
    lines: dict[str, str] = {}
    for problem in err.errors(include_url=False):
        missing = problem["type"] == "missing"
        path, what, accepted, parent = _locate(kind, value, problem["loc"], missing)
        shown = ".".join(p for p in (where, path) if p) or "value"
        if shown in lines:
            continue
        got = problem.get("input")
        if problem["type"] == "extra_forbidden":
            lines[shown] = f"{shown} is not a parameter of {owner or parent or 'it'} (it accepts {', '.join(accepted)})"
        elif missing:
            lines[shown] = f"{shown} is required" + (f": {what}" if what else "")
        elif what and problem["type"] in _VALUE_ERRORS:
            lines[shown] = f"{shown} must be {what}, got {got!r}"
        else:
            message = problem["msg"].removeprefix("Value error, ")
            lines[shown] = f"{shown}: {message}" + (f" (got {got!r})" if len(repr(got)) <= 80 else "")
    return "; ".join(lines.values())


# --------------------------------------------------------------------------------- validating values


def check_value(kind: Any, value: Any, name: str, error: type[ArgumentError] = ArgumentError) -> Any:
    """`value` validated as the type `kind` (e.g. NonNegative, Budget): one argument of a function,
    checked by the same rule as the specs; `error` naming `name` and what it accepts."""
    try:
        return TypeAdapter(kind, config=STRICT).validate_python(value)
    except ValidationError as err:
        raise error(explain(err, kind, value, where=name)) from None


def validated(function: F) -> F:
    """`function` with its annotated arguments validated before the body runs (it receives the
    validated values); defaults are not checked. A bad value is an ArgumentError naming the
    parameter; a wrong number of arguments stays a TypeError naming the function."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function, include_extras=True)
    adapters = {name: TypeAdapter(hints[name], config=STRICT) for name in signature.parameters if name in hints}

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{function.__name__}(): {err}") from None
        for name, value in bound.arguments.items():
            if name in adapters:
                try:
                    bound.arguments[name] = adapters[name].validate_python(value)
                except ValidationError as err:
                    raise ArgumentError(explain(err, hints[name], value, where=name)) from None
        return function(*bound.args, **bound.kwargs)

    return call  # type: ignore[return-value]
