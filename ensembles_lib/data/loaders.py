"""`loader(...)`: batches of (float32 NCHW images in [0, 1], int64 labels) on the device.

Two back ends with the same batches for the same seed (DESIGN.md): FFCV (`ffcv_backend.py`:
a .beton file and FFCV's pipeline, our augmentation op after ToDevice) and the tensor back end
here (the whole uint8 dataset resident on the device). Both draw each epoch's order as
`numpy.random.default_rng(seed + epoch).permutation(n)` (FFCV's own RANDOM order) and reseed the
augmentation generator per epoch, so `set_epoch(k)` resumes exactly where an unbroken run would be.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

import torch

from ..checks import check_choice, check_int
from .augment import Augment, as_augment, epoch_seed, prepare_batch
from .ordering import epoch_order, num_batches
from .catalog import check_name, check_split, get
from .dataset import DataError, ImageDataset

BACKENDS = ("auto", "ffcv", "tensor")


def ffcv_available() -> bool:
    """True when FFCV (and its compiled extension) imports here."""
    threads = torch.get_num_threads()
    try:
        import ffcv.loader  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken build raises ImportError, OSError, numba errors...
        return False
    finally:
        # Importing FFCV sets torch's thread count to 1 for the whole process; undo that.
        torch.set_num_threads(threads)
    return True


class TensorLoader:
    """The tensor back end: the dataset lives on `device` as uint8; batches are gathered and
    augmented there. Iterating runs one epoch; `set_epoch` chooses which one runs next."""

    backend = "tensor"

    def __init__(self, dataset: ImageDataset, batch_size: int, device: torch.device, augment: Augment,
                 seed: int, drop_last: bool, shuffle: bool):
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.augment, self.seed, self.drop_last, self.shuffle = augment, seed, drop_last, shuffle
        self.images = torch.from_numpy(dataset.images).to(device)
        self.labels = torch.from_numpy(dataset.labels).to(device)
        self.generator = torch.Generator(device=device)
        self.epoch = 0

    def __len__(self) -> int:
        return num_batches(len(self.dataset), self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.from_numpy(epoch_order(len(self.dataset), self.seed, self.epoch, self.shuffle)).to(self.device)
        order = order[: len(self) * self.batch_size]
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            yield prepare_batch(self.images[index], self.augment, self.generator), self.labels[index]


def _check_args(name, split, batch_size, backend, seed) -> None:
    check_name(name)
    check_split(split)
    check_int(batch_size, "batch_size", 1)
    check_choice(backend, "backend", BACKENDS)
    check_int(seed, "seed", 0)


def loader(name: str, split: str = "train", batch_size: int = 512, device: str | torch.device = "cpu",
           augment: bool | Augment = False, backend: str = "auto", seed: int = 0, drop_last: bool = False,
           shuffle: bool | None = None, *, val_size: float | int = 0.1, split_seed: int = 0,
           num_workers: int | None = None):
    """Batches of dataset `name`/`split` (see `get`) on `device`, one epoch per iteration.

    augment: False, True (crop with 4 px zero padding + flip) or an `Augment`; applied on the
    device, after the copy. backend: "ffcv", "tensor", or "auto" (FFCV when it imports). seed
    fixes the order and the augmentation of every epoch; split_seed and val_size choose the
    fit/val hold-out (see `get`), independently of it. shuffle defaults to True for the
    "train" and "fit" splits, False for "test" and "val". Chapters use it for every data pass.
    """
    _check_args(name, split, batch_size, backend, seed)
    augment = as_augment(augment)
    device = torch.device(device)
    shuffle = split in ("train", "fit") if shuffle is None else bool(shuffle)
    if backend == "ffcv" and not ffcv_available():
        raise DataError("backend='ffcv' but FFCV does not import here: run `make install` as root (it installs "
                        "pkg-config, libopencv-dev, libturbojpeg0-dev and builds FFCV), or use backend='tensor'")
    dataset = get(name, split, val_size=val_size, seed=split_seed)
    if backend == "tensor" or (backend == "auto" and not ffcv_available()):
        return TensorLoader(dataset, batch_size, device, augment, seed, drop_last, shuffle)
    from .ffcv_backend import FFCVLoader

    return FFCVLoader(dataset, batch_size, device, augment, seed, drop_last, shuffle, num_workers)


def head(name: str, split: str = "test", n: int | None = None, device: str | torch.device = "cpu", *,
         val_size: float | int = 0.1, split_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images of `name`/`split` (all when n is None) as one (x, y) pair on `device`:
    x float32 NCHW in [0, 1], y int64, in the split's stored order. Every chapter evaluates and
    attacks such a fixed subset, and the cache's per-epoch metrics use the same one."""
    if n is not None:
        check_int(n, "n", 1)
    dataset = get(name, split, val_size=val_size, seed=split_seed)
    count = len(dataset) if n is None else min(n, len(dataset))
    batches = TensorLoader(dataset.subset(np.arange(count), split), count, torch.device(device), as_augment(False),
                           0, False, False)
    return next(iter(batches))
