"""The FFCV back end: a dataset written once to a .beton file, read through FFCV's Loader.

The .beton holds the raw uint8 pixels (an NDArrayField of the image shape, so grey and RGB alike)
and the int label. The image pipeline is NDArrayDecoder -> ToTensor -> ToDevice -> DeviceAugment:
the CPU only copies bytes; cropping, flipping, cutout and the float conversion run batched on the
device, in `augment.prepare_batch`, the same function the tensor back end calls.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from ffcv.fields import IntField, NDArrayField
from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
from ffcv.loader import Loader, OrderOption
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State
from ffcv.transforms import Squeeze, ToDevice, ToTensor
from ffcv.writer import DatasetWriter

from ..paths import atomic_path, data_root
from .augment import Augment, epoch_seed, prepare_batch
from .dataset import ImageDataset
from .ordering import num_batches
from .store import cache_dir_name


class _Indexed:
    """The (image, label) view DatasetWriter.from_indexed_dataset reads."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.dataset.images[i], int(self.dataset.labels[i])


def beton_path(dataset: ImageDataset) -> Path:
    """Where the .beton copy of `dataset` lives: named by its content, so stale files are never read."""
    return data_root() / "beton" / f"{cache_dir_name(dataset.name)}-{dataset.split}-{dataset.fingerprint()}.beton"


def write_beton(dataset: ImageDataset, path: Path | None = None, num_workers: int | None = None) -> Path:
    """Write `dataset` as raw uint8 pixels + int labels to a .beton (atomically); return its path."""
    path = Path(path) if path else beton_path(dataset)
    if path.exists():
        return path
    fields = {"image": NDArrayField(np.dtype("uint8"), dataset.shape), "label": IntField()}
    with atomic_path(path, suffix=".beton") as tmp:
        writer = DatasetWriter(str(tmp), fields, num_workers=num_workers or os.cpu_count() or 1)
        writer.from_indexed_dataset(_Indexed(dataset))
    return path


class DeviceAugment(Operation):
    """FFCV Operation after ToDevice: uint8 (N, H, W, C) -> augmented float32 (N, C, H, W) in [0, 1].

    Holds the augmentation generator on the pipeline's device; FFCVLoader reseeds it each epoch.
    """

    def __init__(self, augment: Augment):
        super().__init__()
        self.augment = augment
        self.generator: torch.Generator | None = None

    def generate_code(self) -> Callable:
        augment, op = self.augment, self

        def device_augment(images, _destination):
            return prepare_batch(images, augment, op.generator)

        return device_augment

    def declare_state_and_memory(self, previous_state: State):
        h, w, c = previous_state.shape
        if self.generator is None or self.generator.device != torch.device(previous_state.device):
            self.generator = torch.Generator(device=previous_state.device)
        return replace(previous_state, shape=(c, h, w), dtype=torch.float32), None


class FFCVLoader:
    """Same interface and batches as `TensorLoader`, read through ffcv.loader.Loader."""

    backend = "ffcv"

    def __init__(self, dataset: ImageDataset, batch_size: int, device: torch.device, augment: Augment,
                 seed: int, drop_last: bool, shuffle: bool, num_workers: int | None = None):
        self.dataset, self.batch_size, self.device, self.seed = dataset, batch_size, device, seed
        self.drop_last = drop_last
        self.path = write_beton(dataset)
        self.augment_op = DeviceAugment(augment)
        self.loader = Loader(
            str(self.path),
            batch_size=batch_size,
            # FFCV sets torch's thread count to this on every epoch: keep torch's own.
            num_workers=num_workers or torch.get_num_threads(),
            order=OrderOption.RANDOM if shuffle else OrderOption.SEQUENTIAL,
            seed=seed,
            drop_last=drop_last,
            os_cache=True,
            pipelines={
                "image": [NDArrayDecoder(), ToTensor(), ToDevice(device, non_blocking=True), self.augment_op],
                "label": [IntDecoder(), ToTensor(), Squeeze(1), ToDevice(device, non_blocking=True)],
            },
        )

    def __len__(self) -> int:
        return num_batches(len(self.dataset), self.batch_size, self.drop_last)

    @property
    def epoch(self) -> int:
        return self.loader.next_epoch

    def set_epoch(self, epoch: int) -> None:
        self.loader.next_epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.augment_op.generator.manual_seed(epoch_seed(self.seed, self.loader.next_epoch))
        for images, labels in self.loader:
            # FFCV reuses its label buffers for later batches: hand out a copy.
            yield images, labels.to(torch.int64, copy=True)
