"""Each chapter's results record, `<book>/results/<chapter>.json`: the claims it checked.

    {"chapter": "tour", "profile": "cpu", "dataset": "fashion_mnist", "wall_time_s": 212.4,
     "claims": [{"id": "pgd_vs_fgsm", "claim": "...", "paper": "...", "ours": "...",
                 "holds": true, "note": "...", "rule": "...",
                 "statistic": {"test": "exact McNemar", "difference": -0.31, "interval": [-0.34, -0.28],
                               "p_value": 1e-90, "n": 1000, "n_to_decide": null, "alpha": 0.05, ...},
                 "parts": [...]}]}

`claim` is the paper's statement in our words, `paper` and `ours` the two numbers or short texts
side by side ("—" in `paper` for a sanity check no paper states), `holds` true (holds), false
(does not hold) or null (undecided: `note` says why, and how many images would decide it). The
keys `rule` (the declared rule in words), `statistic` (the test that decided it: see
`STATISTIC_KEYS`) and `parts` (one statistic per part of a claim with several, each with its
`part` label and `verdict`) come from `claims.decide`; records written before them (without these
keys) still load. The last cell of every chapter writes one (`claims.decide_and_write`); the
book's claims directives read them all with `load_results`.

The folder is `$ENSEMBLES_BOOK_DIR/results`. The runner sets that variable to the book (for the
profile's own run) or to the run's folder; without it (a plain papermill run, a notebook opened by
hand) results go to `data_root()/runs/unfiled/results`, so nothing but the runner writes into the
checkout's `book/`. Imports no torch.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Integral, Real
from pathlib import Path

from .paths import atomic_path, data_root

BOOK_DIR_ENV = "ENSEMBLES_BOOK_DIR"
UNFILED = ("runs", "unfiled")  # under the data root: where a run outside the runner writes
RECORD_KEYS = ("chapter", "profile", "dataset", "wall_time_s", "claims")
CLAIM_KEYS = ("id", "claim", "paper", "ours", "holds", "note")
OPTIONAL_CLAIM_KEYS = ("rule", "statistic", "parts")
VERDICTS = ("holds", "does not hold", "undecided")
# a statistic's keys: what it may hold and the check of each value
STATISTIC_KEYS = ("test", "difference", "rate", "ratio", "interval", "p_value", "n", "n_to_decide", "alpha", "rule",
                  "discordant", "part", "verdict", "leans")


def book_dir() -> Path:
    """Where a chapter's executed notebook and results go: $ENSEMBLES_BOOK_DIR if set (the runner
    sets it to the book or to a run folder), else `data_root()/runs/unfiled`, never the checkout's
    `book/` by default."""
    override = os.environ.get(BOOK_DIR_ENV)
    return Path(override).expanduser() if override else data_root().joinpath(*UNFILED)


def results_dir() -> Path:
    """book_dir()/results: one JSON record per chapter."""
    return book_dir() / "results"


def _text_or_number(value, where: str):
    """A claim's `paper`/`ours`: a string, or a finite number (numpy scalars become Python floats)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value)):
        return float(value)
    raise ValueError(f"{where} must be a string or a finite number, got {value!r}")


def _check_claim(claim, index: int) -> dict:
    where = f"claims[{index}]"
    if not isinstance(claim, dict):
        raise ValueError(f"{where} must be a dict with keys {', '.join(CLAIM_KEYS)}, got {claim!r}")
    missing, unknown = set(CLAIM_KEYS) - set(claim), set(claim) - set(CLAIM_KEYS)
    unknown -= set(OPTIONAL_CLAIM_KEYS)
    if missing or unknown:
        raise ValueError(f"{where} must have exactly the keys {', '.join(CLAIM_KEYS)} (and optionally "
                         f"{', '.join(OPTIONAL_CLAIM_KEYS)}); missing {sorted(missing)}, unknown {sorted(unknown)}")
    for key in ("id", "claim"):
        if not isinstance(claim[key], str) or not claim[key].strip():
            raise ValueError(f"{where}['{key}'] must be a non-empty string, got {claim[key]!r}")
    if not isinstance(claim["note"], str):
        raise ValueError(f"{where}['note'] must be a string (may be empty), got {claim['note']!r}")
    holds = claim["holds"]
    if hasattr(holds, "item") and not isinstance(holds, bool):  # numpy / torch booleans
        holds = holds.item()
    if holds is not None and not isinstance(holds, bool):
        raise ValueError(f"{where}['holds'] must be True, False or None (undecided), got {holds!r}")
    if holds is None and not claim["note"].strip():
        raise ValueError(f"{where}: holds is None, so 'note' must say why the run cannot decide it")
    checked = {"id": claim["id"], "claim": claim["claim"],
               "paper": _text_or_number(claim["paper"], f"{where}['paper']"),
               "ours": _text_or_number(claim["ours"], f"{where}['ours']"), "holds": holds, "note": claim["note"]}
    if "rule" in claim:
        if not isinstance(claim["rule"], str):
            raise ValueError(f"{where}['rule'] must be a string (the declared rule in words), got {claim['rule']!r}")
        checked["rule"] = claim["rule"]
    if "statistic" in claim:
        checked["statistic"] = None if claim["statistic"] is None else \
            _check_statistic(claim["statistic"], f"{where}['statistic']")
    if "parts" in claim:
        parts = claim["parts"]
        if not isinstance(parts, (list, tuple)):
            raise ValueError(f"{where}['parts'] must be a list of statistics, got {parts!r}")
        checked["parts"] = [_check_statistic(p, f"{where}['parts'][{i}]") for i, p in enumerate(parts)]
    return checked


def _finite(value, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if hasattr(value, "item") and not isinstance(value, (bool, str)):  # numpy scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{where} must be a finite number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _count(value, where: str, minimum: int = 1) -> int:
    if hasattr(value, "item") and not isinstance(value, (bool, str)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{where} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_statistic(statistic, where: str) -> dict:
    """A claim's statistic (or one part's) as clean JSON: `test` (str) plus any of STATISTIC_KEYS."""
    if not isinstance(statistic, dict) or not isinstance(statistic.get("test"), str) or not statistic["test"]:
        raise ValueError(f"{where} must be a dict with a non-empty 'test' name, got {statistic!r}")
    unknown = sorted(set(statistic) - set(STATISTIC_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; a statistic may hold {', '.join(STATISTIC_KEYS)}")
    out = {}
    for key, value in statistic.items():
        at = f"{where}['{key}']"
        if key in ("test", "rule", "part"):
            if not isinstance(value, str):
                raise ValueError(f"{at} must be a string, got {value!r}")
            out[key] = value
        elif key in ("verdict", "leans"):
            if value not in VERDICTS:
                raise ValueError(f"{at} must be one of {', '.join(map(repr, VERDICTS))}, got {value!r}")
            out[key] = value
        elif key in ("difference", "rate", "ratio"):
            out[key] = _finite(value, at)
        elif key == "p_value":
            out[key] = None if value is None else _finite(value, at, 0.0, 1.0)
        elif key == "alpha":
            out[key] = _finite(value, at, 0.0, 0.5)
        elif key == "n":
            out[key] = _count(value, at)
        elif key == "n_to_decide":
            out[key] = None if value is None else _count(value, at)
        elif key == "interval":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"{at} must be [low, high], got {value!r}")
            low, high = (_finite(v, at) for v in value)
            if low > high:
                raise ValueError(f"{at} must be [low, high] with low <= high, got {value!r}")
            out[key] = [low, high]
        elif key == "discordant":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"{at} must be [only a right, only b right], got {value!r}")
            out[key] = [_count(v, at, 0) for v in value]
    return out


def validate(record) -> dict:
    """`record` checked against the results format, as a clean JSON-able dict (ValueError naming
    the first problem)."""
    if not isinstance(record, dict) or set(record) != set(RECORD_KEYS):
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"a results record must have exactly the keys {', '.join(RECORD_KEYS)}, got {keys}")
    for key in ("chapter", "profile", "dataset"):
        if not isinstance(record[key], str) or not record[key]:
            raise ValueError(f"{key} must be a non-empty string, got {record[key]!r}")
    wall = record["wall_time_s"]
    if hasattr(wall, "item") and not isinstance(wall, (bool, str)):
        wall = wall.item()
    if isinstance(wall, bool) or not isinstance(wall, Real) or not math.isfinite(wall) or wall < 0:
        raise ValueError(f"wall_time_s (seconds) must be a number >= 0, got {record['wall_time_s']!r}")
    claims = record["claims"]
    if not isinstance(claims, (list, tuple)) or not claims:
        raise ValueError(f"claims must be a non-empty list of claim dicts, got {claims!r}")
    checked = [_check_claim(c, i) for i, c in enumerate(claims)]
    ids = [c["id"] for c in checked]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claims: ids must be distinct, got {ids}")
    return {"chapter": record["chapter"], "profile": record["profile"], "dataset": record["dataset"],
            "wall_time_s": round(float(wall), 1), "claims": checked}


def write_results(chapter: str, profile: str, dataset: str, wall_time_s: float, claims: list[dict],
                  folder: Path | str | None = None) -> Path:
    """Validate and write `<folder>/<chapter>.json` atomically (folder defaults to results_dir()).

    Returns the path written. The last cell of every chapter calls it.
    """
    record = validate({"chapter": chapter, "profile": profile, "dataset": dataset,
                       "wall_time_s": wall_time_s, "claims": list(claims)})
    target = Path(folder if folder is not None else results_dir()) / f"{chapter}.json"
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return target


def load_results(folder: Path | str | None = None) -> list[dict]:
    """Every `<folder>/*.json` record (folder defaults to results_dir()), validated, sorted by
    chapter; records with and without the statistics keys both load. A malformed file is a
    ValueError naming it. The book's claims directives read these."""
    folder = Path(folder if folder is not None else results_dir())
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(validate(json.loads(path.read_text())))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return sorted(records, key=lambda r: r["chapter"])
