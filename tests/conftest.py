"""Shared test fixtures: a throw-away data root, and markers for data only some machines have."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ensembles_lib.data import catalog

# Tiny test models run many times slower on two torch threads whenever anything else shares the
# two cores (the threads wait on each other); one thread keeps the whole suite fast and steady.
torch.set_num_threads(1)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def tmp_data_root(tmp_path, monkeypatch):
    """Point the data root at an empty temporary folder for one test."""
    root = tmp_path / "data_root"
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(root))
    return root


def cifar10_jpeg_present() -> bool:
    return any(p.is_file() for p in catalog.cifar10_jpeg_candidates())


needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (make install does it as root)",
)
needs_cifar10 = pytest.mark.skipif(
    not cifar10_jpeg_present(),
    reason="the CIFAR-10 JPEG copy is not here (../shared/data/cifar10-jpeg.tar.gz or $ENSEMBLES_CIFAR10_JPEG)",
)
