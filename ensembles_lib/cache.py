"""Trained models and stored adversarial examples: the two users of the artifact store (DESIGN.md, "cache").

`trained(spec)` returns the model a training-run spec (`specs.TrainingRun`) describes: loaded
from the store when a verified artifact is there, else trained with `training.fit` and stored.
The key hashes the spec's canonical form (defaults filled in), `training.TRAINING_VERSION` and the
content fingerprint of the data it trains on, so a changed hyper-parameter, seed, training code or
dataset file trains anew, while a changed *evaluation* parameter in a notebook reuses what was
trained. The store records the sha256 of every file and checks it on every load; training
checkpoints into the entry's folder (verified before a resume) and the checkpoint is kept until
the artifact is complete. One lock per key: concurrent runs of one spec train it once, the others
wait and load. A damaged artifact or checkpoint is reported and rebuilt, never trusted.

`history(spec)` returns the per-epoch records (loss, train_acc, lr, time_s and the eval metrics).
`adversarial(source, attack, data)` stores adversarial examples computed once on trained models,
as data: the black-box evaluations of the Strength in Numbers and DVERGE chapters reuse them.
`strong(source, attacks, data, eps)` stores which images trained models keep correct under each
attack of a strong white-box suite and under all of them (`evaluation.strong_correct`): the
DVERGE and Strength in Numbers chapters' worst-case robust accuracies.
`list_entries()` and `clear(keys)` back the `ensembles cache list|clear` command.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .data import BACKENDS, get, head, loader
from .ensembles import Ensemble
from .models import channels_last
from .evaluation.epoch_metrics import evaluate
from .evaluation.strong import RESULTS, as_suite, strong_correct
from .paths import data_root
from .specs import (AdversarialExamples, DataSpec, SpecError, StrongEvaluation, TrainingRun, adversarial_examples,
                    check_fits, strong_evaluation, training_run)
from .store import CorruptArtifact, Store
from .training import TRAINING_VERSION, fit, strategy_from_spec
from .training import checkpoint as ckpt

MODEL_FILE, META_FILE, CHECKPOINT_FILE = "model.pt", "meta.json", "checkpoint.pt"
EXAMPLES_FILE = "examples.pt"  # adversarial-example artifacts hold this instead of model.pt
MASKS_FILE = "masks.pt"  # strong-evaluation artifacts hold this
KEY_LENGTH = 16  # hex digits of the SHA-256 used as the folder name (64 bits)


def artifacts_root() -> Path:
    """data_root()/artifacts: where every trained model and stored example set lives."""
    return data_root() / "artifacts"


def store() -> Store:
    """The artifact store under `artifacts_root()`."""
    return Store(artifacts_root())


def _digest(parts: dict) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


def _dataset(data: DataSpec, split: str | None = None):
    return get(data.name, split or data.split, val_size=data.val_size, seed=data.split_seed)


def _key(run: TrainingRun, data_fingerprint: str | None = None) -> str:
    """SHA-256 of the canonical spec, the training version, the fingerprints of the training and
    per-epoch evaluation data, and the keys of the models it starts from. `data_fingerprint`: the
    training data's, when the caller has loaded it already."""
    parts = {"spec": run.canonical(), "training_version": TRAINING_VERSION,
             "data": data_fingerprint or _dataset(run.data).fingerprint(),
             "init": [_key(init) for init in run.inits()]}
    if run.eval is not None:
        parts["eval_data"] = _dataset(run.data, run.eval.split).fingerprint()
    return _digest(parts)


def key(spec) -> str:
    """The artifact key of a training-run spec (a dict or a `specs.TrainingRun`)."""
    return _key(training_run(spec))


def build_model(spec) -> nn.Module:
    """The untrained model of a training-run spec (weights from the global RNG)."""
    return training_run(spec).model.build()


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _checked(spec, backend: str) -> tuple[TrainingRun, str, str]:
    """The validated run, its key and its training data's fingerprint (the data loaded once);
    SpecError for a bad spec or backend, or a model that does not fit its data (class or channel
    counts), before anything is trained or written."""
    run = training_run(spec)
    if backend not in BACKENDS:
        raise SpecError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    dataset = _dataset(run.data)
    check_fits(run.model, dataset)
    for i, init in enumerate(run.inits()):
        check_fits(init.model, _dataset(init.data), where=f"spec['init'][{i}]['model']")
    return run, _key(run, dataset.fingerprint()), dataset.fingerprint()


# --------------------------------------------------------------------------- trained models


def _stored_model(st: Store, k: str, run: TrainingRun, device: torch.device) -> tuple[nn.Module, dict] | None:
    """The verified stored model of key `k` and its meta, None if there is none; a damaged one is
    reported and discarded."""
    try:
        meta = st.load(k)
        if meta is None:
            return None
        if meta.get("spec") != run.canonical() or meta.get("training_version") != TRAINING_VERSION \
                or not isinstance(meta.get("history"), list) or MODEL_FILE not in meta["files"]:
            raise CorruptArtifact(f"{META_FILE} describes another spec or training version, or lacks the "
                                  f"history or {MODEL_FILE}")
        state = torch.load(st.folder(k) / MODEL_FILE, map_location=device, weights_only=True)
        with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG
            model = run.model.build()
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise CorruptArtifact(f"{MODEL_FILE} does not fit the model ({err})") from None
    except CorruptArtifact as err:
        warnings.warn(f"cache: artifact {st.folder(k)} is damaged ({err}); retraining it", stacklevel=3)
        st.discard(k, MODEL_FILE, META_FILE)
        return None
    return channels_last(model.to(device)).eval(), meta


def trained(spec, *, progress: bool = True, device: str | torch.device | None = None,
            backend: str = "auto") -> nn.Module:
    """The trained model `spec` describes, in eval mode on `device` (default: CUDA if available).

    `backend` picks the loader back end when training ("auto", "ffcv", "tensor"); both give the
    same batches, so it is not part of the key (neither is `device`).

    Loads the artifact if a verified one exists; otherwise trains (resuming a killed run from its
    verified checkpoint) and stores it, holding the key's lock so that a concurrent caller waits
    and loads. Invalid specs raise SpecError (a ValueError) before anything is built or written.
    The caller's global random state is left as it was. Used by every chapter that trains.
    """
    return _trained(spec, progress, device, backend)[0]


def _trained(spec, progress: bool, device: str | torch.device | None, backend: str) -> tuple[nn.Module, dict]:
    """`trained`'s model and its verified meta (spec, history, times)."""
    run, k, fingerprint = _checked(spec, backend)
    device = _default_device() if device is None else torch.device(device)
    starts = [trained(init, progress=progress, device=device, backend=backend) for init in run.inits()]
    st = store()
    with st.lock(k):
        stored = _stored_model(st, k, run, device)
        return stored if stored is not None else _train(st, k, run, fingerprint, starts, device, progress, backend)


def _train(st: Store, k: str, run: TrainingRun, fingerprint: str, starts: list[nn.Module], device: torch.device,
           progress: bool, backend: str) -> tuple[nn.Module, dict]:
    """Train `run` (checkpointing in its folder), then commit model.pt and meta.json to the store."""
    began = time.perf_counter()
    folder = st.folder(k)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / CHECKPOINT_FILE
    if checkpoint.exists():
        try:
            ckpt.verify(checkpoint)
        except CorruptArtifact as err:
            warnings.warn(f"cache: checkpoint in {folder} is damaged ({err}); training from scratch", stacklevel=3)
            ckpt.discard(checkpoint)
    data = run.data
    eval_fn = None
    if run.eval is not None:
        x_eval, y_eval = head(data.name, run.eval.split, run.eval.n, device, val_size=data.val_size,
                              split_seed=data.split_seed)
        eval_fn = partial(evaluate, run.eval.metrics, x=x_eval, y=y_eval)
    with ckpt.fork_rng(device):
        torch.manual_seed(run.seed)
        model = run.model.build()
        targets = model.members if isinstance(run.init, list) else [model]
        for target, start in zip(targets, starts):
            target.load_state_dict(start.state_dict())
        # shuffle=True: a training subset taken as split "val" would otherwise keep its stored order
        train_loader = loader(data.name, data.split, batch_size=data.batch_size, device=device, augment=data.augment,
                              backend=backend, seed=run.seed, shuffle=True, val_size=data.val_size,
                              split_seed=data.split_seed)
        history = fit(model, train_loader, epochs=run.epochs, strategy=strategy_from_spec(run.strategy),
                      eval_fn=eval_fn, checkpoint=checkpoint, progress=progress, device=device,
                      **run.optim.model_dump())
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    meta = {
        "key": k, "spec": run.canonical(), "training_version": TRAINING_VERSION,
        "data_fingerprint": fingerprint, "history": history, "metrics": history[-1],
        "wall_time_s": time.perf_counter() - began, "train_time_s": sum(r["time_s"] for r in history),
        "device": str(device), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "ensembles_lib": __version__, "python": platform.python_version()},
    }
    meta = st.commit(k, {MODEL_FILE: partial(torch.save, state)}, meta)
    ckpt.discard(checkpoint)  # only now: until the artifact is complete, a kill resumes from it
    return model.eval(), meta


def history(spec, *, progress: bool = True, device: str | torch.device | None = None,
            backend: str = "auto") -> list[dict]:
    """The per-epoch training records of the model `spec` describes (training it first if needed):
    epoch, loss, train_acc, lr, time_s, and the metrics its "eval" key asks for. The keywords are
    `trained`'s. The Strength in Numbers and DVERGE chapters plot these as training curves."""
    return _trained(spec, progress, device, backend)[1]["history"]


# --------------------------------------------------------------------------- adversarial examples


def _stored_data(st: Store, k: str, spec, held: str, device: torch.device, check):
    """`check(loaded)` of the file `held` of the verified entry k made for `spec`, or None when
    there is none; a damaged entry (bad hash, another spec, `check` raising CorruptArtifact) is
    reported and discarded, never returned."""
    try:
        meta = st.load(k)
        if meta is None:
            return None
        if meta.get("spec") != spec.canonical() or held not in meta["files"]:
            raise CorruptArtifact(f"{META_FILE} describes another spec, or lacks {held}")
        return check(torch.load(st.folder(k) / held, map_location=device, weights_only=True))
    except (CorruptArtifact, KeyError, TypeError, AttributeError) as err:
        warnings.warn(f"cache: artifact {st.folder(k)} is damaged ({err}); recomputing it", stacklevel=3)
        st.discard(k, held, META_FILE)
        return None


def _sources_key(prefix: str, spec, backend: str) -> str:
    """The key of a spec computed from trained `spec.sources` on `spec.data`: it hashes the spec,
    the training code's version, the sources' keys and the images' fingerprint."""
    images = get(spec.data.name, spec.data.split)
    if spec.data.n > len(images):
        raise SpecError(f"{spec.kind}['data']['n']: {spec.data.split} of {spec.data.name} has {len(images)} "
                        f"images, fewer than n={spec.data.n}")
    keys = [_checked(source, backend)[1] for source in spec.sources]
    return prefix + _digest({"spec": spec.canonical(), "training_version": TRAINING_VERSION, "sources": keys,
                             "data": images.fingerprint()})


def _computed_once(prefix: str, spec, held: str, check, compute, device, progress: bool, backend: str):
    """What `compute(model, x, y) -> (result, saved, extra meta)` gives on the trained `spec.sources`
    (one model, or Ensemble(sources, spec.combine)) and the images `spec.data`, computed once under
    the key's lock and stored as `held`; later calls return `check` of the stored file."""
    k = _sources_key(prefix, spec, backend)
    device = _default_device() if device is None else torch.device(device)
    members = [trained(s, progress=progress, device=device, backend=backend) for s in spec.sources]
    st = store()
    with st.lock(k):
        stored = _stored_data(st, k, spec, held, device, check)
        if stored is not None:
            return stored
        began = time.perf_counter()
        model = members[0] if len(members) == 1 else Ensemble(members, combine=spec.combine).to(device).eval()
        x, y = head(spec.data.name, spec.data.split, spec.data.n, device)
        result, saved, extra = compute(model, x, y)
        meta = {"key": k, "spec": spec.canonical(), "n_images": len(x), "wall_time_s": time.perf_counter() - began,
                **extra, "device": str(device), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": {"torch": torch.__version__, "ensembles_lib": __version__}}
        st.commit(k, {held: partial(torch.save, saved)}, meta)
    return result


def _examples_of(spec: AdversarialExamples):
    def check(stored):
        x_adv, y = stored["x_adv"], stored["y"]
        if len(x_adv) != spec.data.n or len(y) != len(x_adv):
            raise CorruptArtifact(f"{EXAMPLES_FILE} holds {len(x_adv)} images, not {spec.data.n}")
        return x_adv, y
    return check


def adversarial(source, attack, data: dict, *, combine: str = "logit", batch_size: int = 500,
                device: str | torch.device | None = None, progress: bool = True,
                backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial examples of the first data["n"] images of data["name"]/data["split"], computed
    once against trained models and stored as data: (x_adv, y) on `device`.

    source: a training-run spec, or a list of them combined as Ensemble(members, combine) (a
        surrogate of differently shaped networks, as in the Strength in Numbers and DVERGE
        black-box columns).
    attack: an attack spec, {"name": "pgd", "eps": ..., "steps": ..., "seed": ...}
        (`attacks.specs.AttackSpec`: any attack taking (model, x, y)).
    The key hashes the spec (sources, combine, attack with its defaults, data, batch_size), the
    sources' artifact keys and the images' fingerprint, so a changed surrogate, attack or dataset
    recomputes. The images are attacked in batches of `batch_size`; it is part of the key because
    seeded random starts are drawn per batch. `backend`: the loader back end of any source that
    must be trained first, as in `trained` (not part of the key).
    """
    spec = adversarial_examples({"sources": source if isinstance(source, list) else [source], "combine": combine,
                                 "attack": attack, "data": data, "batch_size": batch_size})

    def make(model, x, y):
        x_adv = torch.cat([spec.attack.run(model, x[i:i + batch_size], y[i:i + batch_size])
                           for i in range(0, len(x), batch_size)])
        return (x_adv, y), {"x_adv": x_adv.detach().cpu(), "y": y.cpu()}, {}

    return _computed_once("adv-", spec, EXAMPLES_FILE, _examples_of(spec), make, device, progress, backend)


# --------------------------------------------------------------------------- strong evaluation


def _masks_of(spec: StrongEvaluation):
    def check(masks):
        names = [RESULTS[0], *(a["name"] for a in spec.attacks), RESULTS[1]]
        if not isinstance(masks, dict) or list(masks) != names:
            raise CorruptArtifact(f"{MASKS_FILE} holds {list(masks) if isinstance(masks, dict) else masks!r}, "
                                  f"not the masks {names}")
        if any(m.dtype != torch.bool or m.shape != (spec.data.n,) for m in masks.values()):
            raise CorruptArtifact(f"{MASKS_FILE} holds masks that are not {spec.data.n} booleans")
        return masks
    return check


def strong(source, attacks, data: dict, eps: float, *, combine: str = "logit", seed: int = 0,
           batch_size: int = 256, device: str | torch.device | None = None, progress: bool = True,
           backend: str = "auto") -> dict[str, torch.Tensor]:
    """`evaluation.strong_correct` of trained models on the first data["n"] images of
    data["name"]/data["split"] at budget `eps` (L-inf, pixel units), computed once and stored:
    {"clean": (n,) bool, <attack name>: (n,) bool, ..., "worst": (n,) bool} on `device`.

    source: a training-run spec, or a list of them combined as Ensemble(members, combine) (the
        DVERGE chapter's Baseline, SiN's Separate2Adv). attacks: a Suite or its entries
        (`evaluation.suite`), checked before anything is trained. The key hashes the spec (sources,
        combine, the suite's canonical form, data, eps, seed, batch_size), the sources' artifact
        keys and the images' fingerprint; `backend` is the loader of any source still to train.
    """
    chosen = as_suite(attacks)
    spec = strong_evaluation({"sources": source if isinstance(source, list) else [source], "combine": combine,
                              "attacks": chosen.canonical(), "data": data, "eps": eps, "seed": seed,
                              "batch_size": batch_size})

    def evaluate(model, x, y):
        masks = strong_correct(model, x, y, eps=spec.eps, attacks=chosen, seed=spec.seed, batch_size=spec.batch_size)
        accuracy = {name: mask.float().mean().item() for name, mask in masks.items()}
        return masks, {n: m.cpu() for n, m in masks.items()}, {"accuracy": accuracy}

    return _computed_once("strong-", spec, MASKS_FILE, _masks_of(spec), evaluate, device, progress, backend)


# --------------------------------------------------------------------------- the CLI's view


def _summary(meta: dict) -> str:
    """One line saying what an entry holds; ValueError if its spec is not one this version reads,
    CorruptArtifact if it lacks the file its kind holds."""
    spec = meta.get("spec")
    kind = spec.get("kind") if isinstance(spec, dict) else None
    held, read = {"adversarial": (EXAMPLES_FILE, adversarial_examples),
                  "strong": (MASKS_FILE, strong_evaluation)}.get(kind, (MODEL_FILE, training_run))
    if held not in meta["files"]:
        raise CorruptArtifact(f"{META_FILE} lists no {held}")
    return read(spec).describe()


def list_entries() -> list[dict]:
    """One dict per artifact folder, oldest first: key, status ("ok", "unfinished", "corrupt" or
    "stale": made by another version's spec format), a one-line summary, created, wall_time_s,
    size_bytes, path. A malformed entry is reported as such; the listing goes on."""
    entries = []
    for entry in store().entries():
        row = {"key": entry["key"], "status": entry["status"], "summary": entry.get("error") or "",
               "created": entry.get("created"), "wall_time_s": None, "size_bytes": entry["size_bytes"],
               "path": entry["path"]}
        meta = entry.get("meta")
        if entry["status"] == "ok" and isinstance(meta, dict):
            wall = meta.get("wall_time_s")
            row["wall_time_s"] = float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) else None
            try:
                row["summary"] = _summary(meta)
            except CorruptArtifact as err:
                row.update(status="corrupt", summary=str(err))
            except (ValueError, TypeError) as err:
                row.update(status="stale", summary=f"spec not readable by this version ({str(err)[:120]})")
        entries.append(row)
    return sorted(entries, key=lambda e: (str(e["created"] or ""), e["key"]))


def clear(keys: list[str] | None = None) -> list[str]:
    """Delete the artifact folders named by `keys` (full keys or unique prefixes); all if None.
    Returns the keys removed. An unknown or ambiguous key is a ValueError and nothing is removed."""
    return store().clear([keys] if isinstance(keys, str) else keys)
