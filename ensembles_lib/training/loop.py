"""`fit`: the one training loop every chapter uses, with progress bars, checkpoints and resume.

The objective is a strategy (`strategies.py`); everything else is here: the optimiser and the
learning-rate schedule (`optim.py`), a tqdm bar showing the running loss and accuracy, per-epoch
metrics (loss, train accuracy, lr, wall time, plus whatever `eval_fn(model)` returns -- the
Strength in Numbers chapter records clean and robust accuracy per epoch for its Fig. 2a/2b), and
an atomic per-epoch checkpoint from which a killed run resumes to the same final weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
# Plain text bars: notebook widgets would need ipywidgets and, in the book, JavaScript from a CDN.
from tqdm import tqdm

from . import checkpoint as ckpt
from ..fields import Count, check_value
from ..models import channels_last
from ..specs import OptimSpec, validate
from .optim import lr_at, make_optimizer, set_lr
from .strategies import Standard

# Bump when the loop's semantics change (what a given spec trains to); part of every cache key.
TRAINING_VERSION = 2  # 2: channels-last weights and batches (models.layout)



def check_options(*, epochs, **optim) -> OptimSpec:
    """fit's optimisation settings validated by the spec's rules (`specs.OptimSpec`): SpecError
    naming the bad one; epochs must be an int >= 1."""
    check_value(Count, epochs, "epochs")
    if isinstance(optim.get("milestones"), (tuple, range)):
        optim["milestones"] = list(optim["milestones"])
    return validate(OptimSpec, optim, "fit")


def _plain(name, value):
    """A metric as a Python number or string (checkpoints hold primitives only)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()  # a 0-d tensor or a NumPy scalar
    if not isinstance(value, (int, float, str, bool)):
        raise ValueError(f"eval_fn returned {name}={value!r}: metrics must be numbers or strings")
    return value


def _config(epochs, optimizer, lr, momentum, weight_decay, nesterov, schedule, milestones, gamma, strategy) -> dict:
    """What a checkpoint must agree with to be resumed (primitives only)."""
    return {"epochs": epochs, "optimizer": optimizer, "lr": float(lr), "momentum": float(momentum),
            "weight_decay": float(weight_decay), "nesterov": bool(nesterov), "schedule": schedule,
            "milestones": [int(m) for m in milestones], "gamma": float(gamma),
            "strategy": repr(strategy.spec()) if hasattr(strategy, "spec") else repr(strategy)}


def fit(model: nn.Module, train_loader: Iterable, *, epochs: int, strategy=None, optimizer: str = "sgd",
        lr: float, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False,
        schedule: str = "multistep", milestones: tuple = (), gamma: float = 0.1,
        checkpoint: str | Path | None = None, eval_fn: Callable[[nn.Module], dict] | None = None,
        progress: bool = True, device: str | torch.device | None = None) -> list[dict]:
    """Train `model` in place for `epochs` epochs and return the history (one dict per epoch).

    train_loader: an iterable of (x, y) batches (x float NCHW in [0, 1]) with len(); if it has
        `set_epoch(epoch)` it is called before each epoch, so the data order depends only on the
        epoch and a resumed run sees the same batches.
    strategy: an object with `loss(model, x, y) -> (loss, scores)`; default Standard(). If it has
        `start_epoch(epoch)` (0-based) it is called before each epoch, after the loader's set_epoch; if
        it has `after_step(model, step)` it is called after every optimiser step (step counts from 1).
    optimizer, lr, momentum, weight_decay, nesterov: "sgd" or "adam" (momentum is Adam's beta1).
    schedule: "multistep" (times `gamma` at each epoch in `milestones`), "cosine", "onecycle"
        or "constant"; the learning rate is set every step from the global step count.
    checkpoint: a file path; written atomically after every epoch. If it exists, training resumes
        after its last finished epoch (its settings must match these, else ValueError).
    eval_fn: `eval_fn(model) -> dict` of numbers, called after each epoch and merged into that
        epoch's record. It gets the model in eval mode, under a forked RNG, so it cannot change
        what training draws.
    device: where to train; default the device of the model's parameters.
    A convolutional model trains channels-last (`models.channels_last`; the batches too) and is
    left so: the same function, faster on oneDNN and cuDNN; unless the strategy says
    `channels_last = False` (GAL), which trains and leaves it NCHW.

    Each history record has: epoch (1-based), loss, train_acc (on the clean batches), lr (the
    last step's), time_s (the epoch's wall time, training and eval_fn), then eval_fn's entries.
    The model is left in eval mode.
    """
    milestones = tuple(check_options(epochs=epochs, optimizer=optimizer, lr=lr, momentum=momentum,
                                     weight_decay=weight_decay, nesterov=nesterov, schedule=schedule,
                                     milestones=milestones, gamma=gamma).milestones)
    strategy = Standard() if strategy is None else strategy
    after_step = getattr(strategy, "after_step", None)
    if not hasattr(strategy, "loss"):
        raise ValueError(f"strategy must have a loss(model, x, y) method, got {strategy!r}")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"eval_fn must be callable(model) -> dict, got {eval_fn!r}")
    steps_per_epoch = len(train_loader)
    if steps_per_epoch < 1:
        raise ValueError("train_loader is empty: it must yield at least one batch per epoch")

    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    layout = getattr(strategy, "channels_last", True)  # False: the strategy's step runs slower so (GAL)
    channels_last(model.to(device), layout)
    opt = make_optimizer(model.parameters(), optimizer, lr=lr, momentum=momentum,
                         weight_decay=weight_decay, nesterov=nesterov)
    config = _config(epochs, optimizer, lr, momentum, weight_decay, nesterov, schedule, milestones, gamma, strategy)
    total_steps = epochs * steps_per_epoch
    history: list[dict] = []
    start_epoch, step = 0, 0

    if checkpoint is not None and Path(checkpoint).exists():
        state = ckpt.load(checkpoint, map_location=device)
        if state["config"] != config:
            changed = sorted(k for k in config if state["config"].get(k) != config[k])
            raise ValueError(f"checkpoint {checkpoint} was written with different settings ({', '.join(changed)}); "
                             "delete it or pass the settings it was made with")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step, history = state["epoch"], state["schedule"]["step"], list(state["history"])
        ckpt.set_rng_state(state["rng"])

    for epoch in range(start_epoch, epochs):
        began = time.perf_counter()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)
        if hasattr(strategy, "start_epoch"):
            strategy.start_epoch(epoch)  # e.g. DVERGE draws its epoch's layer; a function of epoch only, so resume repeats it
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(train_loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        current_lr = lr
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if layout and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            current_lr = lr_at(schedule, lr, step, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                               milestones=milestones, gamma=gamma)
            set_lr(opt, current_lr)
            loss, scores = strategy.loss(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if after_step is not None:
                after_step(model, step)  # e.g. CLM's similarity examination: weights moved outside the gradient step
            loss_sum += loss.item() * len(y)
            correct += (scores.argmax(dim=1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        bar.close()
        record = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": correct / seen, "lr": current_lr}
        rng_after_training = ckpt.rng_state()
        if eval_fn is not None:
            model.eval()
            with ckpt.fork_rng(device):
                extra = eval_fn(model)
            if not isinstance(extra, dict):
                raise ValueError(f"eval_fn must return a dict of metrics, got {type(extra).__name__}")
            record.update({str(k): _plain(k, v) for k, v in extra.items()})
        record["time_s"] = time.perf_counter() - began
        history.append(record)
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in record.items() if k != "epoch")
            tqdm.write(f"epoch {epoch + 1}/{epochs}: {shown}")
        if checkpoint is not None:
            ckpt.save(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "schedule": {"step": step}, "epoch": epoch + 1, "history": history,
                                   "rng": rng_after_training, "config": config})
    model.eval()
    return history
