"""Datasets and loaders (`get`, `loader`); see DESIGN.md, "A dataset is uint8 images ..."."""

from .augment import Augment
from .catalog import NAMES, SPLITS, DataNotFound, get
from .dataset import DataError, ImageDataset
from .loaders import BACKENDS, ffcv_available, head, loader

__all__ = ["Augment", "BACKENDS", "NAMES", "SPLITS", "DataError", "DataNotFound", "ImageDataset", "ffcv_available", "get", "head", "loader"]
