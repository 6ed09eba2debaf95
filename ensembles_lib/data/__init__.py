"""Datasets and loaders (`get`, `loader`); see DESIGN.md, "A dataset is uint8 images ...".

The catalog and the dataset type load without torch, so the command line checks dataset names
before torch is imported; the loaders and augmentations, which need torch, load on first use.
"""

from importlib import import_module

from .catalog import NAMES, SPLITS, DataNotFound, get
from .dataset import DataError, ImageDataset

_LAZY = {"Augment": "augment", "BACKENDS": "loaders", "ffcv_available": "loaders", "head": "loaders",
         "loader": "loaders"}

__all__ = ["Augment", "BACKENDS", "NAMES", "SPLITS", "DataError", "DataNotFound", "ImageDataset", "ffcv_available",
           "get", "head", "loader"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
