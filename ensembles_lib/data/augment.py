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

from ..checks import check_bool, check_int


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
        check_int(self.crop_padding, "Augment.crop_padding", 0)
        check_int(self.cutout, "Augment.cutout", 0)
        check_bool(self.flip, "Augment.flip")

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


def crop_and_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Random crop with zero padding, then random horizontal flip, of a uint8 (N, H, W, C) batch.

    Each image is shifted by its own (dy, dx) in [-padding, padding] (pixels leaving the frame are
    lost, pixels entering it are zero) and, if `flip`, mirrored with probability 1/2. Both are
    one gather: output pixel (i, j) reads source pixel (i + dy, j' + dx), with j' = W - 1 - j
    for mirrored images, or is zero when that lies outside the image.
    """
    n, h, w, c = x.shape
    device = x.device
    shift = torch.randint(-padding, padding + 1, (2, n), device=device, generator=generator)
    mirrored = torch.rand(n, device=device, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool, device=device)
    cols = torch.arange(w, device=device)
    src_rows = torch.arange(h, device=device) + shift[0, :, None]  # (N, H)
    src_cols = torch.where(mirrored[:, None], w - 1 - cols, cols) + shift[1, :, None]  # (N, W)
    inside = ((src_rows >= 0) & (src_rows < h))[:, :, None] & ((src_cols >= 0) & (src_cols < w))[:, None, :]
    flat = (src_rows.clamp(0, h - 1) * w)[:, :, None] + src_cols.clamp(0, w - 1)[:, None, :]  # (N, H, W)
    out = x.reshape(n, h * w, c).gather(1, flat.reshape(n, h * w, 1).expand(n, h * w, c)).reshape(n, h, w, c)
    return out * inside[..., None]


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero a size x size square per (N, H, W, C) image, centred uniformly in it, clipped at borders."""
    n, h, w, _ = x.shape
    cy = torch.randint(0, h, (n, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1), device=x.device, generator=generator)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys >= cy - size // 2) & (ys < cy - size // 2 + size)
    in_cols = (xs >= cx - size // 2) & (xs < cx - size // 2 + size)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[..., None].to(x.dtype)


def prepare_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 (N, H, W, C) on the device -> augmented float32 (N, C, H, W) in [0, 1]."""
    # Augmenting the uint8 batch moves a quarter of the bytes that float32 would.
    x = images
    if augment.crop_padding or augment.flip:
        x = crop_and_flip(x, augment.crop_padding, augment.flip, generator)
    if augment.cutout:
        x = cutout(x, augment.cutout, generator)
    return x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def epoch_seed(seed: int, epoch: int) -> int:
    """The augmentation seed of one epoch, so a resumed run draws what an unbroken one would."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
