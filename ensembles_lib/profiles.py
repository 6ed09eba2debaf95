"""Profiles and chapter parameters: what a chapter may be told, and the validated config it runs on.

A profile is a preset of every parameter of a chapter, sized for a machine:

- ``smoke``: scikit-learn digits, seconds (what the tests run);
- ``cpu``: Fashion-MNIST (or a CIFAR-10 subset where a chapter needs colour), minutes on two
  cores -- the profile the committed book was executed with;
- ``gpu``: CIFAR-10 with fast-training recipes, one GPU;
- ``paper``: the papers' own hyper-parameters;
- ``auto``: ``gpu`` when CUDA is available, else ``cpu``.

Each chapter declares its parameters once, in ``ensembles_lib/chapters/<chapter>.py`` (a tuple
``PARAMETERS`` of `Param`), so the command line can list and validate them without executing the
notebook, and the notebook's config cell turns its overrides into one frozen `Config`:

    config = resolve("tour", profile=profile, epochs=epochs, eps=eps)   # None = profile default

An unknown parameter, a wrong type or an out-of-range value is a ValueError naming the parameter
and what it accepts, raised before any data is loaded. Used by every chapter and by `ensembles`.
"""

from __future__ import annotations

import difflib
import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import torch

from .checks import check_bool, check_choice, check_int, check_number

PROFILES = ("smoke", "cpu", "gpu", "paper")
PROFILE_CHOICES = ("auto",) + PROFILES
KINDS = ("int", "float", "str", "bool", "floats")
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def resolve_profile(profile: str) -> str:
    """`profile` itself, or for "auto" "gpu" when CUDA is available and "cpu" otherwise."""
    check_choice(profile, "profile", PROFILE_CHOICES)
    if profile == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return profile


@dataclass(frozen=True)
class Param:
    """One chapter parameter: its name, kind, default per profile, what it accepts and means.

    kind: "int", "float", "str", "bool" or "floats" (a tuple of floats, e.g. an eps grid).
    default: one value for every profile, or a dict profile -> value covering all of PROFILES.
    minimum / maximum bound numbers (every element for "floats"); choices lists allowed strings.
    """

    name: str
    kind: str
    default: Any
    meaning: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    defaults: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        check_choice(self.kind, f"{self.name}: kind", KINDS)
        given = self.default if isinstance(self.default, Mapping) else dict.fromkeys(PROFILES, self.default)
        if set(given) != set(PROFILES):
            raise ValueError(f"{self.name}: default must give a value for each of {', '.join(PROFILES)}, "
                             f"got {', '.join(given)}")
        # the declaration's own defaults must pass the checks a user's value has to pass
        object.__setattr__(self, "defaults", MappingProxyType({p: self.check(given[p]) for p in PROFILES}))

    def allowed(self) -> str:
        """What the parameter accepts, in words (for error messages and `ensembles list`)."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "True or False"
        what = {"int": "an int", "float": "a number", "floats": "numbers, comma-separated", "str": "a string"}[self.kind]
        low = "" if self.minimum is None else f"{self.minimum}"
        high = "" if self.maximum is None else f"{self.maximum}"
        if low and high:
            return f"{what} in [{low}, {high}]"
        return what + (f" >= {low}" if low else "") + (f" <= {high}" if high else "")

    def _fail(self, value) -> ValueError:
        return ValueError(f"parameter {self.name} must be {self.allowed()}, got {value!r}")

    def check(self, value):
        """`value` in the parameter's kind (ints accepted for floats; any sequence of numbers for
        "floats", returned as a tuple), or ValueError naming the parameter and what it accepts."""
        if self.kind == "floats":
            items = () if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") else tuple(value)
            if not items:
                raise self._fail(value)
            return tuple(self._number(v, shown=value) for v in items)
        if self.kind in ("int", "float"):
            return self._number(value, shown=value)
        if self.kind == "bool":
            return check_bool(value, f"parameter {self.name}")
        if not isinstance(value, str):
            raise self._fail(value)
        return value if self.choices is None else check_choice(value, f"parameter {self.name}", self.choices)

    def _number(self, value, shown):
        """One number within [minimum, maximum]; `shown` is what the error message quotes."""
        try:
            if self.kind == "int":
                number = check_int(value, self.name, minimum=-(2**63) if self.minimum is None else int(self.minimum))
            else:
                number = check_number(value, self.name, minimum=-math.inf if self.minimum is None else self.minimum)
        except ValueError:
            raise self._fail(shown) from None
        if self.maximum is not None and number > self.maximum:
            raise self._fail(shown)
        return number

    def parse(self, text: str):
        """The value a command-line string stands for, checked (`-p eps 0.1`, `-p grid 0,0.1,0.2`,
        `-p augment yes`)."""
        if not isinstance(text, str):
            return self.check(text)
        words = text.strip()
        if self.kind == "bool":
            if words.lower() not in TRUE_WORDS + FALSE_WORDS:
                raise self._fail(text)
            return words.lower() in TRUE_WORDS
        if self.kind == "str":
            return self.check(words)
        convert = int if self.kind == "int" else float
        try:
            if self.kind == "floats":
                value = [convert(w) for w in words.strip("()[]").split(",") if w.strip()]
            else:
                value = convert(words)
        except ValueError:
            raise self._fail(text) from None
        return self.check(value)


class Config(Mapping):
    """A chapter's resolved parameters: frozen, read as attributes or items (`config.eps`).

    `chapter` and `profile` (the concrete one, never "auto") say where the values came from;
    `overridden` names the parameters that differ from the profile's defaults.
    """

    __slots__ = ("chapter", "profile", "overridden", "_values")

    def __init__(self, chapter: str, profile: str, values: Mapping[str, Any], overridden: tuple[str, ...]):
        object.__setattr__(self, "chapter", chapter)
        object.__setattr__(self, "profile", profile)
        object.__setattr__(self, "overridden", tuple(overridden))
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.chapter} has no parameter {name!r}; parameters: {', '.join(self._values)}") from None

    def __setattr__(self, name, value):
        raise AttributeError("a Config is frozen: pass a new value to resolve() instead")

    def __getitem__(self, name: str):
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict:
        """The values as a plain dict (tuples as lists), JSON-able."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._values.items()}

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"Config({self.chapter!r}, profile={self.profile!r}, {values})"


# --------------------------------------------------------------------------- the registry

_REGISTRY: dict[str, tuple[Param, ...]] = {}
_LOADED = False


def declare(chapter: str, params) -> tuple[Param, ...]:
    """Register `chapter`'s parameters (a sequence of Param with distinct names, not "profile")."""
    if not isinstance(chapter, str) or not chapter.isidentifier():
        raise ValueError(f"chapter must be an identifier-like name, got {chapter!r}")
    params = tuple(params)
    names = [p.name for p in params]
    if any(not isinstance(p, Param) for p in params) or len(set(names)) != len(names) or "profile" in names:
        raise ValueError(f"{chapter}: params must be Param objects with distinct names other than 'profile'")
    _REGISTRY[chapter] = params
    return params


def _registry() -> dict[str, tuple[Param, ...]]:
    """Every declared chapter; the declarations in ensembles_lib.chapters are imported on first use."""
    global _LOADED
    if not _LOADED:
        from . import chapters

        for module in pkgutil.iter_modules(chapters.__path__):
            if not module.name.startswith("_"):
                declare(module.name, importlib.import_module(f"{chapters.__name__}.{module.name}").PARAMETERS)
        _LOADED = True
    return _REGISTRY


def chapters() -> list[str]:
    """The names of every declared chapter, sorted."""
    return sorted(_registry())


def parameters(chapter: str) -> tuple[Param, ...]:
    """`chapter`'s declared parameters, or ValueError listing the chapters."""
    registry = _registry()
    return registry[check_choice(chapter, "chapter", sorted(registry))]


def _unknown(chapter: str, name: str, params: tuple[Param, ...]) -> ValueError:
    known = [p.name for p in params]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ValueError(f"{chapter} has no parameter {name!r}{hint}; its parameters: {', '.join(known)}")


def parse_overrides(chapter: str, pairs) -> dict[str, Any]:
    """Command-line (NAME, TEXT) pairs as typed, checked values: {"eps": 0.1, ...}."""
    params = {p.name: p for p in parameters(chapter)}
    values = {}
    for name, text in pairs:
        if name not in params:
            raise _unknown(chapter, name, tuple(params.values()))
        values[name] = params[name].parse(text)
    return values


def resolve(chapter: str, profile: str = "auto", **overrides) -> Config:
    """The frozen, validated Config of `chapter` under `profile`, with `overrides` applied.

    An override of None means "the profile's default" (what a notebook's parameters cell holds).
    ValueError for an unknown chapter, profile or parameter, a wrong type or an out-of-range value.
    """
    params = parameters(chapter)
    concrete = resolve_profile(profile)
    known = {p.name: p for p in params}
    for name in overrides:
        if name not in known:
            raise _unknown(chapter, name, params)
    values, overridden = {}, []
    for p in params:
        given = overrides.get(p.name)
        values[p.name] = p.defaults[concrete] if given is None else p.check(given)
        if values[p.name] != p.defaults[concrete]:
            overridden.append(p.name)
    return Config(chapter, concrete, values, tuple(overridden))
