"""Strong white-box evaluation: robust accuracy as the per-image worst case over a standard suite
of attacks (as RobustBench / AutoAttack report it), each attack's own figure kept beside it, and a
steps-convergence check (Carlini et al. 2019's checklist: more iterations must not lower it).

Why: the chapters' PGD-20 with 2 random starts overstated robust accuracy; APGD-CE, APGD-DLR,
targeted APGD and Square found figures 3-12 points lower. The suite (pixel units, L-inf):

    "pgd"       the library's `attacks.pgd`, with the chapter's own settings (default 20 steps, 2 restarts)
    "apgd-ce"   APGD on cross-entropy, 100 steps (`attacks.apgd`)
    "apgd-dlr"  APGD on the DLR loss, 100 steps (needs >= 3 classes)
    "apgd-t"    targeted APGD on the top `n_targets` other classes, 100 steps (AutoAttack's standard
                suite uses 9 on CIFAR-10; a cpu-budget run may pass fewer: `describe()` says how many)
    "square"    Square, gradient-free (`n_queries` queries an image): catches masked gradients

`strong_correct` gives per-image masks, `strong_accuracy` their means (the table's numbers), and
a `Suite` (frozen; `canonical()` for cache keys, `describe()` for captions, `digest()`) says
exactly what ran. Used by the robustness tables of the DVERGE, SQ, CLM and SiN chapters.

To compute a suite's examples once and keep them, store each attack's examples on all images with
`cache.adversarial(source, {"name": "apgd", "loss": "dlr", ...}, data)` (apgd, apgd_targeted and
square are attack specs) and AND the per-attack correctness: that is `survivors_only=False`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch
from pydantic import ValidationError
from torch import nn

from ..attacks import apgd, apgd_targeted, pgd, square
from ..attacks.contract import AttackArgumentError
from ..checks import check_inputs
from ..fields import Budget, Count, Seed, explain, validated
from .accuracy import correct

# name -> (attack, keywords the name fixes); the order is the suite's default order: cheap first,
# and every later attack runs only on the images the earlier ones left correct
SUITE_ATTACKS: dict[str, tuple[Callable, dict[str, Any]]] = {
    "pgd": (pgd, {}),
    "apgd-ce": (apgd, {"loss": "ce"}),
    "apgd-dlr": (apgd, {"loss": "dlr"}),
    "apgd-t": (apgd_targeted, {}),
    "square": (square, {}),
}
SUITE_NAMES: tuple[str, ...] = tuple(SUITE_ATTACKS)
STEPPED = tuple(name for name, (fn, _) in SUITE_ATTACKS.items() if "steps" in fn.declaration)
RESULTS = ("clean", "worst")  # strong_correct's own keys beside the attacks' names
LABELS = {"pgd": "PGD", "apgd-ce": "APGD-CE", "apgd-dlr": "APGD-DLR", "apgd-t": "APGD-T", "square": "Square"}
SHOWN = {"restarts": "restarts", "n_targets": "targets", "n_queries": "queries"}  # always in a caption
GIVEN = ("eps", "seed")  # passed to every attack by strong_correct, never a suite setting

Entry = Union[str, tuple[str, dict]]


@dataclass(frozen=True)
class SuiteAttack:
    """One attack of a suite: its name and every other keyword (defaults filled in, sorted; eps
    and seed come from the call)."""

    name: str
    settings: tuple[tuple[str, Any], ...]

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int,
            **override: Any) -> torch.Tensor:
        """x_adv of this attack at budget eps (pixel units); `override` replaces settings (steps)."""
        fn, fixed = SUITE_ATTACKS[self.name]
        return fn(model, x, y, eps=eps, seed=seed, **fixed, **{**dict(self.settings), **override})

    def canonical(self) -> dict:
        return {"name": self.name, **dict(self.settings)}

    def describe(self) -> str:
        """e.g. "PGD-20 (2 restarts)", "APGD-T-100 (9 targets)", "Square (5000 queries)": the steps,
        the counts that size the attack, and any setting that differs from the attack's default."""
        settings = dict(self.settings)
        declared = SUITE_ATTACKS[self.name][0].declaration
        label = LABELS[self.name] + (f"-{settings['steps']}" if "steps" in settings else "")
        notes = [f"{value} {SHOWN[key]}" for key, value in settings.items()
                 if key in SHOWN and not (key == "restarts" and value == 1)]
        notes += [f"{key}={value}" for key, value in settings.items()
                  if key not in SHOWN and key != "steps" and value != declared[key][1]]
        return label + (f" ({', '.join(notes)})" if notes else "")


@dataclass(frozen=True)
class Suite:
    """The attacks `strong_correct` runs, in order: frozen and hashable, so a table caption can show
    it (`describe`) and a cache key can hash it (`canonical`, `digest`)."""

    attacks: tuple[SuiteAttack, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attacks)

    def __getitem__(self, name: str) -> SuiteAttack:
        for entry in self.attacks:
            if entry.name == name:
                return entry
        raise KeyError(f"{name!r} is not in this suite ({', '.join(self.names)})")

    def canonical(self) -> list[dict]:
        """[{"name": ..., <every setting>}, ...] in run order (the order changes the per-attack masks)."""
        return [a.canonical() for a in self.attacks]

    def describe(self) -> str:
        return ", ".join(a.describe() for a in self.attacks)

    def digest(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def suite_attack(entry: Entry) -> SuiteAttack:
    """A name of SUITE_NAMES, or (name, {setting: value}), validated against the attack's own
    signature; ValueError naming the bad name or setting and what it accepts."""
    name, settings = (entry, {}) if isinstance(entry, str) else entry if (
        isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict)) else (None, None)
    if settings is None:
        raise ValueError(f"a suite attack must be a name or (name, settings dict), got {entry!r}")
    if name not in SUITE_ATTACKS:
        raise ValueError(f"attacks: {name!r} is not a suite attack; allowed: {', '.join(map(repr, SUITE_NAMES))}")
    fn, fixed = SUITE_ATTACKS[name]
    clash = [key for key in settings if key in GIVEN or key in fixed]
    if clash:
        fixes = f"; {name!r} fixes {', '.join(f'{k}={v!r}' for k, v in fixed.items())}" if fixed else ""
        raise ValueError(f"attacks[{name!r}]: {', '.join(clash)} cannot be set here (eps and seed are arguments "
                         f"of the call{fixes})")
    not_json = [key for key, value in settings.items() if not isinstance(value, (bool, int, float, str, type(None)))]
    if not_json:
        raise ValueError(f"attacks[{name!r}]: {', '.join(not_json)} must be a number, string or bool (a suite is "
                         "JSON, for cache keys), e.g. loss='cw' rather than a loss function")
    given = {"eps": 0.0, "seed": 0, **fixed, **settings}
    try:
        checked = fn.params.model_validate(given)
    except ValidationError as err:
        raise AttackArgumentError(explain(err, fn.params, given, where=f"attacks[{name!r}]", owner=name)) from None
    kept = {key: value for key, value in checked if key not in GIVEN and key not in fixed and value is not None}
    return SuiteAttack(name, tuple(sorted(kept.items())))


def suite(*entries: Entry) -> Suite:
    """A Suite of the named attacks in this order: each a name ("apgd-ce") or (name, settings),
    e.g. suite(("pgd", {"steps": 20, "restarts": 2}), "apgd-ce", ("square", {"n_queries": 1000}))."""
    if not entries:
        raise ValueError(f"a suite needs at least one attack of {', '.join(map(repr, SUITE_NAMES))}")
    attacks = tuple(suite_attack(e) for e in entries)
    names = [a.name for a in attacks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"attacks: {', '.join(repeated)} named twice (each attack's result is keyed by its name)")
    return Suite(attacks)


def as_suite(attacks: Union[Suite, Sequence[Entry]]) -> Suite:
    """`attacks` as a Suite: a Suite passes; a sequence of entries goes through `suite`."""
    if isinstance(attacks, Suite):
        return attacks
    if isinstance(attacks, str) or not isinstance(attacks, Sequence):
        raise ValueError(f"attacks must be a Suite or a sequence of names from {', '.join(map(repr, SUITE_NAMES))} "
                         f"(or (name, settings) pairs), got {attacks!r}")
    return suite(*attacks)


# the chapters' PGD (20 steps, 2 random starts) first, then AutoAttack's attacks at their published
# 100 iterations and 5000 queries, with APGD-DLR untargeted as well as targeted
DEFAULT_SUITE = suite(("pgd", {"steps": 20, "restarts": 2}), "apgd-ce", "apgd-dlr", "apgd-t", "square")


def _correct_under(entry: SuiteAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, todo: torch.Tensor, *,
                   eps: float, seed: int, batch_size: int, **override: Any) -> torch.Tensor:
    """Bool (N,): False where `todo` holds and the attack fools the model, else True; the attack
    runs only on the images in `todo`, in batches of `batch_size`."""
    ok = torch.ones_like(todo)
    index = todo.nonzero().squeeze(1)
    for i in range(0, len(index), batch_size):
        b = index[i:i + batch_size]
        x_adv = entry.run(model, x[b], y[b], eps=eps, seed=seed, **override)
        ok[b] = correct(model, x_adv, y[b], batch_size)
    return ok


@validated
def strong_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
                   attacks: Any = DEFAULT_SUITE, seed: Seed = 0, batch_size: Count = 256,
                   survivors_only: bool = True) -> dict[str, torch.Tensor]:
    """Which images stay correctly classified under each attack of the suite, and under all of
    them: {"clean": (N,) bool, <attack name>: (N,) bool, ..., "worst": (N,) bool}, at budget `eps`
    (L-inf, pixel units), every attack seeded with `seed`.

    "worst" is the per-image worst case (the AND of "clean" and every attack): the robust accuracy
    to report. Attacks run in the suite's order and, with survivors_only (the default), each only
    on the images every earlier attack left correct: an image once fooled stays out of the worst
    case whatever later attacks do, so skipping it loses nothing and saves time (random starts are
    drawn per batch, so the figures can differ from survivors_only=False by that randomness only;
    both are deterministic under `seed`). An attack's entry is False where the image is wrong clean or
    THIS attack fooled it (so `clean & ~masks[name]` is what it found), True elsewhere, including
    images it was not run on: its mean is an upper bound on the attack's accuracy alone, exact for
    the first attack and for every attack with survivors_only=False (all run on every clean-correct
    image). attacks: a Suite (DEFAULT_SUITE) or names / (name, settings) pairs (see `suite`).
    """
    chosen = as_suite(attacks)
    check_inputs(x, y)
    if len(x) == 0:
        raise ValueError("x is empty: strong_correct needs at least one image")
    clean = correct(model, x, y, batch_size)
    masks = {"clean": clean}
    worst = clean.clone()
    for entry in chosen.attacks:
        masks[entry.name] = _correct_under(entry, model, x, y, worst if survivors_only else clean,
                                           eps=eps, seed=seed, batch_size=batch_size) & clean
        worst &= masks[entry.name]
    masks["worst"] = worst
    return masks


def strong_accuracy(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """The means of `strong_correct`'s masks: accuracies in [0, 1], same keys (the table's row)."""
    return {name: mask.float().mean().item() for name, mask in masks.items()}


@validated
def steps_convergence(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: Budget,
                      steps: Sequence[Count] = (10, 20, 50, 100), attack: Any = "pgd", seed: Seed = 0,
                      batch_size: Count = 256) -> dict[int, float]:
    """Accuracy under ONE attack run with each number of `steps` (same seed; budget eps, pixel
    units): {steps: accuracy in [0, 1]}, in increasing steps. If the last points still fall, the
    reported figure has not converged (`converged`). attack: a name of STEPPED ("pgd", "apgd-ce",
    "apgd-dlr", "apgd-t") or (name, settings) without "steps"; each run uses that attack's own step
    rule for that many steps (pgd: step 2.5 eps / steps unless settings fix `step`). Only
    clean-correct images are attacked. For pgd with one restart, `accuracy_by_steps` reads every
    prefix of one run instead.
    """
    entry = suite_attack(attack)
    if entry.name not in STEPPED:
        raise ValueError(f"attack: {entry.name!r} takes no steps; steps_convergence accepts "
                         f"{', '.join(map(repr, STEPPED))}")
    if not isinstance(attack, str) and "steps" in attack[1]:
        raise ValueError("attack: leave out 'steps' from its settings; steps_convergence sets it from `steps`")
    steps = [int(s) for s in steps]
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be a non-empty increasing sequence of ints >= 1, got {steps}")
    check_inputs(x, y)
    if len(x) == 0:
        raise ValueError("x is empty: steps_convergence needs at least one image")
    clean = correct(model, x, y, batch_size)
    return {k: (_correct_under(entry, model, x, y, clean, eps=eps, seed=seed, batch_size=batch_size, steps=k)
                & clean).float().mean().item() for k in steps}


def converged(curve: dict[int, float], tol: float) -> bool:
    """Whether the accuracies at the two largest step counts of `curve` (from `steps_convergence`)
    differ by less than `tol` (accuracy units, e.g. 0.01 = one point)."""
    if not isinstance(curve, dict) or len(curve) < 2:
        raise ValueError(f"curve must be a dict steps -> accuracy with at least two points, got {curve!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol <= 1:
        raise ValueError(f"tol must be a number in (0, 1] (accuracy units), got {tol!r}")
    last, before = sorted(curve)[-1], sorted(curve)[-2]
    return abs(curve[last] - curve[before]) < tol


def cumulative_accuracy(masks: dict[str, torch.Tensor], chosen: Suite) -> dict[str, float]:
    """Accuracy in [0, 1] as the attacks of `chosen` are added in its order, from `strong_correct`'s
    masks: {"clean": ..., "<first attack>": ..., "+ <next attack>": ..., ...}; the last entry is the
    worst case. With survivors_only (the default) this is the only exact per-attack reading: each
    entry says what that attack found beyond the earlier ones. Used by the robustness tables."""
    missing = [name for name in ("clean", *chosen.names) if name not in masks]
    if missing:
        raise ValueError(f"masks lack {', '.join(missing)}: pass the masks strong_correct made with this suite")
    ok = masks["clean"].clone()
    row = {"clean": ok.float().mean().item()}
    for i, entry in enumerate(chosen.attacks):
        ok &= masks[entry.name]
        row[("+ " if i else "") + entry.describe()] = ok.float().mean().item()
    return row


def gradient_worst(masks: dict[str, torch.Tensor], chosen: Suite) -> torch.Tensor:
    """Per image (bool), correct under every gradient attack of `chosen` (all but Square): the
    figure a gradient-free attack is compared with to look for masked gradients."""
    ok = masks["clean"].clone()
    for name in chosen.names:
        if name != "square":
            ok &= masks[name]
    return ok


# Verdicts of `attack_check`, in the order it tests them
MASKING, NOT_CONVERGED, SUITE_MISSES, SOUND = ("Square finds more: gradients may be masked",
                                               "still falling at the longest run",
                                               "the long CW-PGD beats the suite", "converged, no sign of masking")


def attack_check(worst: torch.Tensor, gradient: torch.Tensor, square_alone: torch.Tensor | None,
                 curve: dict[int, float], tol: float = 0.02) -> dict[str, Any]:
    """One row of a chapter's attack-strength table at one budget: the suite's worst case, the
    gradient attacks' worst case, Square alone (a gradient-free upper bound; None when it was not
    run alone), the steps-convergence curve's last point and whether it converged, and a verdict
    (accuracies in [0, 1]; `tol` in accuracy units, 0.02 = two points):

    - MASKING when Square finds more than the gradient attacks by more than tol: run last in the
      suite (worst below gradient) or alone (Square alone below gradient); a gradient-free
      attack should not beat gradient ones (Carlini et al. 2019);
    - NOT_CONVERGED when the curve's last two points differ by tol or more;
    - SUITE_MISSES when the curve's last point is below the suite's worst case by more than tol;
    - SOUND otherwise.
    """
    shapes = {tuple(m.shape) for m in (worst, gradient, square_alone) if m is not None}
    if len(shapes) != 1:
        raise ValueError(f"worst, gradient and square_alone must be masks over the same images, got shapes "
                         f"{sorted(shapes)}")
    acc = {"worst case": worst.float().mean().item(), "gradient attacks": gradient.float().mean().item(),
           "Square alone": float("nan") if square_alone is None else square_alone.float().mean().item()}
    longest = max(curve)
    settled = converged(curve, tol)
    square_beats = acc["worst case"] < acc["gradient attacks"] - tol or (
        square_alone is not None and acc["Square alone"] < acc["gradient attacks"] - tol)
    verdict = (MASKING if square_beats else
               NOT_CONVERGED if not settled else
               SUITE_MISSES if curve[longest] < acc["worst case"] - tol else SOUND)
    return {**acc, "longest run": curve[longest], "converged": settled, "verdict": verdict}
