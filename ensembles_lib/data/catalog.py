"""`get(name, split)`: the datasets the companion knows, and the order their sources are tried in.

Used by every chapter (through `loader`) and by `make data`. Sources, in order: the decoded cache
under the data root; an ImageFolder directory or archive (the CIFAR-10 JPEG copy); IDX files
(Debian's `dataset-fashion-mnist` is found without configuration); torchvision's download (for
machines with internet); scikit-learn's digits. The first that answers fills the cache.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..paths import checkout_root, data_root
from . import sources, store
from .dataset import DataError, ImageDataset

NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist", "digits")
IMAGEFOLDER_PREFIX = "imagefolder:"
SPLITS = ("train", "test", "fit", "val")
SPLIT_HELP = "train (all training images), test, fit (train minus the val hold-out), val (the hold-out)"
CIFAR10_JPEG_ENV = "ENSEMBLES_CIFAR10_JPEG"
CIFAR10_JPEG_NAME = "cifar10-jpeg.tar.gz"

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))


class DataNotFound(DataError):
    """No source could provide a dataset; the message lists each one and why it failed."""


@dataclass(frozen=True)
class Source:
    """One place a dataset may come from: a label for error messages and a loader function."""

    label: str
    load: Callable[[], dict[str, ImageDataset]]
    stamp: str = ""


def cifar10_jpeg_candidates() -> list[Path]:
    """Where the CIFAR-10 JPEG copy is looked for: $ENSEMBLES_CIFAR10_JPEG, the data root, ../shared/data."""
    env = sources.env_path(CIFAR10_JPEG_ENV)
    found = [env] if env else []
    return found + [data_root() / CIFAR10_JPEG_NAME, checkout_root().parent / "shared" / "data" / CIFAR10_JPEG_NAME]


def _file_stamp(path: Path) -> str:
    """The state of an ImageFolder source, recorded with its decoded cache: a change means rebuild.

    For an archive its size and mtime; for a directory a hash of every file under it (relative
    path, size, mtime_ns), so an image edited, added or removed inside a class folder is seen.
    Only metadata is read (an os.scandir walk), never file contents. "" if the path is missing.
    """
    try:
        stat = path.stat()
    except OSError:
        return ""
    if not path.is_dir():
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    listing = hashlib.sha256()
    for relative, size, mtime_ns in sorted(_tree_stats(path)):
        listing.update(f"{relative}\0{size}\0{mtime_ns}\n".encode(errors="surrogateescape"))
    return f"{path.resolve()}:tree:{listing.hexdigest()[:32]}"


def _tree_stats(folder: Path, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under `folder`, walked as sources.from_imagefolder
    reads it (files behind links are followed, linked folders are not entered)."""
    with os.scandir(folder) as scan:
        for entry in scan:
            if entry.is_dir(follow_symlinks=False):
                yield from _tree_stats(Path(entry.path), f"{prefix}{entry.name}/")
            elif entry.is_file():
                stat = entry.stat()
                yield f"{prefix}{entry.name}", stat.st_size, stat.st_mtime_ns


def _sources(name: str) -> tuple[list[Source], str]:
    """The sources to try after the cache for `name`, and the command that fixes a miss."""
    root = data_root()
    tv = Source(f"torchvision download into {root / 'torchvision'}", lambda: sources.from_torchvision(name, root / "torchvision"))
    if name == "cifar10":
        jpeg = [
            Source(f"CIFAR-10 JPEG copy {p}", lambda p=p: sources.from_imagefolder(p, name, "CIFAR-10 (JPEG q75 copy)"))
            for p in cifar10_jpeg_candidates()
        ]
        fix = (f"put the JPEG copy at {root / CIFAR10_JPEG_NAME} (or set {CIFAR10_JPEG_ENV}=/path/to/"
               f"{CIFAR10_JPEG_NAME}) and run `make data`; with internet, `make data` downloads it")
        return jpeg + [tv], fix
    if name in ("mnist", "fashion_mnist"):
        debian = "fashion-mnist" if name == "fashion_mnist" else "mnist"
        classes = FASHION_CLASSES if name == "fashion_mnist" else MNIST_CLASSES
        folders = [root / name / "raw", Path("/usr/share/datasets") / debian, root / "torchvision" / sources.TORCHVISION_CLASSES[name] / "raw"]
        idx = [Source(f"IDX files in {d}", lambda d=d: sources.from_idx(d, name, classes, f"{name} IDX files ({d})")) for d in folders]
        fix = ("`sudo apt-get install dataset-fashion-mnist` (Debian) then `make data`" if name == "fashion_mnist" else
               f"copy the four MNIST IDX .gz files into {root / name / 'raw'}; with internet, `make data` downloads them")
        return idx + [tv], fix
    if name == "cifar100":
        return [tv], "run `make data` on a machine with internet (torchvision downloads CIFAR-100)"
    if name == "digits":
        return [Source("scikit-learn load_digits", sources.from_sklearn_digits)], "`pip install scikit-learn`"
    target = Path(name[len(IMAGEFOLDER_PREFIX):]).expanduser()
    label = f"ImageFolder {target}"
    return [Source(label, lambda: sources.from_imagefolder(target, name), _file_stamp(target))], (
        f"check that {target} exists and holds [top/]train/<class>/<image> (directory, .tar.gz or .zip)"
    )


def check_name(name: str) -> str:
    """Return `name` if it is a known dataset name, else raise DataError listing the valid names."""
    if not isinstance(name, str) or not (name in NAMES or (name.startswith(IMAGEFOLDER_PREFIX) and len(name) > len(IMAGEFOLDER_PREFIX))):
        raise DataError(f"unknown dataset name {name!r}: use one of {', '.join(NAMES)}, or imagefolder:<dir or .tar.gz/.zip>")
    return name


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {SPLIT_HELP}")
    return split


def load_base(name: str, split: str) -> ImageDataset:
    """The base split ("train" or "test") of `name`: from the cache, else from the first source that answers."""
    candidates, fix = _sources(name)
    root = data_root()
    tried = []
    cached = store.cache_path(root, name, split)
    stamp = candidates[0].stamp if name.startswith(IMAGEFOLDER_PREFIX) else ""
    try:
        dataset = store.load(cached, name, split, stamp)
        if dataset is not None:
            return dataset
        tried.append(f"decoded cache {cached}: not built yet (or stale)")
    except store.CorruptCache as err:
        warnings.warn(f"{err}; deleting it and rebuilding from the sources", stacklevel=3)
        cached.unlink(missing_ok=True)
        tried.append(f"decoded cache {cached}: corrupt, deleted")
    for source in candidates:
        try:
            splits = source.load()
        except sources.SourceUnavailable as why:
            tried.append(f"{source.label}: {why}")
            continue
        for found_split, dataset in splits.items():
            store.save(dataset, store.cache_path(root, name, found_split), source.stamp)
        if split not in splits:
            raise DataError(f"{name} has no {split!r} split in {source.label} (it has: {', '.join(sorted(splits))})")
        return splits[split]
    listing = "\n".join(f"  {i}. {line}" for i, line in enumerate(tried, 1))
    raise DataNotFound(f"no source could provide {name!r} ({split}). Tried, in order:\n{listing}\nTo fix: {fix}")


def holdout_indices(n: int, val_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (fit, val) indices of a seeded random hold-out of `val_size` (a count, or a fraction of n)."""
    count = int(round(val_size * n)) if isinstance(val_size, float) else int(val_size)
    if not 0 < count < n:
        raise DataError(f"val_size={val_size!r} leaves no fit or no val samples out of {n}: use a fraction in (0, 1) or a count in 1..{n - 1}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])


def get(name: str, split: str = "train", *, val_size: float | int = 0.1, seed: int = 0) -> ImageDataset:
    """Dataset `name`, split `split`, as uint8 (N, H, W, C) images and int64 labels.

    `fit` and `val` partition the training set: `val` is a random `val_size` of it (a fraction,
    or a count: TREND's 45,000/5,000 CIFAR-10 split is `val_size=5000`), drawn by `seed`, so the
    same seed always gives the same partition.
    """
    check_name(name)
    check_split(split)
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)):
        raise DataError(f"val_size must be a fraction in (0, 1) or a positive count, got {val_size!r}")
    if isinstance(val_size, float) and not 0.0 < val_size < 1.0:
        raise DataError(f"val_size={val_size!r}: a fractional val_size must lie in (0, 1)")
    if split in ("train", "test"):
        return load_base(name, split)
    train = load_base(name, "train")
    fit_idx, val_idx = holdout_indices(len(train), val_size, seed)
    return train.subset(fit_idx if split == "fit" else val_idx, split)
