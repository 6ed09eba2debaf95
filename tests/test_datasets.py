"""ensembles_lib.data.get: real datasets, splits, and every error path."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from ensembles_lib.data import DataError, DataNotFound, get, sources, store
from ensembles_lib.data.catalog import holdout_indices

from .conftest import needs_cifar10, needs_fashion


def test_digits_everywhere():
    train, test = get("digits", "train"), get("digits", "test")
    assert train.images.dtype == np.uint8 and train.images.shape == (1347, 8, 8, 1)
    assert test.images.shape == (450, 8, 8, 1) and test.labels.dtype == np.int64
    assert train.classes == tuple("0123456789") and train.name == "digits"
    assert train.images.max() == 255 and train.images.min() == 0
    assert set(np.bincount(test.labels)) <= {43, 44, 45, 46}  # stratified hold-out


@needs_fashion
def test_fashion_mnist_from_debian_files():
    train, test = get("fashion_mnist", "train"), get("fashion_mnist", "test")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert len(test) == 10000 and train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


@needs_cifar10
def test_cifar10_from_jpeg_copy():
    train, test = get("cifar10", "train"), get("cifar10", "test")
    assert train.images.shape == (50000, 32, 32, 3) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert "JPEG" in train.source
    assert 100 < train.images.mean() < 140  # real photographs, not blank or noise


def test_fit_val_split_is_a_seeded_partition():
    train = get("digits", "train")
    fit, val = get("digits", "fit", val_size=300, seed=7), get("digits", "val", val_size=300, seed=7)
    assert len(fit) == 1047 and len(val) == 300
    fit_idx, val_idx = holdout_indices(len(train), 300, 7)
    assert np.intersect1d(fit_idx, val_idx).size == 0 and np.union1d(fit_idx, val_idx).size == len(train)
    assert np.array_equal(val.images, train.images[val_idx]) and np.array_equal(fit.labels, train.labels[fit_idx])
    again = get("digits", "val", val_size=300, seed=7)
    other = get("digits", "val", val_size=300, seed=8)
    assert np.array_equal(again.images, val.images)
    assert not np.array_equal(other.labels, val.labels) or not np.array_equal(other.images, val.images)
    assert len(get("digits", "val", val_size=0.1)) == round(0.1 * 1347)


@needs_cifar10
def test_trend_45000_5000_split():
    assert len(get("cifar10", "fit", val_size=5000)) == 45000
    assert len(get("cifar10", "val", val_size=5000)) == 5000


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(DataError, match="unknown dataset name 'cifar11'.*cifar10, cifar100, mnist, fashion_mnist, digits"):
        get("cifar11", "train")


def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(DataError, match="unknown split 'training'.*train.*test.*fit.*val"):
        get("digits", "training")


@pytest.mark.parametrize("val_size", [0.0, 1.5, 0, 2000, "10%", True])
def test_bad_val_size_is_named(val_size):
    with pytest.raises(DataError, match="val_size"):
        get("digits", "val", val_size=val_size)


def test_missing_data_lists_every_source_and_the_fix(tmp_data_root, monkeypatch):
    def offline(name, root):
        raise sources.SourceUnavailable("download failed: offline (test)")

    monkeypatch.setattr(sources, "from_torchvision", offline)
    with pytest.raises(DataNotFound) as caught:
        get("mnist", "train")
    message = str(caught.value)
    assert "decoded cache" in message and "not built yet" in message
    assert message.count("IDX files in") == 3 and "/usr/share/datasets/mnist" in message
    assert "torchvision download" in message and "offline (test)" in message
    assert "To fix:" in message and "mnist/raw" in message


def _write_png_tree(root, sizes=((6, 5),), grey=False):
    """A tiny ImageFolder tree: train/{cat,dog} 3 images each, test/{cat,dog} 1 each; returns pixels."""
    rng = np.random.default_rng(0)
    pixels = {}
    for split, count in (("train", 3), ("test", 1)):
        for cls in ("dog", "cat"):
            for i in range(count):
                h, w = sizes[i % len(sizes)]
                array = rng.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)
                path = root / split / cls / f"{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(path)
                pixels[(split, cls, i)] = array
    return pixels


@pytest.mark.parametrize("form", ["dir", "tar.gz", "zip"])
def test_imagefolder_directory_and_archives(tmp_path, tmp_data_root, form):
    tree = tmp_path / "pets"
    pixels = _write_png_tree(tree)
    target = tree
    if form == "tar.gz":
        target = tmp_path / "pets.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            tar.add(tree, arcname="pets")
    elif form == "zip":
        target = tmp_path / "pets.zip"
        with zipfile.ZipFile(target, "w") as archive:
            for file in tree.rglob("*.png"):
                archive.write(file, file.relative_to(tree).as_posix())
    train = get(f"imagefolder:{target}", "train")
    test = get(f"imagefolder:{target}", "test")
    assert train.classes == ("cat", "dog") and train.images.shape == (6, 6, 5, 3)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.labels.tolist() == [0, 1]
    assert np.array_equal(train.images[4], pixels[("train", "dog", 1)])  # PNG is lossless
    assert np.array_equal(test.images[0], pixels[("test", "cat", 0)])


def test_imagefolder_directory_cache_sees_edits_inside_class_folders(tmp_path, tmp_data_root):
    """The decoded cache of a directory source is stamped with every file under it, not the top folder."""
    tree = tmp_path / "pets"
    pixels = _write_png_tree(tree)
    name = f"imagefolder:{tree}"
    before = get(name, "train")
    assert np.array_equal(before.images[1], pixels[("train", "cat", 1)])
    edited = tree / "train" / "cat" / "001.png"
    new_pixels = np.full((6, 5, 3), 7, dtype=np.uint8)
    stat = edited.stat()
    Image.fromarray(new_pixels).save(edited)
    # file-system clocks tick coarsely: make sure the edit is not within the tick of the first write
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = get(name, "train")
    assert np.array_equal(after.images[1], new_pixels) and after.fingerprint() != before.fingerprint()
    assert np.array_equal(after.images[0], before.images[0])  # the rest is decoded unchanged
    Image.fromarray(new_pixels).save(tree / "train" / "dog" / "009.png")  # an added image
    assert len(get(name, "train")) == 7
    (tree / "train" / "cat" / "000.png").unlink()  # a removed one
    assert len(get(name, "train")) == 6 and get(name, "train").labels.tolist() == [0, 0, 1, 1, 1, 1]
    assert len(get(name, "test")) == 2  # the other split is stamped by the same tree and still right


def test_imagefolder_greyscale_stays_one_channel(tmp_path, tmp_data_root):
    _write_png_tree(tmp_path / "g", grey=True)
    assert get(f"imagefolder:{tmp_path / 'g'}", "train").images.shape == (6, 6, 5, 1)


def test_imagefolder_mixed_sizes_is_an_error(tmp_path, tmp_data_root):
    _write_png_tree(tmp_path / "m", sizes=((6, 5), (7, 5)))
    with pytest.raises(DataError, match="differ in size"):
        get(f"imagefolder:{tmp_path / 'm'}", "train")


def test_imagefolder_missing_path(tmp_path, tmp_data_root):
    with pytest.raises(DataNotFound, match="does not exist"):
        get(f"imagefolder:{tmp_path / 'nowhere'}", "train")


def test_corrupt_archive_names_the_file(tmp_path, tmp_data_root):
    _write_png_tree(tmp_path / "pets")
    good = tmp_path / "pets.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tmp_path / "pets", arcname="pets")
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated archive .*broken.tar.gz"):
        get(f"imagefolder:{broken}", "train")


def test_corrupt_image_in_archive_names_the_member(tmp_path, tmp_data_root):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"not a png at all"
        info = tarfile.TarInfo("set/train/cat/001.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="corrupt image 'set/train/cat/001.png'"):
        get(f"imagefolder:{archive}", "train")


def test_corrupt_idx_file_names_the_file(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(DataError, match=f"corrupt IDX file {bad}"):
        sources.read_idx(bad)


@pytest.mark.parametrize("damage", ["truncate", "flip_a_byte", "garbage"])
def test_corrupt_cache_is_reported_and_rebuilt(tmp_data_root, damage):
    original = get("digits", "train")
    path = store.cache_path(tmp_data_root, "digits", "train")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "flip_a_byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"garbage" * 10)
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=f"corrupt dataset cache {path}"):
        rebuilt = get("digits", "train")
    assert np.array_equal(rebuilt.images, original.images) and np.array_equal(rebuilt.labels, original.labels)
    assert store.load(path, "digits", "train") is not None  # the rebuilt cache is whole again


def test_cache_is_used_on_the_second_call(tmp_data_root, monkeypatch):
    first = get("digits", "test")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the source was read although a cache exists")

    monkeypatch.setattr(sources, "from_sklearn_digits", must_not_run)
    assert np.array_equal(get("digits", "test").images, first.images)
