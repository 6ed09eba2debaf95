"""The strong suite's attacks (APGD-CE/DLR, APGD-T, Square) as attack specs, so their examples are
computed once and stored like every other adversarial version (`cache.adversarial`)."""

from __future__ import annotations

import pytest
import torch

from ensembles_lib import cache
from ensembles_lib.attacks import apgd, square
from ensembles_lib.attacks.specs import ATTACK_NAMES, attack_spec
from ensembles_lib.data import head

SPEC = {
    "model": {"name": "mlp", "num_classes": 10, "in_channels": 1, "options": {"width": 32}},
    "data": {"name": "digits", "split": "train", "batch_size": 128},
    "optim": {"lr": 0.05, "schedule": "cosine"},
    "epochs": 2,
    "seed": 0,
}
DATA = {"name": "digits", "split": "test", "n": 40}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "root"))


def test_the_suite_attacks_are_spec_names():
    assert {"apgd", "apgd_targeted", "square"} <= set(ATTACK_NAMES)
    spec = attack_spec({"name": "apgd", "eps": 0.1, "loss": "dlr", "steps": 5, "seed": 2})
    assert spec.canonical() == {"name": "apgd", "eps": 0.1, "steps": 5, "restarts": 1, "loss": "dlr", "seed": 2}
    assert attack_spec({"name": "square", "eps": 0.1}).canonical()["n_queries"] == 5000
    with pytest.raises(ValueError, match="loss"):
        attack_spec({"name": "apgd", "eps": 0.1, "loss": "cw"})
    with pytest.raises(ValueError, match="n_queries"):
        attack_spec({"name": "square", "eps": 0.1, "n_queries": 0})


def test_stored_apgd_and_square_examples_match_the_attacks():
    model = cache.trained(SPEC, progress=False, device="cpu", backend="tensor")
    x, y = head("digits", "test", DATA["n"])
    for attack, direct in (({"name": "apgd", "eps": 0.1, "steps": 5, "loss": "dlr", "seed": 1},
                            lambda: apgd(model, x, y, eps=0.1, steps=5, loss="dlr", seed=1)),
                           ({"name": "square", "eps": 0.1, "n_queries": 30, "seed": 1},
                            lambda: square(model, x, y, eps=0.1, n_queries=30, seed=1))):
        x_adv, y_adv = cache.adversarial(SPEC, attack, DATA, device="cpu", progress=False)
        assert torch.equal(y_adv, y) and (x_adv - x).abs().max() <= 0.1 + 1e-6
        assert torch.allclose(x_adv, direct(), atol=1e-6), attack["name"]
        again, _ = cache.adversarial(SPEC, attack, DATA, device="cpu", progress=False)
        assert torch.equal(again, x_adv)
    summaries = [e["summary"] for e in cache.list_entries() if e["key"].startswith("adv-")]
    assert len(summaries) == 2 and any("apgd" in s for s in summaries) and any("square" in s for s in summaries)
