"""Batched image augmentation on the device: random crop with zero padding, horizontal flip, cutout.

One function, `prepare_batch`, turns a uint8 (N, H, W, C) batch already on the device into
float32 (N, C, H, W) in [0, 1], augmenting it on the way. Both loader back ends call it: the
tensor back end directly, the FFCV back end from an Operation placed after ToDevice. So on a GPU
the CPU only copies bytes, and the two back ends give identical batches for the same seed.
Every random draw comes from the caller's `torch.Generator` (on the batch's device).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Which augmentations to apply, in pixels: the standard CIFAR recipe by default.

    crop_padding: zero padding on each side before a random crop back to the original size
                  (0 disables the crop); flip: random horizontal flip with probability 1/2;
    cutout: side of a zeroed square at a uniformly random centre, clipped at the borders
            (DeVries & Taylor 2017; 0 disables it).
    """

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        for name in ("crop_padding", "cutout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Augment.{name} must be an int >= 0 (pixels), got {value!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"Augment.flip must be True or False, got {self.flip!r}")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.cutout > 0


NO_AUGMENT = Augment(crop_padding=0, flip=False, cutout=0)


def as_augment(augment: bool | Augment | None) -> Augment:
    """`True` -> the default recipe, `False`/None -> none, an Augment -> itself."""
    if augment is None or augment is False:
        return NO_AUGMENT
    if augment is True:
        return Augment()
    if isinstance(augment, Augment):
        return augment
    raise ValueError(f"augment must be True, False or an Augment(crop_padding, flip, cutout), got {augment!r}")


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (N, C, H, W) by its own (dy, dx) in [-padding, padding], zero-filling."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), device=x.device, generator=generator)
    rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]
    # Two gathers (rows, then columns) keep the work proportional to the output size.
    padded = padded.gather(2, rows.expand(n, x.shape[1], h, padded.shape[3]))
    return padded.gather(3, cols.expand(n, x.shape[1], h, w))


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square per image, centred uniformly in the image, clipped at borders."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1), device=x.device, generator=generator)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys >= cy - size // 2) & (ys < cy - size // 2 + size)
    in_cols = (xs >= cx - size // 2) & (xs < cx - size // 2 + size)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


def prepare_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 (N, H, W, C) on the device -> augmented float32 (N, C, H, W) in [0, 1]."""
    x = images.permute(0, 3, 1, 2)
    # Augmenting the uint8 batch moves a quarter of the bytes that float32 would.
    if augment.crop_padding:
        x = random_crop(x, augment.crop_padding, generator)
    if augment.flip:
        x = random_flip(x, generator)
    if augment.cutout:
        x = cutout(x, augment.cutout, generator)
    return x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def epoch_seed(seed: int, epoch: int) -> int:
    """The augmentation seed of one epoch, so a resumed run draws what an unbroken one would."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
