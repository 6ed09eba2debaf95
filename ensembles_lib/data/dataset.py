"""The one in-memory dataset type every source produces and every loader consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


class DataError(RuntimeError):
    """A dataset could not be produced: missing, unknown, or corrupt. The message says which."""


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 (N, H, W, C) with int64 labels, the class names, and where they came from.

    `name` is the catalogue name (`cifar10`, `imagefolder:/path`, ...); `split` the split it holds;
    `source` a short human description of the origin, e.g. "CIFAR-10 (JPEG q75 copy)", which the
    chapters print beside their results.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str
    split: str = "train"
    source: str = ""
    _fingerprint: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(
                f"{self.name}: images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),):
            raise DataError(
                f"{self.name}: labels must be int64 of shape ({len(self.images)},), "
                f"got {self.labels.dtype} {self.labels.shape}"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: np.ndarray, split: str) -> "ImageDataset":
        """The samples at `indices` (in that order), relabelled as `split`."""
        return ImageDataset(self.images[indices], self.labels[indices], self.classes, self.name, split, self.source)

    def fingerprint(self) -> str:
        """A hash of the pixels, labels and classes: names derived files such as .beton copies."""
        if not self._fingerprint:
            h = hashlib.sha1()
            h.update(repr((self.images.shape, self.classes)).encode())
            h.update(np.ascontiguousarray(self.images).data)
            h.update(self.labels.data)
            self._fingerprint.append(h.hexdigest()[:16])
        return self._fingerprint[0]
