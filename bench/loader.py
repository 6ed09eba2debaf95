"""Loader throughput on the CIFAR-10 train set with crop + flip: FFCV and tensor back ends against
the torch DataLoader a user would otherwise write.

Baseline: torchvision's CIFAR10 dataset (python-pickle format, rebuilt here from our decoded copy
of the JPEG CIFAR-10, so the reading path is torchvision's own) with transforms.v2 RandomCrop(32, 4)
+ RandomHorizontalFlip + ToDtype, in a torch DataLoader with 2 workers (persistent, so worker
start-up is not charged to any epoch). Every loader ends with float32 NCHW batches on the device.
Reports images/s per full epoch (median of --epochs timed epochs after one warm-up) and the ratio
to the baseline measured in the same run.

Measured on the 2-core CPU machine (no GPU), batch 512: see the issue note for the figures;
run with `python bench/loader.py [--device cuda] [--epochs 3]`.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

import torch

from ensembles_lib.data import ffcv_available, get, loader
from ensembles_lib.paths import data_root


def write_cifar10_pickles(folder: Path) -> Path:
    """Our decoded CIFAR-10 in torchvision's on-disk format (cifar-10-batches-py), once."""
    batches = folder / "cifar-10-batches-py"
    if (batches / "test_batch").exists():
        return folder
    batches.mkdir(parents=True, exist_ok=True)
    train, test = get("cifar10", "train"), get("cifar10", "test")
    flat = lambda ds, sl: ds.images[sl].transpose(0, 3, 1, 2).reshape(-1, 3072)  # noqa: E731 - CIFAR row layout
    for i in range(5):
        part = slice(i * 10000, (i + 1) * 10000)
        with open(batches / f"data_batch_{i + 1}", "wb") as f:
            pickle.dump({"data": flat(train, part), "labels": train.labels[part].tolist()}, f)
    with open(batches / "test_batch", "wb") as f:
        pickle.dump({"data": flat(test, slice(None)), "labels": test.labels.tolist()}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(train.classes)}, f)
    return folder


def baseline_loader(batch_size: int, workers: int):
    from torchvision.datasets import CIFAR10
    from torchvision.transforms import v2

    class LocalCIFAR10(CIFAR10):
        # Our pickles are rebuilt from the JPEG copy, so torchvision's md5 check of the originals
        # cannot pass; everything else (unpickling, PIL images, transforms) is torchvision's own.
        meta = {**CIFAR10.meta, "md5": None}

        def _check_integrity(self) -> bool:
            return True

    transform = v2.Compose([v2.ToImage(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
                            v2.ToDtype(torch.float32, scale=True)])
    dataset = LocalCIFAR10(str(write_cifar10_pickles(data_root() / "bench")), train=True, transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0, drop_last=False)


def epoch_rates(batches, device: torch.device, epochs: int, to_device: bool) -> list[float]:
    """Images/s of each full epoch after one untimed warm-up epoch."""
    rates = []
    for epoch in range(epochs + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, seen = time.perf_counter(), 0
        for x, y in batches:
            if to_device:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch > 0:
            rates.append(seen / (time.perf_counter() - start))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loader (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    args = parser.parse_args()
    device = torch.device(args.device)
    try:
        get("cifar10", "train")
    except Exception as err:  # noqa: BLE001 - report and stop: the benchmark needs the real data
        print(f"bench/loader.py needs CIFAR-10: {err}", file=sys.stderr)
        return 1

    candidates = {"baseline (DataLoader + v2)": lambda: baseline_loader(args.batch_size, args.workers)}
    candidates["tensor"] = lambda: loader("cifar10", "train", args.batch_size, device, augment=True, backend="tensor")
    if ffcv_available():
        candidates["ffcv"] = lambda: loader("cifar10", "train", args.batch_size, device, augment=True, backend="ffcv")
    else:
        print("FFCV does not import here: measuring the tensor back end only.")

    print(f"CIFAR-10 (JPEG q75 copy) train, 50,000 images, batch {args.batch_size}, crop(4)+flip, device {device}, "
          f"{args.epochs} timed epochs after 1 warm-up, torch {torch.__version__}")
    medians = {}
    for name, make in candidates.items():
        rates = epoch_rates(make(), device, args.epochs, to_device=name.startswith("baseline"))
        medians[name] = statistics.median(rates)
        print(f"  {name:<28} {medians[name]:>10,.0f} img/s  (epochs: {', '.join(f'{r:,.0f}' for r in rates)})")
    base = medians["baseline (DataLoader + v2)"]
    for name, rate in medians.items():
        print(f"  ratio {name:<22} {rate / base:>6.2f}x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
