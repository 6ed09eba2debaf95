"""Where datasets come from: one small function a kind of source, each returning every split it has.

A source returns `{split: ImageDataset}` for the base splits it can provide ("train", "test"),
or raises `SourceUnavailable` saying why not (the catalogue collects these reasons into the
error a user sees when every source fails). A source that finds its files but cannot read them
raises `DataError` naming the file: corrupt data is never skipped silently.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .dataset import DataError, ImageDataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
SPLIT_DIRS = ("train", "test")


class SourceUnavailable(Exception):
    """This source cannot provide the dataset here (files absent, no network...)."""


# --- ImageFolder directories and archives -------------------------------------------------------

def _split_and_class(relative: str) -> tuple[str, str] | None:
    """Map `[top/]train/<class>/<file>` or `[top/]<class>/<file>` to (split, class)."""
    parts = [p for p in relative.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 2 or not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
        return None
    if len(parts) >= 3 and parts[-3] in SPLIT_DIRS:
        return parts[-3], parts[-2]
    return "train", parts[-2]


def _archive_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) for every image in a .tar[.gz] or .zip, read sequentially."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir() and _split_and_class(info.filename):
                    yield info.filename, archive.read(info)
    else:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and _split_and_class(member.name):
                    yield member.name, archive.extractfile(member).read()


def _directory_members(path: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path).as_posix()
        if file.is_file() and _split_and_class(relative):
            yield relative, file.read_bytes()


def _decode(name: str, data: bytes, where: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            grey = image.mode in ("1", "L", "I", "I;16", "F")
            return np.asarray(image.convert("L" if grey else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"corrupt image {name!r} in {where}: {err}") from err


def from_imagefolder(path: Path, dataset_name: str, description: str = "") -> dict[str, ImageDataset]:
    """Decode an ImageFolder tree (a directory, .tar.gz, .tar or .zip) into uint8 arrays.

    Layout: `[top/]{train,test}/<class>/<image>`, or `<class>/<image>` for a single "train"
    split. Classes are the folder names sorted alphabetically (torchvision's ImageFolder rule,
    which gives CIFAR-10's standard label order). Samples are ordered by class, then file name.
    All images must share one size; greyscale images stay one-channel, others become RGB.
    """
    path = Path(path)
    if not path.exists():
        raise SourceUnavailable(f"{path} does not exist")
    if path.is_file() and not path.name.endswith(ARCHIVE_SUFFIXES):
        raise SourceUnavailable(f"{path} is neither a directory nor one of {', '.join(ARCHIVE_SUFFIXES)}")
    members = _directory_members(path) if path.is_dir() else _archive_members(path)
    found: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    try:
        for member, data in members:
            split, cls = _split_and_class(member)  # type: ignore[misc]
            found.setdefault(split, []).append((cls, member.rsplit("/", 1)[-1], _decode(member, data, path)))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        raise DataError(f"corrupt or truncated archive {path}: {err!r}. Replace the file and retry.") from err
    if not found:
        raise SourceUnavailable(f"{path} holds no images in the layout [top/]train/<class>/<image>")
    classes = tuple(sorted({cls for samples in found.values() for cls, _, _ in samples}))
    index = {cls: i for i, cls in enumerate(classes)}
    result = {}
    for split, samples in found.items():
        samples.sort(key=lambda s: (s[0], s[1]))
        shapes = {s[2].shape for s in samples}
        if len(shapes) != 1:
            raise DataError(f"{path}: images of the {split} split differ in size ({sorted(shapes)[:3]} ...)")
        images = np.stack([s[2] for s in samples])
        if images.ndim == 3:
            images = images[..., None]
        labels = np.array([index[s[0]] for s in samples], dtype=np.int64)
        result[split] = ImageDataset(images, labels, classes, dataset_name, split, description or f"ImageFolder {path}")
    return result


# --- IDX files (MNIST, Fashion-MNIST) --------------------------------------------------------------

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (optionally gzipped) as a uint8 array of its declared shape."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"corrupt IDX file {path}: {err!r}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"corrupt IDX file {path}: bad header (expected unsigned-byte IDX magic)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"corrupt IDX file {path}: {len(data) - offset} bytes of data for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def from_idx(directory: Path, dataset_name: str, classes: tuple[str, ...], description: str) -> dict[str, ImageDataset]:
    """Read the four MNIST-format IDX files (train/t10k images and labels) from `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SourceUnavailable(f"{directory} does not exist")
    result = {}
    for split, (image_stem, label_stem) in IDX_FILES.items():
        image_file, label_file = _find_idx(directory, image_stem), _find_idx(directory, label_stem)
        if image_file is None or label_file is None:
            raise SourceUnavailable(f"no {image_stem}[.gz] and {label_stem}[.gz] in {directory}")
        images, labels = read_idx(image_file), read_idx(label_file)
        if len(images) != len(labels):
            raise DataError(f"{image_file} has {len(images)} images but {label_file} {len(labels)} labels")
        result[split] = ImageDataset(
            np.ascontiguousarray(images[..., None]), labels.astype(np.int64), classes, dataset_name, split, description
        )
    return result


# --- torchvision download (for users with internet) -----------------------------------------------

TORCHVISION_CLASSES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def from_torchvision(dataset_name: str, root: Path) -> dict[str, ImageDataset]:
    """Download (or reuse a previous download in `root`) through torchvision's dataset classes."""
    try:
        import torchvision.datasets as tvd
    except Exception as err:  # noqa: BLE001 - any import failure means this source is unusable
        raise SourceUnavailable(f"torchvision does not import: {err}") from err
    cls = getattr(tvd, TORCHVISION_CLASSES[dataset_name])
    result = {}
    for split in ("train", "test"):
        try:
            ds = cls(root=str(root), train=split == "train", download=True)
        except Exception as err:  # noqa: BLE001 - offline machines raise URLError, OSError, RuntimeError...
            reason = " ".join(str(err).split())[:300]
            raise SourceUnavailable(f"download failed: {type(err).__name__}: {reason}") from err
        images = np.asarray(ds.data, dtype=np.uint8)
        images = images[..., None] if images.ndim == 3 else images
        labels = np.asarray(ds.targets, dtype=np.int64)
        result[split] = ImageDataset(
            np.ascontiguousarray(images), labels, tuple(ds.classes), dataset_name, split, f"torchvision {cls.__name__}"
        )
    return result


# --- scikit-learn digits ----------------------------------------------------------------------------

DIGITS_TEST_SIZE = 450


def from_sklearn_digits(dataset_name: str = "digits") -> dict[str, ImageDataset]:
    """scikit-learn's 1,797 8x8 digits as uint8 (0..16 scaled to 0..255), one grey channel.

    The set has no official test split; ours is a fixed stratified hold-out of 450 images
    (random_state=0), the same on every machine and independent of any experiment seed.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise SourceUnavailable(f"scikit-learn does not import: {err}") from err
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_SIZE, random_state=0, stratify=labels
    )
    classes = tuple(str(c) for c in bunch.target_names)
    return {
        split: ImageDataset(images[np.sort(idx)], labels[np.sort(idx)], classes, dataset_name, split, "scikit-learn digits")
        for split, idx in (("train", train_idx), ("test", test_idx))
    }


def env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None
