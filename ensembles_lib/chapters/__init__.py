"""The chapters, registered explicitly: each one's name and its parameters, declared once.

One module a chapter, named after its notebook (`notebooks/<chapter>.ipynb`), defines PARAMETERS,
a tuple of `profiles.Param`; this package imports each module and registers it in CHAPTERS, so
adding a chapter is its notebook, its module and one name in the import below. The notebook's
`parameters` cell is written from the declaration (`ensembles params CHAPTER --write`) and its
config cell resolves the values without listing them again:

    config = resolve_notebook("tour", globals())

Nothing here imports torch (the declarations hold no code that runs a chapter), so the command
line lists and validates parameters in a fraction of a second. Used by notebooks, `ensembles`
and the runner.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping

from ..profiles import Chapter, Config, Param
from . import counter_linked, dverge, sq_ensembles, strength_in_numbers, tour, trend


def _chapter(module: ModuleType) -> Chapter:
    return Chapter(module.__name__.rpartition(".")[2], module.PARAMETERS, minutes=module.MINUTES)


CHAPTERS: dict[str, Chapter] = {c.name: c for c in map(_chapter, (counter_linked, dverge, sq_ensembles, strength_in_numbers, tour, trend))}


def names() -> list[str]:
    """The name of every registered chapter, sorted."""
    return sorted(CHAPTERS)


def chapter(name: str) -> Chapter:
    """The registered chapter `name`, or ValueError listing the chapters."""
    if name not in CHAPTERS:
        raise ValueError(f"chapter must be one of {', '.join(map(repr, names()))}, got {name!r}")
    return CHAPTERS[name]


def parameters(name: str) -> tuple[Param, ...]:
    """Chapter `name`'s declared parameters, in declaration order."""
    return chapter(name).params


def resolve(name: str, profile: str = "auto", **overrides) -> Config:
    """The frozen Config of chapter `name` under `profile` with `overrides` (None = the profile's
    default); ValueError naming the chapter, profile or parameter that is wrong."""
    return chapter(name).resolve(profile, **overrides)


def resolve_notebook(name: str, namespace: Mapping[str, Any]) -> Config:
    """The Config of chapter `name`'s notebook: `profile` and each declared parameter taken from
    `namespace` (the notebook's `globals()` after its parameters cell and papermill's injection)."""
    return chapter(name).resolve_namespace(namespace)
