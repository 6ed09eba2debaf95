"""Trained-model artifacts: keys, load-instead-of-train, corruption, resume, list and clear."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ensembles_lib import Ensemble, cache, specs
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
    assert meta["spec"] == specs.training_run(SPEC).canonical() and len(meta["history"]) == 2
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
    (folder / "meta.json").unlink()  # as a kill between model.pt and meta.json leaves it
    assert [e["status"] for e in cache.list_entries()] == ["unfinished"]
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2 and [e["status"] for e in cache.list_entries()] == ["ok"]


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
        assert kwargs.pop("eval_fn") is None  # SPEC has no "eval" key
        return real_fit(*args, eval_fn=eval_fn, **kwargs)

    epochs_done: list = []
    monkeypatch.setattr(cache, "fit", dying_fit)
    with pytest.raises(KeyboardInterrupt):
        cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "checkpoint.pt.sha256"]
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
    (spec_with(seed=torch.tensor(1)), "seed"),
    (spec_with(seed=99999999999999999999999), "seed"),
    (spec_with(seed=-1), "seed"),
    (spec_with(epochs=True), "epochs"),
    (spec_with(model={**SPEC["model"], "num_classes": 3}), "num_classes=3.*10 classes"),
    (spec_with(model={**SPEC["model"], "in_channels": 3}), "in_channels=3.*1 channel"),
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
    canonical = specs.training_run(spec).canonical()
    assert canonical["strategy"]["attack"]["loss"] == "ce"  # the attack's defaults are part of the key
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


# --------------------------------------------------------------------------- eval, init, history


EVAL = {"split": "test", "n": 100, "metrics": [{"name": "clean"},
                                                {"name": "robust", "attack": {"name": "fgsm", "eps": 0.2}}]}


def test_eval_key_records_clean_and_robust_accuracy_per_epoch(isolated):
    from ensembles_lib.attacks import fgsm
    from ensembles_lib.data import head

    spec = spec_with(eval=EVAL)
    assert cache.key(spec) != cache.key(SPEC)  # the recorded metrics belong to the artifact
    assert "eval" not in specs.training_run(SPEC).canonical()  # absent optional keys stay absent
    records = cache.history(spec, progress=False, device="cpu", backend="tensor")
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0 <= r["robust_acc"] <= r["clean_acc"] <= 1 for r in records)
    model = cache.trained(spec, progress=False, device="cpu")
    x, y = head("digits", "test", 100)
    assert records[-1]["clean_acc"] == pytest.approx(accuracy(model, x, y))
    assert records[-1]["robust_acc"] == pytest.approx(accuracy(model, fgsm(model, x, y, eps=0.2), y))
    assert len(isolated) == 1  # history() of a trained spec reads the artifact
    cache.history(spec, progress=False, device="cpu")
    assert len(isolated) == 1


def test_eval_and_init_errors_name_the_parameter():
    with pytest.raises(ValueError, match="metrics"):
        specs.training_run(spec_with(eval={"n": 10, "metrics": [{"name": "loss"}]}))
    with pytest.raises(ValueError, match="attack"):
        specs.training_run(spec_with(eval={"n": 10, "metrics": [{"name": "robust"}]}))
    with pytest.raises(ValueError, match="epsilon"):
        specs.training_run(spec_with(eval={"n": 10, "metrics": [{"name": "robust", "attack": {"name": "pgd", "epsilon": 1}}]}))
    with pytest.raises(ValueError, match="n"):
        specs.training_run(spec_with(eval={"n": 0, "metrics": [{"name": "clean"}]}))
    with pytest.raises(ValueError, match="does not match"):
        specs.training_run(spec_with(init=spec_with(model={**SPEC["model"], "options": {"width": 4}})))
    ensemble = {"ensemble": [SPEC["model"], SPEC["model"]], "combine": "prob"}
    with pytest.raises(ValueError, match="one per member"):
        specs.training_run(spec_with(model=ensemble, init=[SPEC]))


def test_init_starts_from_trained_members(isolated):
    members = [spec_with(seed=s, epochs=1) for s in (0, 1)]
    ensemble = {"ensemble": [SPEC["model"], SPEC["model"]], "combine": "prob"}
    # lr tiny: the fine-tuned members stay next to their starting points
    spec = spec_with(model=ensemble, init=members, epochs=1, optim={"lr": 1e-6, "schedule": "constant"})
    model = cache.trained(spec, progress=False, device="cpu", backend="tensor")
    starts = [cache.trained(m, progress=False, device="cpu") for m in members]
    assert len(isolated) == 3  # the two members, then the ensemble
    for member, start in zip(model.members, starts):
        for (name, a), b in zip(member.state_dict().items(), start.state_dict().values()):
            if a.is_floating_point() and "running" not in name:
                assert torch.allclose(a, b, atol=1e-3), name
    assert not torch.equal(next(model.members[0].parameters()), next(model.members[1].parameters()))


# --------------------------------------------------------------------------- adversarial examples


def test_adversarial_examples_are_computed_once_and_match_the_attack(isolated):
    from ensembles_lib.attacks import pgd
    from ensembles_lib.data import head

    surrogate = [SPEC, spec_with(model={"name": "mlp", "num_classes": 10, "in_channels": 1, "options": {}})]
    attack = {"name": "pgd", "eps": 0.2, "steps": 3, "seed": 1}
    data = {"name": "digits", "split": "test", "n": 60}
    x_adv, y = cache.adversarial(surrogate, attack, data, batch_size=60, device="cpu", progress=False)
    x, y_ref = head("digits", "test", 60)
    assert x_adv.shape == x.shape and torch.equal(y, y_ref)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    members = [cache.trained(s, progress=False, device="cpu") for s in surrogate]
    expected = pgd(Ensemble(members, combine="logit"), x, y, eps=0.2, steps=3, seed=1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    trainings = len(isolated)
    again, _ = cache.adversarial(surrogate, attack, data, batch_size=60, device="cpu", progress=False)
    assert torch.equal(again, x_adv) and len(isolated) == trainings
    entries = [e for e in cache.list_entries() if e["key"].startswith("adv-")]
    assert len(entries) == 1 and entries[0]["status"] == "ok" and "pgd" in entries[0]["summary"]
    # a corrupt file is reported and recomputed, never trusted
    folder = cache.artifacts_root() / entries[0]["key"]
    (folder / "examples.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="recomputing"):
        rebuilt, _ = cache.adversarial(surrogate, attack, data, batch_size=60, device="cpu", progress=False)
    assert torch.equal(rebuilt, x_adv)
    batched, _ = cache.adversarial(surrogate, attack, data, batch_size=25, device="cpu", progress=False)
    assert (batched - x).abs().max() <= 0.2 + 1e-6  # another key: random starts are drawn per batch
    assert len([e for e in cache.list_entries() if e["key"].startswith("adv-")]) == 2


def test_adversarial_errors_name_the_parameter():
    data = {"name": "digits", "split": "test", "n": 10}
    with pytest.raises(ValueError, match="combine"):
        cache.adversarial(SPEC, {"name": "fgsm", "eps": 0.1}, data, combine="median")
    with pytest.raises(ValueError, match="cw"):
        cache.adversarial(SPEC, {"name": "cw", "eps": 0.1}, data)
    with pytest.raises(ValueError, match="n"):
        cache.adversarial(SPEC, {"name": "fgsm", "eps": 0.1}, {**data, "n": 0})
    with pytest.raises(ValueError, match="split"):
        cache.adversarial(SPEC, {"name": "fgsm", "eps": 0.1}, {**data, "split": "dev"})
    assert not cache.artifacts_root().exists()  # nothing trained before the error


def test_strong_masks_are_computed_once_match_strong_correct_and_reject_damage(isolated):
    from ensembles_lib.data import head
    from ensembles_lib.evaluation import strong_correct, suite

    pair = [SPEC, spec_with(seed=1)]
    chosen = suite(("pgd", {"steps": 3}), ("apgd-ce", {"steps": 5}), ("square", {"n_queries": 20}))
    data = {"name": "digits", "split": "test", "n": 40}
    masks = cache.strong(pair, chosen, data, 0.2, combine="prob", seed=2, device="cpu", progress=False)
    assert list(masks) == ["clean", "pgd", "apgd-ce", "square", "worst"]
    x, y = head("digits", "test", 40)
    ensemble = Ensemble([cache.trained(s, progress=False, device="cpu") for s in pair], combine="prob").eval()
    expected = strong_correct(ensemble, x, y, eps=0.2, attacks=chosen, seed=2)
    assert all(torch.equal(masks[n], expected[n]) for n in expected)
    assert masks["worst"].sum() < masks["clean"].sum()  # the attacks found something
    trainings = len(isolated)
    again = cache.strong(pair, [(a['name'], {k: v for k, v in a.items() if k != 'name'}) for a in chosen.canonical()], data, 0.2, combine="prob", seed=2, device="cpu",
                         progress=False)
    assert all(torch.equal(again[n], masks[n]) for n in masks) and len(isolated) == trainings
    entries = [e for e in cache.list_entries() if e["key"].startswith("strong-")]
    assert len(entries) == 1 and entries[0]["status"] == "ok" and "pgd/apgd-ce/square" in entries[0]["summary"]
    flip_byte(cache.artifacts_root() / entries[0]["key"] / "masks.pt")
    with pytest.warns(UserWarning, match="recomputing"):
        rebuilt = cache.strong(pair, chosen, data, 0.2, combine="prob", seed=2, device="cpu", progress=False)
    assert all(torch.equal(rebuilt[n], masks[n]) for n in masks)
    other = cache.strong(pair, chosen, data, 0.1, combine="prob", seed=2, device="cpu", progress=False)
    assert other["worst"].sum() >= masks["worst"].sum()  # a smaller budget: another key, no fewer survivors
    assert len([e for e in cache.list_entries() if e["key"].startswith("strong-")]) == 2


def test_strong_errors_name_the_parameter_before_training():
    data = {"name": "digits", "split": "test", "n": 10}
    with pytest.raises(ValueError, match="'fab' is not a suite attack"):
        cache.strong(SPEC, ["pgd", "fab"], data, 0.1)
    with pytest.raises(ValueError, match="eps"):
        cache.strong(SPEC, ["pgd"], data, 1.5)
    with pytest.raises(ValueError, match="n=100000"):
        cache.strong(SPEC, ["pgd"], {**data, "n": 100000}, 0.1)
    assert not cache.artifacts_root().exists()  # nothing trained before the error


# --------------------------------------------------------------------------- faults a hostile user finds


def flip_byte(path, offset_fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * offset_fraction)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_in_model_file_is_detected_and_retrained(isolated):
    model = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    flip_byte(folder / "model.pt", 0.9)  # inside the tensor data: torch.load alone would not notice
    with pytest.warns(UserWarning, match="model.pt"):
        rebuilt = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 2 and same_weights(model, rebuilt)


def test_model_file_swapped_for_other_weights_is_detected(isolated):
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    other = cache.trained(spec_with(seed=1), progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    (folder / "model.pt").write_bytes((cache.artifacts_root() / cache.key(spec_with(seed=1)) / "model.pt").read_bytes())
    with pytest.warns(UserWarning, match="model.pt"):
        again = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert len(isolated) == 3 and not same_weights(again, other)


def test_meta_without_history_is_rebuilt_not_a_key_error(isolated):
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    meta_path = cache.artifacts_root() / cache.key(SPEC) / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["history"]
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="history"):
        records = cache.history(SPEC, progress=False, device="cpu", backend="tensor")
    assert [r["epoch"] for r in records] == [1, 2] and len(isolated) == 2


def _interrupt_after_first_epoch(monkeypatch):
    """cache.fit that stops (as a kill would) after writing the first epoch's checkpoint."""
    real_fit = cache.fit

    def dying_fit(*args, **kwargs):
        def eval_fn(model):
            if done:
                raise KeyboardInterrupt
            done.append(1)
            return {}
        kwargs.pop("eval_fn")
        return real_fit(*args, eval_fn=eval_fn, **kwargs)

    done: list = []
    monkeypatch.setattr(cache, "fit", dying_fit)
    return real_fit


def test_flipped_byte_in_checkpoint_is_not_resumed(isolated, tmp_path, monkeypatch):
    reference = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "killed_root"))
    real_fit = _interrupt_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    monkeypatch.setattr(cache, "fit", real_fit)
    checkpoint = cache.artifacts_root() / cache.key(SPEC) / "checkpoint.pt"
    flip_byte(checkpoint, 0.9)
    with pytest.warns(UserWarning, match="checkpoint"):
        rebuilt = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    assert same_weights(reference, rebuilt)  # trained from scratch, not from the garbage
    meta = json.loads((checkpoint.parent / "meta.json").read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2]


def test_kill_between_model_and_meta_keeps_the_checkpoint(isolated, monkeypatch):
    real_commit = cache.Store.commit

    def killed_commit(self, key, files, meta):
        name, write = next(iter(files.items()))
        write(self.folder(key) / name)  # model.pt reached the disk; meta.json never will
        raise KeyboardInterrupt

    monkeypatch.setattr(cache.Store, "commit", killed_commit)
    with pytest.raises(KeyboardInterrupt):
        cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    folder = cache.artifacts_root() / cache.key(SPEC)
    assert (folder / "checkpoint.pt").exists()  # the final checkpoint survives until the artifact is complete
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)["history"]
    monkeypatch.setattr(cache.Store, "commit", real_commit)
    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    meta = json.loads((folder / "meta.json").read_text())
    # resumed after the last epoch: the history (wall times included) is the checkpoint's, nothing retrained
    assert meta["history"] == saved and not (folder / "checkpoint.pt").exists()


def test_key_follows_the_content_of_an_imagefolder_dataset(isolated, tmp_path):
    from PIL import Image
    import numpy as np

    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / label / f"{i}.png")
    spec = spec_with(model={"name": "mlp", "num_classes": 2, "in_channels": 3, "options": {}},
                     data={"name": f"imagefolder:{root}", "split": "train", "batch_size": 4}, epochs=1)
    before = cache.key(spec)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "train" / "a" / "0.png")  # an edit inside a class
    assert cache.key(spec) != before


def test_concurrent_processes_train_one_spec_once(tmp_path):
    """N real processes ask for one spec: one trains, the others wait and load the same weights."""
    import subprocess
    import sys

    root, log = tmp_path / "shared_root", tmp_path / "trainings.log"
    script = f"""
import hashlib, sys, torch
torch.set_num_threads(1)
from ensembles_lib import cache
real_fit = cache.fit
def logged_fit(*args, **kwargs):
    with open({str(log)!r}, "a") as f:
        f.write("trained\\n")
    return real_fit(*args, **kwargs)
cache.fit = logged_fit
model = cache.trained({SPEC!r}, progress=False, device="cpu", backend="tensor")
digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()
print(digest)
"""
    env = {**__import__("os").environ, "ENSEMBLES_DATA_DIR": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    assert log.read_text().splitlines() == ["trained"]
    assert len({out.strip() for out, _ in outputs}) == 1


def test_cache_command_lists_a_malformed_entry_and_clears_links_as_links(isolated, tmp_path, capsys):
    from ensembles_lib import cli

    cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    root = cache.artifacts_root()
    (root / "deep").mkdir()
    (root / "deep" / "meta.json").write_text("[" * 100000)
    (root / "wall").mkdir()
    (root / "wall" / "meta.json").write_text(json.dumps({"spec": SPEC, "wall_time_s": "fast", "files": {}}))
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("not an artifact")
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert cli.main(["cache", "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == {cache.key(SPEC), "deep", "wall", "link"}
    assert " ok " in lines[cache.key(SPEC)] and "small_cnn on digits" in lines[cache.key(SPEC)]
    assert " corrupt " in lines["deep"] and " corrupt " in lines["link"]
    assert " corrupt " in lines["wall"] and "lists no model.pt" in lines["wall"]  # nor does a string wall time
    with pytest.raises(cache.CorruptArtifact, match="model.pt"):  # what it lacks is said, not a FileNotFoundError
        cache._summary(json.loads((root / "wall" / "meta.json").read_text()))
    assert cli.main(["cache", "clear"]) == 0
    assert not root.exists() or not [p for p in root.iterdir() if not p.name.startswith(".")]
    assert (outside / "keep.txt").read_text() == "not an artifact"  # the link went, not its target
