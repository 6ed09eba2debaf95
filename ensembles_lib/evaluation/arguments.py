"""Arguments checked from their annotations: `@validated` validates each annotated argument of a
call with pydantic (strict: a bool is not a count, a string is not a number; NaN and inf refused;
bounds from `Annotated[..., Field(ge=..., le=...)]`) before the body runs, and a bad one is a
ValueError that names the parameter, what it accepts and what it got, e.g.
"eps: Input should be greater than 0 (got 0.0)".

pydantic's own `validate_call` names a positional argument by its index ("0"), hence this small
wrapper. Used by the evaluation functions that take budgets and counts (black-box attack lists,
decision grids) and by `ensembles_lib.blackbox`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

F = TypeVar("F", bound=Callable[..., Any])

# models, tensors and devices are checked by type (isinstance)
STRICT = ConfigDict(strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)


def describe(name: str, err: ValidationError) -> str:
    """One line per problem of argument `name`: `name[...]: what it accepts (got what)`."""
    lines = []
    for problem in err.errors(include_url=False):
        where = name + "".join(f"[{part!r}]" for part in problem["loc"])
        got = problem.get("input")
        shown = "" if len(repr(got)) > 80 else f" (got {got!r})"
        lines.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}{shown}")
    return "; ".join(lines)


def validated(function: F) -> F:
    """`function` with its annotated arguments validated (the values it receives are the
    validated ones); defaults are not checked. A wrong number of arguments stays a TypeError."""
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
                    raise ValueError(describe(name, err)) from None
        return function(*bound.args, **bound.kwargs)

    return call  # type: ignore[return-value]
