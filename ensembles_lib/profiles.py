"""Profiles and the machinery of chapter parameters: what a chapter may be told, and the validated
config it runs on.

A profile is a preset of every parameter of a chapter, sized for a machine:

- ``smoke``: scikit-learn digits, seconds (what the tests run);
- ``cpu``: Fashion-MNIST (or a CIFAR-10 subset where a chapter needs colour), minutes on two
  cores -- the profile the committed book was executed with;
- ``gpu``: CIFAR-10 with fast-training recipes, one GPU;
- ``paper``: the papers' own hyper-parameters;
- ``auto``: ``gpu`` when CUDA is available, else ``cpu``.

A chapter declares each parameter once, as a `Param` (name, kind, default per profile, bounds or
choices, meaning); a `Chapter` holds one chapter's declarations and turns command-line strings,
keyword overrides or a notebook's namespace into one frozen `Config`, and writes the notebook's
papermill `parameters` cell. The chapters themselves are registered in `ensembles_lib.chapters`.

An unknown parameter, a wrong type or an out-of-range value is a ValueError naming the parameter
and what it accepts. Nothing here imports torch (only ``resolve_profile("auto")`` asks it about
CUDA), so `ensembles run` rejects a bad value before the heavy imports. Used by every chapter,
by `ensembles`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from .fields import SEED_MAX

PROFILES = ("smoke", "cpu", "gpu", "paper")
PROFILE_CHOICES = ("auto",) + PROFILES
KINDS = ("int", "float", "str", "bool", "floats", "ints", "strs")
# list kinds and the kind of each element
LIST_KINDS = {"floats": "float", "ints": "int", "strs": "str"}
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

# Chapters derive seeds from their `seed` parameter as seed + k: member k, DVERGE's surrogates
# (seed + 1000 + 100 s + k), attack restarts. A chapter's seed therefore stops SEED_ROOM short of
# SEED_MAX, so every derived seed is still a valid one.
SEED_ROOM = 10_000
CHAPTER_SEED_MAX = SEED_MAX - SEED_ROOM


def _one_of(value, name: str, allowed) -> Any:
    """`value` if it is one of `allowed`, else ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_profile(profile: str) -> str:
    """`profile` if it is one of PROFILE_CHOICES (auto included), else ValueError listing them."""
    return _one_of(profile, "profile", PROFILE_CHOICES)


def resolve_profile(profile: str) -> str:
    """`profile` itself, or for "auto" "gpu" when CUDA is available and "cpu" otherwise."""
    check_profile(profile)
    if profile == "auto":
        import torch  # only "auto" needs it: validation must not pay for importing torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return profile


def check_minutes(minutes: Mapping[str, Any] | None, chapter: str = "chapter") -> Mapping[str, float | None]:
    """A chapter's expected run time per profile (`MINUTES` beside its PARAMETERS), read-only:
    profile -> minutes (a positive number) or None (not measured); profiles left out are None.
    ValueError naming the chapter and the bad entry."""
    given = {} if minutes is None else minutes
    if not isinstance(given, Mapping):
        raise ValueError(f"{chapter}: minutes must be a dict profile -> minutes or None, got {minutes!r}")
    checked = dict.fromkeys(PROFILES)
    for profile, value in given.items():
        _one_of(profile, f"{chapter}: minutes' profile", PROFILES)
        number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if value is not None and not number:
            raise ValueError(f"{chapter}: minutes[{profile!r}] must be a positive number or None, got {value!r}")
        checked[profile] = None if value is None else float(value)
    return MappingProxyType(checked)


@dataclass(frozen=True)
class Param:
    """One chapter parameter: its name, kind, default per profile, what it accepts and means.

    kind: "int", "float", "str", "bool", or a list kind: "floats" (a tuple of floats, e.g. an eps
    grid), "ints" (e.g. bit widths) or "strs" (e.g. architecture names), written "a,b,c" on the command line.
    default: one value for every profile, or a dict profile -> value covering all of PROFILES.
    minimum / maximum bound numbers (every element of a list); choices lists allowed strings (of
    every element for "strs").
    meaning: one line, shown by `ensembles list` and as the comment in the notebook's cell.
    retrains: True when a changed value changes a trained model (it enters a training spec), so a
    rerun with it trains anew instead of reusing the cache; `ensembles list` says so.
    """

    name: str
    kind: str
    default: Any
    meaning: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    retrains: bool = False
    defaults: Mapping[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a parameter's name must be a Python identifier, got {self.name!r}")
        _one_of(self.kind, f"{self.name}: kind", KINDS)
        # papermill reads the parameters cell a line at a time and gives up on a line with a second "="
        if not isinstance(self.meaning, str) or not self.meaning.strip() or "\n" in self.meaning or "=" in self.meaning:
            raise ValueError(f"{self.name}: meaning must be one non-empty line without '=', got {self.meaning!r}")
        if not isinstance(self.retrains, bool):
            raise ValueError(f"{self.name}: retrains must be True or False, got {self.retrains!r}")
        if self.choices is not None and self.kind not in ("str", "strs"):
            raise ValueError(f"{self.name}: choices apply to kinds 'str' and 'strs' only, got kind {self.kind!r}")
        if (self.minimum is not None or self.maximum is not None) and self.kind not in ("int", "float", "floats", "ints"):
            raise ValueError(f"{self.name}: minimum/maximum apply to numbers only, got kind {self.kind!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        given = self.default if isinstance(self.default, Mapping) else dict.fromkeys(PROFILES, self.default)
        if set(given) != set(PROFILES):
            raise ValueError(f"{self.name}: default must give a value for each of {', '.join(PROFILES)}, "
                             f"got {', '.join(given)}")
        # the declaration's own defaults must pass the checks a user's value has to pass
        object.__setattr__(self, "defaults", MappingProxyType({p: self.check(given[p]) for p in PROFILES}))

    def allowed(self) -> str:
        """What the parameter accepts, in words (for error messages and `ensembles list`)."""
        if self.choices is not None:
            return ("a list, each one of " if self.kind == "strs" else "one of ") + ", ".join(map(repr, self.choices))
        if self.kind == "bool":
            return "True or False"
        what = {"int": "an int", "float": "a number", "floats": "a list of numbers", "ints": "a list of ints",
                "str": "a string", "strs": "a list of strings"}[self.kind]
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"{what} in [{low}, {high}]"
        # words, not ">=": the text also ends the parameter's line in the notebook's cell (no "=" there)
        return what + ("" if low is None else f", at least {low}") + ("" if high is None else f", at most {high}")

    def _fail(self, value) -> ValueError:
        return ValueError(f"parameter {self.name} must be {self.allowed()}, got {value!r}")

    def check(self, value):
        """`value` in the parameter's kind (ints accepted for floats; any sequence of elements for a
        list kind, returned as a tuple), or ValueError naming the parameter and what it accepts."""
        if self.kind not in LIST_KINDS:
            return self._scalar(value, self.kind, shown=value)
        items = () if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__") else tuple(value)
        if not items:
            raise self._fail(value)
        return tuple(self._scalar(v, LIST_KINDS[self.kind], shown=value) for v in items)

    def _scalar(self, value, kind: str, shown):
        """One value of `kind` within the bounds and choices; `shown` is what the error quotes."""
        number = isinstance(value, Real) and not isinstance(value, bool)
        ok = {"bool": isinstance(value, bool), "str": isinstance(value, str),
              "int": number and isinstance(value, Integral),
              "float": number and math.isfinite(value)}[kind]
        if ok and kind in ("int", "float"):
            value = int(value) if kind == "int" else float(value)
            ok = (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)
        if ok and self.choices is not None:
            ok = value in self.choices
        if not ok:
            raise self._fail(shown)
        return value

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
        if self.kind == "strs":
            return self.check([w.strip() for w in words.strip("()[]").split(",") if w.strip()])
        convert = int if self.kind in ("int", "ints") else float
        try:
            if self.kind in LIST_KINDS:
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


PROFILE_LINE = 'profile = "auto"  # smoke, cpu, gpu, paper, or auto (gpu when CUDA is available, else cpu)'
NONE_LINE = "# None means the profile's default; `ensembles list` shows the defaults of every profile."


@dataclass(frozen=True)
class Chapter:
    """One chapter's name and its declared parameters (distinct identifiers, none called "profile").

    Every way a chapter is told its parameters goes through here: `parse` (command-line strings),
    `resolve` (keyword overrides), `resolve_namespace` (a notebook's globals after papermill
    injected its values); `parameters_cell` is the notebook's papermill cell, one line a parameter.
    `minutes` is the expected wall time of one run per profile (see `check_minutes`).
    """

    name: str
    params: tuple[Param, ...]
    minutes: Mapping[str, float | None] | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"chapter must be an identifier-like name, got {self.name!r}")
        params = tuple(self.params)
        names = [p.name for p in params]
        if any(not isinstance(p, Param) for p in params) or len(set(names)) != len(names) or "profile" in names:
            raise ValueError(f"{self.name}: params must be Param objects with distinct names other than 'profile'")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "minutes", check_minutes(self.minutes, self.name))

    def expected_minutes(self, profile: str) -> float | None:
        """The declared wall time of one run under the concrete `profile`, in minutes, or None
        when that profile's run time was never measured."""
        return self.minutes.get(_one_of(profile, "profile", PROFILES))

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' names, in declaration order."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        """The declaration of `name`, or ValueError suggesting the closest name and listing all."""
        for p in self.params:
            if p.name == name:
                return p
        close = difflib.get_close_matches(name, self.names, n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{self.name} has no parameter {name!r}{hint}; its parameters: {', '.join(self.names)}")

    def parse(self, pairs) -> dict[str, Any]:
        """Command-line (NAME, TEXT) pairs as typed, checked values: {"eps": 0.1, ...}."""
        return {name: self.param(name).parse(text) for name, text in pairs}

    def resolve(self, profile: str = "auto", **overrides) -> Config:
        """The frozen, validated Config under `profile`, with `overrides` applied.

        An override of None means "the profile's default" (what a notebook's parameters cell holds).
        ValueError for an unknown profile or parameter, a wrong type or an out-of-range value;
        every override is checked before the profile is resolved (which may import torch).
        """
        check_profile(profile)
        checked = {name: self.param(name).check(value) for name, value in overrides.items() if value is not None}
        concrete = resolve_profile(profile)
        values = {p.name: checked.get(p.name, p.defaults[concrete]) for p in self.params}
        overridden = tuple(p.name for p in self.params if values[p.name] != p.defaults[concrete])
        return Config(self.name, concrete, values, overridden)

    def resolve_namespace(self, namespace: Mapping[str, Any]) -> Config:
        """The Config of a notebook: `profile` and every declared name picked out of `namespace`
        (its `globals()`, holding the parameters cell's values and what papermill injected).

        ValueError naming every declared parameter the namespace lacks: the parameters cell must
        assign each one (`ensembles params CHAPTER --write` writes it from the declaration).
        """
        missing = [n for n in ("profile",) + self.names if n not in namespace]
        if missing:
            raise ValueError(f"{self.name}: the notebook's parameters cell does not assign {', '.join(missing)}; "
                             f"`ensembles params {self.name} --write` writes the cell from the declaration")
        return self.resolve(namespace["profile"], **{n: namespace[n] for n in self.names})

    def parameters_cell(self) -> str:
        """The source of the notebook's papermill `parameters` cell: `profile`, then one
        `name = None  # meaning; allowed` line a parameter (papermill --help-notebook shows them)."""
        lines = [f"{p.name} = None  # {p.meaning}; {p.allowed()}" for p in self.params]
        return "\n".join([PROFILE_LINE, NONE_LINE] + lines)
