"""Datasets and loaders (`get`, `loader`); see DESIGN.md, "A dataset is uint8 images ..."."""

from .catalog import NAMES, SPLITS, DataNotFound, get
from .dataset import DataError, ImageDataset

__all__ = ["NAMES", "SPLITS", "DataError", "DataNotFound", "ImageDataset", "get"]
