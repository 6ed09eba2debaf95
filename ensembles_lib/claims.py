"""A chapter's claims, declared before anything runs, and the statistics that decide them.

A chapter module declares `CLAIMS = (Claim(...), ...)` beside its parameters: the paper's statement
in our words, the paper's value ("—" when the paper has none), the rule in words and a test naming
the measured quantities it compares. After the run, the notebook's last cell maps each quantity to
what it measured and calls `decide_and_write` (or `decide`, then `results.write_results`):

    records = claims.decide(chapter.CLAIMS, {"clean Baseline": correct(baseline, x, y), ...})

A measured quantity is a per-image correctness vector (bool; a numpy array, a list or a torch
tensor), a per-image score in [0, 1] (float vector, for the paired bootstrap), a `Rate` (a
proportion and the number of images behind it), a plain number (only for `Point`), or
`NotMeasured(reason)` when this run did not measure it (the claim is then undecided).

The tests, each on one or two quantities:

- `Paired(a, b, above=c | below=c | within=m)`: a - b on the same images. Exact McNemar on the
  discordant pairs for correctness vectors (the interval is the Clopper-Pearson interval of the
  discordant split, scaled to a difference of accuracies, so it excludes 0 exactly when the
  McNemar p-value is below alpha, and widened for the uncertain share of discordant images); a seeded paired bootstrap of the mean difference for scores.
- `Threshold(q, above=t | below=t)`: a rate against a threshold, by its Wilson interval.
- `Ratio(a, b, above=r | below=r)`: two rates on different images, by the Katz log interval of
  their ratio.
- `Point(a, b, above=c | below=c)`: two numbers with no sampling statistic (a chapter keeps only
  their means); decided by the point difference, and recorded as such.
- `All(part, ...)` and `Every(a_group, b_group, above=c)`: a claim with several parts holds when
  every part holds, does not hold when any part clearly fails, and is undecided otherwise.

A part holds when its interval lies wholly on the claimed side of the bound, does not hold when it
lies wholly on the other side, and is undecided when it straddles the bound; an undecided record
says roughly how many images would decide it if the observed effect stayed as it is (the interval
shrinks as 1/sqrt(n)). Numbers only; nothing here imports torch. Used by every chapter's claims cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Mapping, Sequence

import numpy as np

from .results import write_results

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"
VERDICT_HOLDS = {HOLDS: True, FAILS: False, UNDECIDED: None}
BOOTSTRAP_SAMPLES = 4000


# --------------------------------------------------------------------------------- measured values


@dataclass(frozen=True)
class Rate:
    """A proportion measured on `n` images (e.g. a transfer rate, an accuracy kept only as a mean)."""
    value: float
    n: int

    def __post_init__(self):
        if not (isinstance(self.value, Real) and 0 <= float(self.value) <= 1):
            raise ValueError(f"Rate.value must be a number in [0, 1], got {self.value!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 1:
            raise ValueError(f"Rate.n must be an int >= 1 (images), got {self.n!r}")

    @property
    def successes(self) -> int:
        return int(round(float(self.value) * int(self.n)))


@dataclass(frozen=True)
class NotMeasured:
    """A quantity this run did not measure; `reason` says why (and the claim is undecided)."""
    reason: str


def _vector(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"measured[{name!r}] must be a non-empty 1-D per-image vector, got shape {array.shape}")
    if array.dtype != bool:
        array = array.astype(float)
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise ValueError(f"measured[{name!r}] must hold per-image booleans or scores in [0, 1]")
    return array


def _rate(value: Any, name: str) -> Rate:
    if isinstance(value, Rate):
        return value
    array = _vector(value, name)
    if array.dtype != bool:
        raise ValueError(f"measured[{name!r}] must be a Rate or a per-image boolean vector for a rate test")
    return Rate(float(array.mean()), len(array))


def _value(value: Any) -> float:
    if isinstance(value, Rate):
        return float(value.value)
    if isinstance(value, Real):
        return float(value)
    return float(_vector(value, "value").mean())


# --------------------------------------------------------------------------------- one part's outcome


@dataclass
class Outcome:
    """What one test found: its verdict and the statistic recorded beside it."""
    verdict: str
    statistic: dict
    ours: str
    values: dict = field(default_factory=dict)  # quantity -> its measured value, for a claim's "ours"


def _side(low: float, high: float, bound: float, above: bool) -> str:
    if above:
        return HOLDS if low > bound else FAILS if high < bound else UNDECIDED
    return HOLDS if high < bound else FAILS if low > bound else UNDECIDED


def _n_to_decide(n: int, estimate: float, low: float, high: float, bounds: Sequence[float]) -> int | None:
    """Images at which the interval would clear the nearest bound if the estimate stayed put."""
    nearest = min(bounds, key=lambda b: abs(estimate - b))
    distance = abs(estimate - nearest)
    half = (estimate - low) if estimate > nearest else (high - estimate)
    if distance <= 1e-12 or half <= 0:
        return None
    return int(math.ceil(n * (half / distance) ** 2))


def _bound(above, below, within, what: str) -> tuple[str, float]:
    given = [(k, v) for k, v in (("above", above), ("below", below), ("within", within)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"{what} needs exactly one of above=, below= or within=, got {[k for k, _ in given] or 'none'}")
    kind, value = given[0]
    if not isinstance(value, Real) or not math.isfinite(value) or (kind == "within" and value <= 0):
        raise ValueError(f"{what}: {kind} must be a finite number" + (" > 0" if kind == "within" else "")
                         + f", got {value!r}")
    return kind, float(value)


def _leans(kind: str, bound: float, estimate: float) -> str:
    """The verdict an undecided part leans to: where its estimate sits against the bound."""
    if kind == "within":
        return HOLDS if abs(estimate) < bound else FAILS
    return HOLDS if (estimate > bound) == (kind == "above") else FAILS


def _decide_interval(kind: str, bound: float, estimate: float, low: float, high: float, n: int) -> tuple[str, int | None]:
    if kind == "within":
        if -bound < low and high < bound:
            verdict = HOLDS
        elif low > bound or high < -bound:
            verdict = FAILS
        else:
            verdict = UNDECIDED
        bounds = (-bound, bound)
    else:
        verdict = _side(low, high, bound, kind == "above")
        bounds = (bound,)
    return verdict, (_n_to_decide(n, estimate, low, high, bounds) if verdict == UNDECIDED else None)


def _rule(kind: str, bound: float, what: str) -> str:
    if kind == "within":
        return f"|{what}| < {bound:g}"
    return f"{what} {'>' if kind == 'above' else '<'} {bound:g}"


# --------------------------------------------------------------------------------- the tests


def _scipy_stats():
    # imported on first use: chapter modules declare claims, and `ensembles list` should not pay for scipy
    from scipy import stats
    return stats


def mcnemar(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> dict:
    """Exact McNemar test of paired correctness vectors a, b (same images): accuracy difference
    a - b, its 1 - alpha interval (Clopper-Pearson on the discordant split, scaled by the share of
    discordant images, and outwards by that share's upper Clopper-Pearson bound), the two-sided
    exact p-value (twice the smaller binomial tail) and the counts."""
    stats = _scipy_stats()
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = len(a)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    m = only_a + only_b
    difference = (only_a - only_b) / n
    # the share of discordant images is itself uncertain: widen each end with its upper bound, so that
    # a handful of discordant pairs cannot make a tight interval (the sign of each end, hence the
    # agreement with the p-value, does not change)
    share_high = stats.binomtest(m, n).proportion_ci(1 - alpha, method="exact").high
    if m == 0:
        low, high, p_value = -share_high, share_high, 1.0
    else:
        ci = stats.binomtest(only_a, m, 0.5).proportion_ci(1 - alpha, method="exact")
        low, high = 2 * ci.low - 1, 2 * ci.high - 1
        low *= share_high if low < 0 else m / n
        high *= share_high if high > 0 else m / n
        tail = min(stats.binom.cdf(only_a, m, 0.5), stats.binom.sf(only_a - 1, m, 0.5))
        p_value = float(min(1.0, 2 * tail))
    return {"test": "exact McNemar", "difference": difference, "interval": [float(low), float(high)],
            "p_value": p_value, "n": n, "discordant": [only_a, only_b]}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, seed: int = 0,
                     samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """Seeded paired bootstrap of the mean of a - b over images (per-image scores): the
    difference, its percentile 1 - alpha interval and a two-sided p-value (twice the smaller share
    of resampled means on either side of 0)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    tail = min(np.mean(means <= 0), np.mean(means >= 0))
    return {"test": f"paired bootstrap ({samples} resamples)", "difference": float(d.mean()),
            "interval": [float(low), float(high)], "p_value": float(min(1.0, 2 * tail)), "n": n}


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of a proportion successes / n at level 1 - alpha."""
    stats = _scipy_stats()
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"wilson needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = stats.norm.ppf(1 - alpha / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def katz_ratio(a: Rate, b: Rate, alpha: float = 0.05) -> dict:
    """The ratio of two independent proportions a / b with its Katz log interval (0.5 added to
    every count when one is 0)."""
    stats = _scipy_stats()
    ka, kb, na, nb = a.successes, b.successes, int(a.n), int(b.n)
    if ka == 0 or kb == 0:
        ka, kb, na, nb = ka + 0.5, kb + 0.5, na + 0.5, nb + 0.5
    ratio = (ka / na) / (kb / nb)
    z = stats.norm.ppf(1 - alpha / 2)
    se = math.sqrt(max(0.0, 1 / ka - 1 / na + 1 / kb - 1 / nb))
    low, high = ratio * math.exp(-z * se), ratio * math.exp(z * se)
    log_p = 2 * stats.norm.sf(abs(math.log(ratio)) / se) if se > 0 else 1.0
    return {"test": "Katz log ratio", "ratio": ratio, "interval": [low, high], "p_value": float(log_p),
            "n": min(int(a.n), int(b.n))}


class Test:
    """One declared comparison; `run(measured, alpha, seed)` gives its Outcome."""

    def quantities(self) -> tuple[str, ...]:
        raise NotImplementedError

    def run(self, measured: Mapping[str, Any], alpha: float, seed: int) -> Outcome:
        raise NotImplementedError


@dataclass(frozen=True)
class Paired(Test):
    """a - b on the same images (per-image correctness: exact McNemar; per-image scores: paired
    bootstrap). Exactly one of above= (a - b > c), below= (a - b < c), within= (|a - b| < m)."""
    a: str
    b: str
    above: float | None = None
    below: float | None = None
    within: float | None = None

    def __post_init__(self):
        _bound(self.above, self.below, self.within, f"Paired({self.a!r}, {self.b!r})")

    def quantities(self):
        return (self.a, self.b)

    def run(self, measured, alpha, seed):
        a, b = _vector(measured[self.a], self.a), _vector(measured[self.b], self.b)
        if len(a) != len(b):
            raise ValueError(f"Paired: {self.a!r} has {len(a)} images and {self.b!r} {len(b)}; a paired test "
                             "needs the same images")
        statistic = mcnemar(a, b, alpha) if a.dtype == bool and b.dtype == bool else \
            paired_bootstrap(a, b, alpha, seed)
        kind, bound = _bound(self.above, self.below, self.within, "Paired")
        low, high = statistic["interval"]
        verdict, n_more = _decide_interval(kind, bound, statistic["difference"], low, high, statistic["n"])
        statistic.update(rule=_rule(kind, bound, f"{self.a} - {self.b}"), n_to_decide=n_more)
        if verdict == UNDECIDED:
            statistic["leans"] = _leans(kind, bound, statistic["difference"])
        return Outcome(verdict, statistic, f"{self.a} {a.mean():.3f} vs {self.b} {b.mean():.3f}",
                       {self.a: float(a.mean()), self.b: float(b.mean())})


@dataclass(frozen=True)
class Threshold(Test):
    """A rate against a threshold by its Wilson interval: above= (rate > t) or below= (rate < t)."""
    quantity: str
    above: float | None = None
    below: float | None = None

    def __post_init__(self):
        _bound(self.above, self.below, None, f"Threshold({self.quantity!r})")

    def quantities(self):
        return (self.quantity,)

    def run(self, measured, alpha, seed):
        stats = _scipy_stats()
        rate = _rate(measured[self.quantity], self.quantity)
        kind, bound = _bound(self.above, self.below, None, "Threshold")
        low, high = wilson(rate.successes, int(rate.n), alpha)
        p_value = stats.binomtest(rate.successes, int(rate.n), min(max(bound, 1e-9), 1 - 1e-9)).pvalue
        verdict, n_more = _decide_interval(kind, bound, float(rate.value), low, high, int(rate.n))
        statistic = {"test": "Wilson interval", "rate": float(rate.value), "interval": [low, high],
                     "p_value": float(p_value), "n": int(rate.n), "rule": _rule(kind, bound, self.quantity),
                     "n_to_decide": n_more}
        if verdict == UNDECIDED:
            statistic["leans"] = _leans(kind, bound, float(rate.value))
        return Outcome(verdict, statistic, f"{self.quantity} {float(rate.value):.3f}", {self.quantity: float(rate.value)})


@dataclass(frozen=True)
class Ratio(Test):
    """a / b of two rates measured on different images (Katz log interval): above= or below= r."""
    a: str
    b: str
    above: float | None = None
    below: float | None = None

    def __post_init__(self):
        kind, bound = _bound(self.above, self.below, None, f"Ratio({self.a!r}, {self.b!r})")
        if bound <= 0:
            raise ValueError(f"Ratio({self.a!r}, {self.b!r}): {kind} must be a ratio > 0, got {bound!r}")

    def quantities(self):
        return (self.a, self.b)

    def run(self, measured, alpha, seed):
        a, b = _rate(measured[self.a], self.a), _rate(measured[self.b], self.b)
        kind, bound = _bound(self.above, self.below, None, "Ratio")
        statistic = katz_ratio(a, b, alpha)
        low, high = statistic["interval"]
        # decided on the log scale, where the interval is symmetric
        verdict, n_more = _decide_interval(kind, math.log(bound), math.log(statistic["ratio"]), math.log(low),
                                           math.log(high), statistic["n"])
        statistic.update(rule=_rule(kind, bound, f"{self.a} / {self.b}"), n_to_decide=n_more)
        if verdict == UNDECIDED:
            statistic["leans"] = _leans(kind, math.log(bound), math.log(statistic["ratio"]))
        return Outcome(verdict, statistic, f"{self.a} {float(a.value):.3f} vs {self.b} {float(b.value):.3f}",
                       {self.a: float(a.value), self.b: float(b.value)})


@dataclass(frozen=True)
class Point(Test):
    """a - b of two numbers with no sampling statistic (only their means were kept): decided by
    the point difference alone, and recorded as such."""
    a: str
    b: str
    above: float | None = None
    below: float | None = None

    def __post_init__(self):
        _bound(self.above, self.below, None, f"Point({self.a!r}, {self.b!r})")

    def quantities(self):
        return (self.a, self.b)

    def run(self, measured, alpha, seed):
        a, b = _value(measured[self.a]), _value(measured[self.b])
        kind, bound = _bound(self.above, self.below, None, "Point")
        difference = a - b
        statistic = {"test": "point comparison (no interval: only means measured)",
                     "rule": _rule(kind, bound, f"{self.a} - {self.b}")}
        if not math.isfinite(difference):  # a metric undefined on this run (e.g. no image kept)
            return Outcome(UNDECIDED, statistic, f"{self.a} {a:.3f} vs {self.b} {b:.3f}")
        statistic["difference"] = difference
        verdict = HOLDS if (difference > bound if kind == "above" else difference < bound) else FAILS
        return Outcome(verdict, statistic, f"{self.a} {a:.3f} vs {self.b} {b:.3f}", {self.a: a, self.b: b})


def _combine(outcomes: list[Outcome], labels: list[str]) -> tuple[str, dict, list[dict]]:
    verdicts = [o.verdict for o in outcomes]
    verdict = FAILS if FAILS in verdicts else UNDECIDED if UNDECIDED in verdicts else HOLDS
    parts = [{"part": label, "verdict": o.verdict, **o.statistic} for label, o in zip(labels, outcomes)]
    deciding = [p for p in parts if p["verdict"] == verdict]
    if verdict == UNDECIDED:  # the part that needs the most images says how many would decide the claim
        key = max(deciding, key=lambda p: p.get("n_to_decide") or 0)
    else:
        key = deciding[0]
    return verdict, dict(key), parts


@dataclass(frozen=True)
class All(Test):
    """Several parts, every one claimed: holds when all hold, does not hold when any clearly fails.
    `labels` name the parts in the record (default: each part's rule)."""
    parts: tuple[Test, ...]
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.parts or not all(isinstance(p, Test) for p in self.parts):
            raise ValueError("All needs at least one part, each a test (Paired, Threshold, Ratio, Point)")
        if self.labels and len(self.labels) != len(self.parts):
            raise ValueError(f"All: {len(self.labels)} labels for {len(self.parts)} parts")

    def quantities(self):
        return tuple(dict.fromkeys(q for p in self.parts for q in p.quantities()))

    def run(self, measured, alpha, seed):
        outcomes = [p.run(measured, alpha, seed) for p in self.parts]
        labels = list(self.labels) or [o.statistic.get("rule", "") for o in outcomes]
        verdict, statistic, parts = _combine(outcomes, labels)
        statistic["parts"] = parts
        values = {k: v for o in outcomes for k, v in o.values.items()}  # each quantity once, in order
        return Outcome(verdict, statistic, ", ".join(f"{k} {v:.3f}" for k, v in values.items()), values)


@dataclass(frozen=True)
class Every(Test):
    """Every quantity of `a` against every quantity of `b` on the same images (paired), e.g. every
    adversarially trained model more robust than every standard one: All of the pairs."""
    a: tuple[str, ...]
    b: tuple[str, ...]
    above: float = 0.0
    name_a: str = "a"
    name_b: str = "b"

    def quantities(self):
        return (*self.a, *self.b)

    def run(self, measured, alpha, seed):
        pairs = [Paired(x, y, above=self.above) for x in self.a for y in self.b]
        outcomes = [p.run(measured, alpha, seed) for p in pairs]
        verdict, statistic, parts = _combine(outcomes, [f"{p.a} vs {p.b}" for p in pairs])
        statistic["parts"] = parts
        va, vb = ([_value(measured[q]) for q in group] for group in (self.a, self.b))
        ours = f"{self.name_a} {min(va):.3f}–{max(va):.3f} vs {self.name_b} {min(vb):.3f}–{max(vb):.3f}"
        return Outcome(verdict, statistic, ours)


# --------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One claim of a chapter, declared before the run: `id`, the paper's statement in our words
    (`claim`), the paper's value (`paper`, "—" when it states none), the declared `rule` in words
    (how we read the paper's words as a test), the `test`, and its level `alpha`."""
    id: str
    claim: str
    paper: str | float
    rule: str
    test: Test
    alpha: float = 0.05

    def __post_init__(self):
        for name in ("id", "claim", "rule"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Claim.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.test, Test):
            raise ValueError(f"Claim {self.id!r}: test must be a Paired, Threshold, Ratio, Point, All or Every")
        if not isinstance(self.alpha, Real) or not 0 < self.alpha < 0.5:
            raise ValueError(f"Claim {self.id!r}: alpha must be a number in (0, 0.5), got {self.alpha!r}")


def decide(claims: Sequence[Claim], measured: Mapping[str, Any], notes: Mapping[str, str] | None = None,
           setting: str = "", seed: int = 0) -> list[dict]:
    """The results records of `claims` (see `results.py`) from the `measured` quantities.

    Every quantity a claim names must be in `measured` (a `NotMeasured` there makes that claim
    undecided, its reason the note), and every key of `measured` must be named by some claim, so
    a misspelt name is a ValueError naming it. `notes`: claim id -> text for that claim's note;
    `setting` (dataset, budget, images ...) ends every note. `seed` seeds the paired bootstrap."""
    ids = [c.id for c in claims]
    unknown_notes = sorted(set(notes or {}) - set(ids))
    notes = {i: "; ".join(t for t in ((notes or {}).get(i, ""), setting) if t) for i in ids}
    named = {q for c in claims for q in c.test.quantities()}
    unknown = sorted(set(measured) - named)
    if unknown:
        raise ValueError(f"measured holds {unknown}, which no claim names; the claims compare {sorted(named)}")
    if unknown_notes:
        raise ValueError(f"notes name claims {unknown_notes}; the claims are {ids}")
    records = []
    for claim in claims:
        missing = [q for q in claim.test.quantities() if q not in measured]
        if missing:
            raise ValueError(f"claim {claim.id!r} compares {missing}, which measured does not hold "
                             "(give NotMeasured(reason) for a quantity this run does not measure)")
        absent = [measured[q].reason for q in claim.test.quantities() if isinstance(measured[q], NotMeasured)]
        extra = notes.get(claim.id, "")
        if absent:
            note = "; ".join(dict.fromkeys(absent))
            records.append({"id": claim.id, "claim": claim.claim, "paper": claim.paper, "ours": "not measured",
                            "holds": None, "note": "; ".join(t for t in (note, extra) if t), "rule": claim.rule,
                            "statistic": None})
            continue
        outcome = claim.test.run(measured, claim.alpha, seed)
        statistic = {k: v for k, v in outcome.statistic.items() if k != "parts"}
        parts = outcome.statistic.get("parts")
        note = extra
        if outcome.verdict == UNDECIDED:
            n_more = statistic.get("n_to_decide")
            leans = {HOLDS: "holds", FAILS: "does not hold"}.get(statistic.get("leans"), "")
            why = (f"undecided at alpha {claim.alpha:g}: if the observed effect held, about {n_more:,} images would "
                   f"decide it ({leans})" if n_more else f"undecided at alpha {claim.alpha:g}: the observed effect sits on "
                   "the bound, so no sample size would decide it")
            note = "; ".join(t for t in (why, extra) if t)
        record = {"id": claim.id, "claim": claim.claim, "paper": claim.paper, "ours": outcome.ours,
                  "holds": VERDICT_HOLDS[outcome.verdict], "note": note, "rule": claim.rule,
                  "statistic": {**statistic, "alpha": claim.alpha}}
        if parts:
            record["parts"] = parts
        records.append(record)
    return records


def decide_and_write(chapter: str, profile: str, dataset: str, wall_time_s: float, claims: Sequence[Claim],
                     measured: Mapping[str, Any], notes: Mapping[str, str] | None = None, setting: str = "",
                     seed: int = 0) -> list[dict]:
    """`decide`, then `results.write_results`: the one call of a chapter's claims cell. Returns
    the records (the path written is `results.results_dir() / f"{chapter}.json"`)."""
    records = decide(claims, measured, notes, setting, seed)
    write_results(chapter, profile, dataset, wall_time_s, records)
    return records
