"""Trained-model artifacts keyed by the hash of everything that produced them (DESIGN.md, "cache").

`trained(spec)` returns the model a spec describes: loaded from data_root()/artifacts/<key>/ when
an artifact is there, else trained with `training.fit` and stored. The key is the SHA-256 of the
spec (defaults filled in, canonical JSON) together with `training.TRAINING_VERSION`, so a changed
hyper-parameter, seed or training-loop version trains anew, while a changed *evaluation* parameter
in a notebook reuses what was trained. An artifact is model.pt (the state dict), then meta.json
(the spec, the per-epoch history, wall time, versions, creation time), each written atomically and
meta last: a folder without meta.json is unfinished. Training checkpoints into the same folder, so
a killed run resumes. Loads use weights_only=True; a corrupt artifact is reported and rebuilt.

A spec (every chapter builds these):

    {"model": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {}},
       # or {"ensemble": [model specs ...], "combine": "prob", "options": {}}
     "data": {"name": "digits", "split": "train", "batch_size": 128, "augment": False},
     "strategy": {"name": "standard"},
       # or {"name": "adversarial", "rho": 1.0, "attack": {"name": "ifgsm", "eps": 0.3, ...}}
     "optim": {"lr": 0.05, "optimizer": "sgd", "schedule": "cosine", ...},  # fit's keywords
     "epochs": 5, "seed": 0,
     # optional: metrics recorded after every epoch on the first n images of a split
     "eval": {"split": "test", "n": 500, "metrics": [{"name": "clean"}, {"name": "robust", "attack": {...}}]},
     # optional: trained models whose weights initialise this one (a list: one spec per member)
     "init": {<a spec>} or [<spec>, ...]}

`history(spec)` returns the per-epoch records (loss, train_acc, lr, time_s and the eval metrics).
`adversarial(source, attack, data)` stores adversarial examples computed once on a trained model,
as data: the black-box evaluations of the Strength in Numbers and DVERGE chapters reuse them.

`list_entries()` and `clear(keys)` back the `ensembles cache list|clear` command.
"""

from __future__ import annotations

import copy
from functools import partial
import hashlib
import inspect
import json
import platform
import shutil
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .data import BACKENDS, head, loader
from .data.catalog import check_name, check_split
from .checks import check_choice, check_int
from .data.dataset import DataError
from .ensembles import COMBINES, Ensemble
from .evaluation.epoch_metrics import check_metric, evaluate
from .models import build
from .paths import atomic_path, data_root
from .training import TRAINING_VERSION, fit, strategy_from_spec
from .training.strategies import SpecAttack
from .training import checkpoint as ckpt
from .training.loop import check_options

MODEL_FILE, META_FILE, CHECKPOINT_FILE = "model.pt", "meta.json", "checkpoint.pt"
EXAMPLES_FILE = "examples.pt"  # adversarial-example artifacts hold this instead of model.pt
KEY_LENGTH = 16  # hex digits of the SHA-256 used as the folder name (64 bits)

SPEC_KEYS = {"model": True, "data": True, "strategy": False, "optim": True, "epochs": True, "seed": True,
             "eval": False, "init": False}
EVAL_KEYS = {"split": False, "n": True, "metrics": True}
DATA_KEYS = {"name": None, "split": None, "batch_size": None, "augment": False, "val_size": 0.1, "split_seed": 0}
OPTIM_NAMES = ("optimizer", "lr", "momentum", "weight_decay", "nesterov", "schedule", "milestones", "gamma")
# fit's own defaults, so a spec that spells a default out and one that omits it share a key
OPTIM_DEFAULTS = {name: p.default for name, p in inspect.signature(fit).parameters.items() if name in OPTIM_NAMES}


def artifacts_root() -> Path:
    """data_root()/artifacts: where every trained model lives."""
    return data_root() / "artifacts"


# --------------------------------------------------------------------------- spec checking


def _require_dict(where: str, value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"spec[{where}] must be a dict, got {value!r}")
    return value


def _check_keys(where: str, value: dict, allowed: dict) -> None:
    """Unknown keys and missing required keys (allowed[k] is None or True for required) are errors."""
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"spec{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    missing = [k for k, default in allowed.items() if (default is None or default is True) and k not in value]
    if missing:
        raise ValueError(f"spec{where}: missing key(s) {', '.join(map(repr, missing))}")



def _model_spec(where: str, spec) -> dict:
    spec = _require_dict(where, spec)
    if "ensemble" in spec:
        _check_keys(where, spec, {"ensemble": True, "combine": True, "options": False})
        members = spec["ensemble"]
        if not isinstance(members, list) or not members:
            raise ValueError(f"spec{where}['ensemble'] must be a non-empty list of model specs, got {members!r}")
        if not isinstance(spec["combine"], str):
            raise ValueError(f"spec{where}['combine'] must be a string, got {spec['combine']!r}")
        return {"ensemble": [_model_spec(f"{where}['ensemble'][{i}]", m) for i, m in enumerate(members)],
                "combine": spec["combine"],
                "options": dict(_require_dict(f"{where}['options']", spec.get("options", {})))}
    _check_keys(where, spec, {"name": True, "num_classes": True, "in_channels": True, "options": False})
    if not isinstance(spec["name"], str):
        raise ValueError(f"spec{where}['name'] must be an architecture name, got {spec['name']!r}")
    return {"name": spec["name"], "num_classes": check_int(spec["num_classes"], f"spec{where}['num_classes']", 2),
            "in_channels": check_int(spec["in_channels"], f"spec{where}['in_channels']", 1),
            "options": dict(_require_dict(f"{where}['options']", spec.get("options", {})))}


def normalize(spec: dict) -> dict:
    """`spec` checked and with every default filled in (ValueError naming the first problem).

    Two specs that train the same model normalise to the same dict, hence the same key. Nothing is
    trained or loaded here, so a misspelt parameter fails in well under a second.
    """
    spec = copy.deepcopy(_require_dict("", spec))
    try:
        json.dumps(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec must be JSON-able (dicts, lists, strings, numbers, booleans): {err}") from None
    _check_keys("", spec, SPEC_KEYS)
    data = _require_dict("['data']", spec["data"])
    _check_keys("['data']", data, DATA_KEYS)
    data = {**{k: v for k, v in DATA_KEYS.items() if v is not None}, **data}
    check_int(data["batch_size"], "spec['data']['batch_size']", 1)
    optim = _require_dict("['optim']", spec["optim"])
    _check_keys("['optim']", optim, {k: (v is inspect.Parameter.empty) for k, v in OPTIM_DEFAULTS.items()})
    optim = {**{k: v for k, v in OPTIM_DEFAULTS.items() if v is not inspect.Parameter.empty}, **optim}
    optim["milestones"] = list(check_options(epochs=check_int(spec["epochs"], "spec['epochs']", 1), **optim))
    try:
        check_name(data["name"])
        check_split(data["split"])
    except DataError as err:
        raise ValueError(f"spec['data']: {err}") from None
    # ValueError for unknown names or parameters; spec() fills in the strategy's defaults
    strategy = strategy_from_spec(spec.get("strategy", {"name": "standard"})).spec()
    model = _model_spec("['model']", spec["model"])
    out = {"model": model, "data": data, "strategy": strategy,
           "optim": optim, "epochs": spec["epochs"], "seed": check_int(spec["seed"], "spec['seed']", 0)}
    # absent optional keys stay absent, so the keys of specs without them do not change
    if "eval" in spec:
        out["eval"] = _eval_spec(spec["eval"])
    if "init" in spec:
        out["init"] = _init_spec(spec["init"], model)
    return out


def _eval_spec(value) -> dict:
    value = _require_dict("['eval']", value)
    _check_keys("['eval']", value, EVAL_KEYS)
    split = value.get("split", "test")
    try:
        check_split(split)
    except DataError as err:
        raise ValueError(f"spec['eval']: {err}") from None
    metrics = value["metrics"]
    if not isinstance(metrics, list) or not metrics:
        raise ValueError(f"spec['eval']['metrics'] must be a non-empty list of metric specs, got {metrics!r}")
    return {"split": split, "n": check_int(value["n"], "spec['eval']['n']", 1),
            "metrics": [check_metric(m, f"spec['eval']['metrics'][{i}]") for i, m in enumerate(metrics)]}


def _init_spec(value, model: dict):
    """A normalised init spec: one spec for the whole model, or one per ensemble member."""
    if isinstance(value, list):
        members = model.get("ensemble")
        if members is None or len(value) != len(members):
            want = f"{len(members)} (one per member)" if members else "a single spec (the model is not an ensemble)"
            raise ValueError(f"spec['init'] lists {len(value)} specs; this model needs {want}")
        pairs = list(zip(value, members))
    else:
        pairs = [(value, model)]
    normalised = []
    for i, (init, target) in enumerate(pairs):
        init = normalize(init)
        if init["model"] != target:
            raise ValueError(f"spec['init']{'' if len(pairs) == 1 else f'[{i}]'} trains {_describe(init['model'])}, "
                             f"which does not match the model it initialises ({_describe(target)})")
        normalised.append(init)
    return normalised if isinstance(value, list) else normalised[0]


def key(spec: dict) -> str:
    """The artifact key: SHA-256 of the canonical JSON of the normalised spec and TRAINING_VERSION."""
    canonical = json.dumps({"spec": normalize(spec), "training_version": TRAINING_VERSION},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH]


# --------------------------------------------------------------------------- building


def build_model(spec: dict) -> nn.Module:
    """The (untrained) model a normalised model spec describes: one architecture or an Ensemble."""
    if "ensemble" in spec:
        return Ensemble([build_model(m) for m in spec["ensemble"]], combine=spec["combine"], **spec["options"])
    return build(spec["name"], num_classes=spec["num_classes"], in_channels=spec["in_channels"], **spec["options"])


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- artifacts


class CorruptArtifact(Exception):
    """An artifact folder whose files cannot be trusted; the message says why."""


def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CorruptArtifact(f"{META_FILE} unreadable ({err})") from None
    if not isinstance(meta, dict) or "spec" not in meta:
        raise CorruptArtifact(f"{META_FILE} has no spec")
    return meta


def _load(folder: Path, spec: dict, device: torch.device) -> nn.Module:
    """The model stored in `folder`, or CorruptArtifact saying what is wrong with it."""
    meta = _read_meta(folder)
    if meta["spec"] != spec or meta.get("training_version") != TRAINING_VERSION:
        raise CorruptArtifact(f"{META_FILE} describes a different spec or training version")
    try:
        state = torch.load(folder / MODEL_FILE, map_location=device, weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zips, unpickling errors, missing files...
        raise CorruptArtifact(f"{MODEL_FILE} unreadable ({type(err).__name__}: {err})") from None
    with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's RNG
        model = build_model(spec["model"])
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CorruptArtifact(f"{MODEL_FILE} does not fit the model ({err})") from None
    return model.to(device).eval()


def _discard(folder: Path, files=(MODEL_FILE, META_FILE, CHECKPOINT_FILE)) -> None:
    for name in files:
        (folder / name).unlink(missing_ok=True)


def trained(spec: dict, *, progress: bool = True, device: str | torch.device | None = None,
            backend: str = "auto") -> nn.Module:
    """The trained model `spec` describes, in eval mode on `device` (default: CUDA if available).

    `backend` picks the loader back end when training ("auto", "ffcv", "tensor"); both give the
    same batches, so it is not part of the key (neither is `device`).

    Loads the artifact if a sound one exists; otherwise trains (resuming a killed run from its
    checkpoint) and stores it. Invalid specs raise ValueError before anything is built or read.
    The caller's global random state is left as it was. Used by every chapter that trains.
    """
    spec = normalize(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}")
    folder = artifacts_root() / key(spec)
    device = _default_device() if device is None else torch.device(device)
    if (folder / META_FILE).exists() or (folder / MODEL_FILE).exists():
        try:
            if not (folder / META_FILE).exists():
                raise CorruptArtifact(f"{MODEL_FILE} without {META_FILE} (a write was interrupted)")
            return _load(folder, spec, device)
        except CorruptArtifact as err:
            warnings.warn(f"cache: artifact {folder} is corrupt or partial: {err}; retraining it", stacklevel=2)
            _discard(folder)
    if (folder / CHECKPOINT_FILE).exists():
        try:
            ckpt.load(folder / CHECKPOINT_FILE)
        except Exception as err:  # noqa: BLE001
            warnings.warn(f"cache: checkpoint in {folder} is unreadable ({type(err).__name__}); training from scratch",
                          stacklevel=2)
            _discard(folder, (CHECKPOINT_FILE,))
    return _train(spec, folder, device, progress, backend)


def _train(spec: dict, folder: Path, device: torch.device, progress: bool, backend: str) -> nn.Module:
    """Train `spec` into `folder` (checkpointing there) and write model.pt, then meta.json."""
    began = time.perf_counter()
    data = spec["data"]
    init = spec.get("init")
    starts = [trained(s, progress=progress, device=device, backend=backend)
              for s in (init if isinstance(init, list) else [init] if init else [])]
    eval_fn = None
    if "eval" in spec:
        x_eval, y_eval = head(data["name"], spec["eval"]["split"], spec["eval"]["n"], device,
                              val_size=data["val_size"], split_seed=data["split_seed"])
        eval_fn = partial(evaluate, spec["eval"]["metrics"], x=x_eval, y=y_eval)
    folder.mkdir(parents=True, exist_ok=True)
    with ckpt.fork_rng(device):
        torch.manual_seed(spec["seed"])
        model = build_model(spec["model"])
        if starts:
            targets = model.members if isinstance(init, list) else [model]
            for target, start in zip(targets, starts):
                target.load_state_dict(start.state_dict())
        strategy = strategy_from_spec(spec["strategy"])
        # shuffle=True: a training subset taken as split "val" would otherwise keep its stored order
        train_loader = loader(data["name"], data["split"], batch_size=data["batch_size"], device=device,
                              augment=data["augment"], backend=backend, seed=spec["seed"], shuffle=True,
                              val_size=data["val_size"], split_seed=data["split_seed"])
        history = fit(model, train_loader, epochs=spec["epochs"], strategy=strategy, eval_fn=eval_fn,
                      checkpoint=folder / CHECKPOINT_FILE, progress=progress, device=device, **spec["optim"])
    with atomic_path(folder / MODEL_FILE) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    meta = {
        "key": folder.name, "spec": spec, "training_version": TRAINING_VERSION, "history": history,
        "metrics": history[-1], "wall_time_s": time.perf_counter() - began,
        "train_time_s": sum(r["time_s"] for r in history), "device": str(device),
        "versions": {"torch": torch.__version__, "ensembles_lib": __version__, "python": platform.python_version()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(folder / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    _discard(folder, (CHECKPOINT_FILE,))
    return model.eval()


def history(spec: dict, **kwargs) -> list[dict]:
    """The per-epoch training records of the model `spec` describes (training it first if needed):
    epoch, loss, train_acc, lr, time_s, and the metrics its "eval" key asks for. `kwargs` go to
    `trained`. The Strength in Numbers and DVERGE chapters plot these as training curves."""
    spec = normalize(spec)
    trained(spec, **kwargs)
    return _read_meta(artifacts_root() / key(spec))["history"]


# --------------------------------------------------------------------------- adversarial examples


def _adversarial_spec(source, attack: dict, data: dict, combine: str, batch_size: int) -> dict:
    sources = [normalize(s) for s in (source if isinstance(source, list) else [source])]
    if not sources:
        raise ValueError("source must be a spec or a non-empty list of specs")
    check_choice(combine, "combine", COMBINES)
    data = _require_dict("data", data)
    _check_keys("data", data, {"name": True, "split": True, "n": True})
    try:
        check_name(data["name"])
        check_split(data["split"])
    except DataError as err:
        raise ValueError(f"data: {err}") from None
    check_int(data["n"], "data['n']", 1)
    check_int(batch_size, "batch_size", 1)
    return {"kind": "adversarial", "sources": sources, "combine": combine, "attack": SpecAttack(attack).full_spec(),
            "data": dict(data), "batch_size": batch_size}


def adversarial(source, attack: dict, data: dict, *, combine: str = "logit", batch_size: int = 500,
                device: str | torch.device | None = None, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial examples of the first data["n"] images of data["name"]/data["split"], computed
    once against a trained model and stored as data: (x_adv, y) on `device`.

    source: a spec, or a list of specs combined as Ensemble(members, combine) (a surrogate of
        differently shaped networks, as in the Strength in Numbers and DVERGE black-box columns).
    attack: an attack spec, {"name": "pgd", "eps": ..., "steps": ..., "seed": ...}; any attack
        taking (model, x, y) (training.strategies.ATTACK_NAMES).
    The key hashes the normalised sources, combine, attack (defaults filled in), data and
    batch_size, so a changed surrogate or attack recomputes. The images are attacked in batches of
    `batch_size`; it is part of the key because seeded random starts are drawn per batch.
    """
    spec = _adversarial_spec(source, attack, data, combine, batch_size)
    device = _default_device() if device is None else torch.device(device)
    canonical = json.dumps({"spec": spec, "training_version": TRAINING_VERSION}, sort_keys=True, separators=(",", ":"))
    folder = artifacts_root() / ("adv-" + hashlib.sha256(canonical.encode()).hexdigest()[:KEY_LENGTH])
    if (folder / META_FILE).exists():
        try:
            meta = _read_meta(folder)
            if meta["spec"] != spec:
                raise CorruptArtifact(f"{META_FILE} describes a different spec")
            stored = torch.load(folder / EXAMPLES_FILE, map_location=device, weights_only=True)
            x_adv, y = stored["x_adv"], stored["y"]
            if len(x_adv) != meta["n_images"] or len(y) != len(x_adv):
                raise CorruptArtifact(f"{EXAMPLES_FILE} holds {len(x_adv)} images, not {meta.get('n_images')}")
            return x_adv, y
        except (CorruptArtifact, KeyError, TypeError) as err:
            warnings.warn(f"cache: artifact {folder} is corrupt or partial: {err}; recomputing it", stacklevel=2)
            _discard(folder, (EXAMPLES_FILE, META_FILE))
        except Exception as err:  # noqa: BLE001 - truncated zips, unpickling errors
            warnings.warn(f"cache: artifact {folder} is unreadable ({type(err).__name__}); recomputing it", stacklevel=2)
            _discard(folder, (EXAMPLES_FILE, META_FILE))
    began = time.perf_counter()
    members = [trained(s, progress=progress, device=device) for s in spec["sources"]]
    model = members[0] if len(members) == 1 else Ensemble(members, combine=combine).to(device).eval()
    x, y = head(data["name"], data["split"], data["n"], device)
    run = SpecAttack(spec["attack"])
    x_adv = torch.cat([run(model, x[i:i + batch_size], y[i:i + batch_size])
                       for i in range(0, len(x), batch_size)])
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / EXAMPLES_FILE) as tmp:
        torch.save({"x_adv": x_adv.detach().cpu(), "y": y.cpu()}, tmp)
    meta = {"key": folder.name, "spec": spec, "n_images": len(x_adv), "wall_time_s": time.perf_counter() - began,
            "device": str(device), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": {"torch": torch.__version__, "ensembles_lib": __version__}}
    with atomic_path(folder / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return x_adv, y


# --------------------------------------------------------------------------- the CLI's view


def _describe(model_spec: dict) -> str:
    if "ensemble" in model_spec:
        names = [_describe(m) for m in model_spec["ensemble"]]
        same = len(set(names)) == 1
        return f"ensemble({len(names)}x{names[0]}" + ("" if same else "...") + f", {model_spec['combine']})"
    return model_spec["name"]


def list_entries() -> list[dict]:
    """One dict per artifact folder, oldest first: key, status ("ok", "unfinished" or "corrupt"),
    a one-line summary, created, wall_time_s, size_bytes, path. Reads only the meta files."""
    root = artifacts_root()
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        entry = {"key": folder.name, "status": "unfinished", "summary": "", "created": None,
                 "wall_time_s": None, "size_bytes": size, "path": str(folder)}
        if (folder / META_FILE).exists():
            try:
                meta = _read_meta(folder)
                spec = meta["spec"]
                if spec.get("kind") == "adversarial":
                    sources = [_describe(s["model"]) for s in spec["sources"]]
                    entry.update(status="ok" if (folder / EXAMPLES_FILE).exists() else "corrupt",
                                 created=meta.get("created"), wall_time_s=meta.get("wall_time_s"),
                                 summary=f"{spec['attack']['name']} examples of {meta.get('n_images')} "
                                         f"{spec['data']['name']} {spec['data']['split']} images from "
                                         f"{' + '.join(sources)}")
                    entries.append(entry)
                    continue
                entry.update(status="ok" if (folder / MODEL_FILE).exists() else "corrupt",
                             created=meta.get("created"), wall_time_s=meta.get("wall_time_s"),
                             summary=f"{_describe(spec['model'])} on {spec['data']['name']}, "
                                     f"{spec['strategy']['name']}, {spec['epochs']} epochs, seed {spec['seed']}")
            except (CorruptArtifact, KeyError, TypeError) as err:
                entry.update(status="corrupt", summary=str(err))
        entries.append(entry)
    return sorted(entries, key=lambda e: (e["created"] or "", e["key"]))


def clear(keys: list[str] | None = None) -> list[str]:
    """Delete the artifact folders named by `keys` (full keys or unique prefixes); all if None.

    Returns the keys removed. An unknown or ambiguous key is a ValueError and nothing is removed.
    """
    root = artifacts_root()
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    if keys is None:
        chosen = present
    else:
        if isinstance(keys, str):
            keys = [keys]
        chosen = []
        for wanted in keys:
            matches = [k for k in present if k.startswith(wanted)] if wanted else []
            if len(matches) != 1:
                why = "matches no artifact" if not matches else f"is ambiguous ({', '.join(matches)})"
                raise ValueError(f"keys: {wanted!r} {why}; `ensembles cache list` shows the keys")
            chosen.append(matches[0])
    for name in chosen:
        shutil.rmtree(root / name)
    return chosen
