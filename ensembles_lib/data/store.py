"""The decoded-dataset cache: one uncompressed .npz a split under `<data root>/datasets/`.

Written atomically; read back with checks (format version, keys, dtypes, shapes, the zip CRC of
every array), so that a truncated or altered file is reported by name and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np

from ..paths import atomic_path
from .dataset import DataError, ImageDataset

CACHE_FORMAT = 1


class CorruptCache(DataError):
    """A cache file exists but cannot be trusted; the caller deletes and rebuilds it."""


def cache_dir_name(name: str) -> str:
    """A file-system-safe folder name for a catalogue name (imagefolder paths are hashed)."""
    if name.startswith("imagefolder:"):
        target = name.split(":", 1)[1]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target).name)[:40]
        return f"imagefolder-{stem}-{hashlib.sha1(target.encode()).hexdigest()[:10]}"
    return name


def cache_path(root: Path, name: str, split: str) -> Path:
    return root / "datasets" / cache_dir_name(name) / f"{split}.npz"


def save(dataset: ImageDataset, path: Path, stamp: str = "") -> None:
    """Write `dataset` to `path` atomically; `stamp` records the state of the source it came from."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            images=dataset.images,
            labels=dataset.labels,
            classes=np.array(dataset.classes, dtype=str),
            source=np.array(dataset.source),
            stamp=np.array(stamp),
            format=np.array(CACHE_FORMAT),
        )


def load(path: Path, name: str, split: str, stamp: str = "") -> ImageDataset | None:
    """The cached split, None if there is no cache or it is stale; CorruptCache if it is damaged."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {key: npz[key] for key in ("images", "labels", "classes", "source", "stamp", "format")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptCache(f"corrupt dataset cache {path}: {type(err).__name__}: {err}") from err
    if int(fields["format"]) != CACHE_FORMAT or str(fields["stamp"]) != stamp:
        return None
    try:
        return ImageDataset(
            fields["images"], fields["labels"], tuple(str(c) for c in fields["classes"]), name, split, str(fields["source"])
        )
    except DataError as err:
        raise CorruptCache(f"corrupt dataset cache {path}: {err}") from err
