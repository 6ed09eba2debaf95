"""Trained-model artifacts: keys, load-instead-of-train, corruption, resume, list and clear."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ensembles_lib import Ensemble, cache
from ensembles_lib.data import loader
from ensembles_lib.evaluation import accuracy

SPEC = {
    "model": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 8}},
    "data": {"name": "digits", "split": "train", "batch_size": 128},
    "strategy": {"name": "standard"},
    "optim": {"lr": 0.05, "schedule": "cosine"},
    "epochs": 2,
    "seed": 0,
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private data root and a counter of fit calls."""
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "root"))
    calls = []
    real_fit = cache.fit

    def counting_fit(*args, **kwargs):
        calls.append(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cache, "fit", counting_fit)
    yield calls


def spec_with(**changes) -> dict:
    spec = copy.deepcopy(SPEC)
    spec.update(changes)
    return spec


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def test_second_call_loads_instead_of_training(isolated):
    model = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 1 and not model.training
    folder = cache.artifacts_root() / cache.key(SPEC)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.pt"]  # checkpoint removed
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["spec"] == cache.normalize(SPEC) and len(meta["history"]) == 2
    assert meta["versions"]["torch"] == torch.__version__ and meta["wall_time_s"] > 0
    again = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 1
    assert same_weights(model, again)
    x, y = next(iter(loader("digits", "test", batch_size=450, backend="tensor")))
    assert accuracy(again, x, y) == accuracy(model, x, y) > 0.5


def test_training_is_seeded_and_leaves_the_global_rng_alone(isolated, tmp_path, monkeypatch):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    first = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert torch.equal(torch.rand(3), expected)
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "other_root"))
    second = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2 and same_weights(first, second)


def test_truncated_model_file_is_reported_and_retrained(isolated):
    model = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=folder.name):
        rebuilt = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2 and same_weights(model, rebuilt)
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")  # the rebuilt artifact is sound
    assert len(isolated) == 2


def test_model_file_without_meta_is_partial_and_retrained(isolated):
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    (folder / "meta.json").unlink()
    with pytest.warns(UserWarning, match="meta.json"):
        cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2


def test_changed_spec_retrains_and_defaults_do_not(isolated):
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    explicit = spec_with(data={**SPEC["data"], "augment": False}, optim={**SPEC["optim"], "momentum": 0.9})
    assert cache.key(explicit) == cache.key(SPEC)
    cache.trained(explicit, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 1
    changed = spec_with(seed=1)
    assert cache.key(changed) != cache.key(SPEC)
    cache.trained(changed, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2
    assert cache.key(spec_with(epochs=3)) != cache.key(SPEC)
    assert cache.key(spec_with(optim={"lr": 0.1, "schedule": "cosine"})) != cache.key(SPEC)


def test_killed_training_resumes_from_the_artifact_checkpoint(isolated, tmp_path, monkeypatch):
    reference = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "killed_root"))
    real_fit = cache.fit

    def dying_fit(*args, **kwargs):
        def eval_fn(model):
            if len(epochs_done) == 1:
                raise KeyboardInterrupt
            epochs_done.append(1)
            return {}
        return real_fit(*args, eval_fn=eval_fn, **kwargs)

    epochs_done: list = []
    monkeypatch.setattr(cache, "fit", dying_fit)
    with pytest.raises(KeyboardInterrupt):
        cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]
    assert [e["status"] for e in cache.list_entries()] == ["unfinished"]
    monkeypatch.setattr(cache, "fit", real_fit)
    resumed = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert same_weights(reference, resumed)
    meta = json.loads((folder / "meta.json").read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2]


@pytest.mark.parametrize("spec, name", [
    (spec_with(epoch=2), "epoch"),
    ({k: v for k, v in SPEC.items() if k != "seed"}, "seed"),
    (spec_with(optim={"lr": 0.05, "learning_rate": 1}), "learning_rate"),
    (spec_with(optim={"schedule": "cosine"}), "lr"),
    (spec_with(optim={"lr": 0.05, "optimizer": "rmsprop"}), "optimizer"),
    (spec_with(data={"name": "digits", "split": "training", "batch_size": 8}), "split"),
    (spec_with(data={"name": "digitz", "split": "train", "batch_size": 8}), "digitz"),
    (spec_with(model={"name": "small_cnn", "num_classes": 10}), "in_channels"),
    (spec_with(strategy={"name": "adversarial", "attack": {"name": "pgd", "eps": 0.3, "stpes": 3}}), "stpes"),
    (spec_with(strategy={"name": "adversarial"}), "attack"),
    (spec_with(epochs=0), "epochs"),
    (spec_with(seed=torch.tensor(1)), "JSON"),
])
def test_invalid_specs_fail_before_training(isolated, spec, name):
    with pytest.raises(ValueError, match=name):
        cache.trained(spec, progress=False, device="cpu", backend="tensor")
    assert isolated == []
    assert not cache.artifacts_root().exists() or not any(cache.artifacts_root().iterdir())


def test_adversarial_ensemble_spec_trains_the_whole_ensemble(isolated):
    member = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
    spec = spec_with(model={"ensemble": [member, member], "combine": "prob"}, epochs=1,
                     strategy={"name": "adversarial", "rho": 1.0, "attack": {"name": "ifgsm", "eps": 0.1, "steps": 2}})
    model = cache.trained(spec, progress=False, device="cpu", backend="tensor")
    assert isinstance(model, Ensemble) and len(model.members) == 2
    a, b = (m.state_dict()["fc.weight"] for m in model.members)
    assert not torch.equal(a, b)  # members initialised differently (SiN's only source of diversity)
    normalized = cache.normalize(spec)
    assert normalized["strategy"]["attack"]["loss"] == "ce"  # the attack's defaults are part of the key
    loaded = cache.trained(spec, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 1 and same_weights(model, loaded)


def test_list_and_clear(isolated):
    assert cache.list_entries() == []
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    cache.trained(spec_with(seed=1), progress=False, device="cpu", backend="tensor")
    entries = cache.list_entries()
    assert len(entries) == 2 and {e["status"] for e in entries} == {"ok"}
    assert "small_cnn on digits" in entries[0]["summary"] and entries[0]["size_bytes"] > 0
    keys = {cache.key(SPEC), cache.key(spec_with(seed=1))}
    assert {e["key"] for e in entries} == keys
    with pytest.raises(ValueError, match="nope"):
        cache.clear(["nope"])
    assert cache.clear([cache.key(SPEC)[:6]]) == [cache.key(SPEC)]
    assert [e["key"] for e in cache.list_entries()] == [cache.key(spec_with(seed=1))]
    assert cache.clear() == [cache.key(spec_with(seed=1))]
    assert cache.list_entries() == []
