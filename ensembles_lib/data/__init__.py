"""Datasets and loaders (`get`, `loader`); see DESIGN.md, "A dataset is uint8 images ...".

The catalog and the dataset type load without torch, so the command line checks dataset names
before torch is imported; the loaders and augmentations, which need torch, load on first use.
"""

from .catalog import NAMES, SPLITS, DataNotFound, get
from .dataset import DataError, ImageDataset

__all__ = ["Augment", "BACKENDS", "NAMES", "SPLITS", "DataError", "DataNotFound", "ImageDataset", "ffcv_available",
           "get", "head", "loader"]


def __getattr__(name: str):
    if name == "Augment":
        from .augment import Augment

        return Augment
    if name in ("BACKENDS", "ffcv_available", "head", "loader"):
        from . import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
