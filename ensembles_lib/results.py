"""Each chapter's results record, `book/results/<chapter>.json`: the claims it checked.

    {"chapter": "tour", "profile": "cpu", "dataset": "fashion_mnist", "wall_time_s": 212.4,
     "claims": [{"id": "pgd_vs_fgsm", "claim": "...", "paper": "...", "ours": "...",
                 "holds": true, "note": "..."}]}

`claim` is the paper's statement in our words, `paper` and `ours` the two numbers or short texts
side by side ("—" in `paper` for a sanity check no paper states), `holds` true, false, or null
when our run cannot decide it (`note` says why). The last cell of every chapter writes one with
`write_results`; the intro's summary table reads them all with `load_results`.

The folder is `book/results` in the checkout, or `$ENSEMBLES_BOOK_DIR/results` when the runner
executes a chapter into another book folder (tests do), so a test run never touches the book.
"""

from __future__ import annotations

import json
import math
import os
from numbers import Integral, Real
from pathlib import Path

from .checks import check_number
from .paths import atomic_path, checkout_root

BOOK_DIR_ENV = "ENSEMBLES_BOOK_DIR"
RECORD_KEYS = ("chapter", "profile", "dataset", "wall_time_s", "claims")
CLAIM_KEYS = ("id", "claim", "paper", "ours", "holds", "note")


def book_dir() -> Path:
    """Where executed chapters go: $ENSEMBLES_BOOK_DIR if set, else `<checkout>/book`."""
    override = os.environ.get(BOOK_DIR_ENV)
    return Path(override).expanduser() if override else checkout_root() / "book"


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
    if missing or unknown:
        raise ValueError(f"{where} must have exactly the keys {', '.join(CLAIM_KEYS)}; "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
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
    return {"id": claim["id"], "claim": claim["claim"],
            "paper": _text_or_number(claim["paper"], f"{where}['paper']"),
            "ours": _text_or_number(claim["ours"], f"{where}['ours']"), "holds": holds, "note": claim["note"]}


def validate(record) -> dict:
    """`record` checked against the results format, as a clean JSON-able dict (ValueError naming
    the first problem)."""
    if not isinstance(record, dict) or set(record) != set(RECORD_KEYS):
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"a results record must have exactly the keys {', '.join(RECORD_KEYS)}, got {keys}")
    for key in ("chapter", "profile", "dataset"):
        if not isinstance(record[key], str) or not record[key]:
            raise ValueError(f"{key} must be a non-empty string, got {record[key]!r}")
    wall = check_number(record["wall_time_s"], "wall_time_s (seconds)", minimum=0)
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
    chapter. A malformed file is a ValueError naming it. The intro's summary table reads these."""
    folder = Path(folder if folder is not None else results_dir())
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(validate(json.loads(path.read_text())))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return sorted(records, key=lambda r: r["chapter"])
