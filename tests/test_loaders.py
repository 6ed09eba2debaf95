"""ensembles_lib.data.loader: both back ends, on real data, and the augmentation they share."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from ensembles_lib.data import Augment, DataError, ffcv_available, get, loader
from ensembles_lib.data import loaders as loaders_module
from ensembles_lib.data.augment import prepare_batch
from ensembles_lib.data.ordering import epoch_order

from .conftest import needs_fashion

BACKENDS = [
    "tensor",
    pytest.param("ffcv", marks=pytest.mark.skipif(not ffcv_available(), reason="FFCV does not import here")),
]


def _epoch(batches):
    xs, ys = zip(*[(x.clone(), y.clone()) for x, y in batches])
    return torch.cat(xs), torch.cat(ys)


def _as_uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@needs_fashion
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_sample_once_with_its_label_and_exact_pixels(backend):
    data = get("fashion_mnist", "test")
    batches = loader("fashion_mnist", "test", batch_size=999, backend=backend, shuffle=True, seed=3)
    assert len(batches) == 11  # 10,000 / 999 rounded up: nothing dropped
    x, y = _epoch(batches)
    assert x.dtype == torch.float32 and x.shape == (10000, 1, 28, 28) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    pixels = _as_uint8_nhwc(x)
    seen = Counter((p.tobytes(), int(label)) for p, label in zip(pixels, y))
    expected = Counter((p.tobytes(), int(label)) for p, label in zip(data.images, data.labels))
    assert seen == expected  # every (image, label) pair exactly once, bit-identical pixels
    assert not torch.equal(y, torch.from_numpy(data.labels))  # and shuffled


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_last_and_sequential_order(backend):
    data = get("digits", "train")
    batches = loader("digits", "train", batch_size=100, backend=backend, drop_last=True, shuffle=False)
    assert len(batches) == 13 and all(len(y) == 100 for _, y in batches)
    x, y = _epoch(batches)
    assert np.array_equal(_as_uint8_nhwc(x), data.images[:1300]) and np.array_equal(y.numpy(), data.labels[:1300])


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_batches_other_seed_other_batches(backend):
    def run(seed, epochs=2):
        batches = loader("digits", "train", batch_size=256, backend=backend, augment=Augment(cutout=3), seed=seed)
        return [_epoch(batches) for _ in range(epochs)]

    first, again, other = run(1), run(1), run(2)
    for (xa, ya), (xb, yb) in zip(first, again):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(first[0][1], other[0][1]) and not torch.equal(first[0][0], other[0][0])
    assert not torch.equal(first[0][1], first[1][1])  # epochs differ from each other


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_epoch_resumes_exactly(backend):
    batches = loader("digits", "train", batch_size=200, backend=backend, augment=True, seed=5)
    _epoch(batches)
    second = _epoch(batches)
    resumed = loader("digits", "train", batch_size=200, backend=backend, augment=True, seed=5)
    resumed.set_epoch(1)
    x, y = _epoch(resumed)
    assert torch.equal(x, second[0]) and torch.equal(y, second[1])


@pytest.mark.skipif(not ffcv_available(), reason="FFCV does not import here")
def test_ffcv_and_tensor_give_identical_batches():
    kwargs = dict(batch_size=300, augment=Augment(crop_padding=2, flip=True, cutout=3), seed=11)
    for (xf, yf), (xt, yt) in zip(loader("digits", "train", backend="ffcv", **kwargs), loader("digits", "train", backend="tensor", **kwargs)):
        assert torch.equal(xf, xt) and torch.equal(yf, yt)


@needs_fashion
def test_flip_rate_is_one_half():
    data = get("fashion_mnist", "train")
    batches = loader("fashion_mnist", "train", batch_size=4096, backend="tensor", augment=Augment(crop_padding=0, flip=True), seed=0)
    x, _ = _epoch(batches)
    originals = torch.from_numpy(data.images[epoch_order(len(data), 0, 0, True)]).permute(0, 3, 1, 2).float() / 255
    same = (x == originals).flatten(1).all(1)
    mirrored = (x == originals.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all())  # nothing but flips happened
    asymmetric = ~(originals == originals.flip(3)).flatten(1).all(1)
    rate = mirrored[asymmetric].float().mean().item()
    assert 0.49 < rate < 0.51, rate  # 60,000 draws: the standard error is 0.002


def _shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """images moved down by dy and right by dx, zero-filled."""
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = images[..., max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)]
    return out


@pytest.mark.parametrize("padding", [1, 4])
def test_crops_stay_within_the_padding(padding):
    data = get("digits", "train")
    images = torch.from_numpy(data.images[:600])
    generator = torch.Generator().manual_seed(0)
    out = prepare_batch(images, Augment(crop_padding=padding, flip=False), generator)
    original = images.permute(0, 3, 1, 2).float() / 255
    shifts = [(dy, dx) for dy in range(-padding, padding + 1) for dx in range(-padding, padding + 1)]
    matches = torch.stack([(out == _shift(original, dy, dx)).flatten(1).all(1) for dy, dx in shifts], 1)
    assert bool(matches.any(1).all())  # every crop is one of the allowed shifts, zero-filled
    used = {shifts[i] for i in matches.float().argmax(1).tolist()}
    assert any(padding in (abs(dy), abs(dx)) for dy, dx in used)  # the full padding is reachable
    assert len(used) >= min(len(shifts), 9)  # and offsets vary from image to image


def test_cutout_zeroes_at_most_one_square():
    images = torch.full((500, 32, 32, 3), 200, dtype=torch.uint8)
    out = prepare_batch(images, Augment(crop_padding=0, flip=False, cutout=8), torch.Generator().manual_seed(0))
    zeros = (out == 0).all(1).flatten(1).sum(1)
    assert int(zeros.max()) == 64 and int(zeros.min()) >= 16  # full squares inside, clipped ones at borders (>= 4x4)
    assert torch.unique(out).tolist() == [0.0, torch.tensor(200 / 255).item()]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(backend="fast"), "backend must be one of 'auto', 'ffcv', 'tensor', got 'fast'"),
        (dict(batch_size=0), "batch_size must be an int >= 1"),
        (dict(augment="yes"), "augment must be True, False or an Augment"),
        (dict(split="valid"), "unknown split 'valid'"),
        (dict(seed=-1), "seed must be an int >= 0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = dict(name="digits", split="train", batch_size=64) | kwargs
    with pytest.raises((ValueError, DataError), match=message):
        loader(**args)


def test_bad_augment_fields_are_named():
    with pytest.raises(ValueError, match="Augment.crop_padding must be an int >= 0"):
        Augment(crop_padding=-1)


def test_ffcv_requested_but_missing_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(loaders_module, "ffcv_available", lambda: False)
    with pytest.raises(DataError, match="FFCV does not import here: run `make install`"):
        loader("digits", "train", batch_size=64, backend="ffcv")
    assert loader("digits", "train", batch_size=64, backend="auto").backend == "tensor"


def test_head_is_the_first_images_of_the_split_in_order():
    from ensembles_lib.data import head

    dataset = get("digits", "test")
    x, y = head("digits", "test", 7)
    assert x.shape == (7, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.from_numpy(dataset.labels[:7]))
    assert torch.equal(x, torch.from_numpy(dataset.images[:7]).permute(0, 3, 1, 2).float() / 255)
    assert len(head("digits", "test")[0]) == len(dataset) == len(head("digits", "test", 10_000)[0])
    with pytest.raises(ValueError, match="n"):
        head("digits", "test", 0)
