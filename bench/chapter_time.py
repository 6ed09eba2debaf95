"""Where an executed chapter spent its wall time: per section of the notebook, the seconds spent
training models, making stored adversarial examples, running the stored strong white-box suites
(`cache.strong`), and everything else (evaluation, the attacks run in place, plotting).

Reads the papermill notebook of one run (each code cell's start and end time) and the artifact
store of the data root that run used (each trained model's and example set's `created` time and
`wall_time_s`, `cache.list_entries`); an artifact counts towards the cell that was running when it
was committed. Run it on a run from an empty data root (the cold time the issue's budget is
about); on a warm root nothing is trained and the training column is empty.

    ENSEMBLES_DATA_DIR=/tmp/cold ensembles run dverge --profile cpu
    python bench/chapter_time.py book/dverge.ipynb --data-root /tmp/cold

Measured figures are in the speed issue's note (issue 12).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def cells(notebook: Path) -> list[dict]:
    """The notebook's code cells with their section (the last markdown heading above them), start,
    end and duration in seconds, from papermill's cell metadata."""
    nb = json.loads(notebook.read_text())
    section, rows = "(top)", []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            heading = next((line.lstrip("#").strip() for line in source.splitlines() if line.startswith("#")), None)
            section = heading or section
            continue
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("duration") is None:
            continue
        rows.append({"section": section, "start": _when(meta.get("start_time")), "end": _when(meta.get("end_time")),
                     "seconds": float(meta["duration"])})
    if not rows:
        raise SystemExit(f"{notebook}: no papermill cell timings (was it executed by `ensembles run`?)")
    return rows


def artifacts() -> list[dict]:
    """Every finished artifact of the data root: kind (model, examples or strong), created, wall_time_s."""
    from ensembles_lib import cache

    rows = []
    for entry in cache.store().entries():
        meta = entry.get("meta")
        if entry["status"] != "ok" or not isinstance(meta, dict) or not isinstance(meta.get("wall_time_s"), (int, float)):
            continue
        spec = meta.get("spec") or {}
        kind = {"adversarial": "examples", "strong": "strong"}.get(spec.get("kind"), "model")
        rows.append({"kind": kind,
                     "created": _when(meta.get("created")), "seconds": float(meta["wall_time_s"])})
    return rows


def split(notebook: Path) -> list[dict]:
    """One row a section, in notebook order: seconds in all, training, stored examples, strong
    suites, the rest."""
    sections: dict[str, dict] = {}
    timed = cells(notebook)
    for cell in timed:
        sections.setdefault(cell["section"], {"section": cell["section"], "seconds": 0.0, "training": 0.0,
                                              "examples": 0.0, "strong": 0.0})["seconds"] += cell["seconds"]
    for art in artifacts():
        # `created` has whole seconds: the cell whose span, widened by a second, holds it
        owner = next((c for c in timed if c["start"] and c["end"] and art["created"]
                      and (c["start"].timestamp() - 1) <= art["created"].timestamp() <= (c["end"].timestamp() + 1)), None)
        if owner is not None:
            sections[owner["section"]]["training" if art["kind"] == "model" else art["kind"]] += art["seconds"]
    rows = list(sections.values())
    for row in rows:
        row["rest"] = max(0.0, row["seconds"] - row["training"] - row["examples"] - row["strong"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path, help="a notebook executed by `ensembles run`")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="the data root the run used (default: ENSEMBLES_DATA_DIR or data/)")
    args = parser.parse_args(argv)
    if args.data_root is not None:
        os.environ["ENSEMBLES_DATA_DIR"] = str(args.data_root)
    rows = split(args.notebook)
    total = {key: sum(r[key] for r in rows) for key in ("seconds", "training", "examples", "strong", "rest")}
    print(f"{args.notebook}: {total['seconds']:.0f} s in code cells")
    print(f"{'section':<58} {'total s':>8} {'training':>9} {'examples':>9} {'strong':>7} {'rest':>7}")
    for row in rows + [{"section": "all", **total}]:
        if row["seconds"] >= 0.5:
            print(f"{row['section'][:58]:<58} {row['seconds']:8.1f} {row['training']:9.1f} {row['examples']:9.1f} "
                  f"{row['strong']:7.1f} {row['rest']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
