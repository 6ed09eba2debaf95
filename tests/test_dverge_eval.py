"""The DVERGE chapter's evaluation: vulnerability diversity (Eq. 2), within-ensemble
transferability, the black-box all-or-nothing protocol, its plots and its parameters."""

from __future__ import annotations

import copy
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ensembles_lib import Ensemble, cache, chapters, profiles  # noqa: E402
from ensembles_lib.blackbox import blackbox_accuracy, supports_sgm  # noqa: E402
from ensembles_lib.data import head, loader  # noqa: E402
from ensembles_lib.evaluation import (accuracy, all_or_nothing, correct, decision_grid,  # noqa: E402
                                      diversity_matrix, ensemble_diversity, has_residual_members, predict,
                                      transfer_attacks, transfer_matrix, within_transferability)
from ensembles_lib.evaluation.diversity import source_pairing  # noqa: E402
from ensembles_lib.evaluation.epoch_metrics import EPOCH_METRICS, evaluate  # noqa: E402
from ensembles_lib.models import build  # noqa: E402
from ensembles_lib.plots import decision_regions, rolling_training_curves  # noqa: E402
from ensembles_lib.fields import check_value  # noqa: E402
from ensembles_lib.specs import MetricSpec  # noqa: E402
from ensembles_lib.training import fit  # noqa: E402


class Threshold(nn.Module):
    """Class 1 when the image's mean pixel exceeds 0.5, else class 0 (two logits)."""

    def forward(self, x):
        score = x.flatten(1).mean(1) - 0.5
        return torch.stack([-score, score], dim=1) * 10


def images(values):
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()


def test_a_sample_counts_only_if_it_survives_every_version():
    y = torch.tensor([1, 1, 0])
    versions = [images([0.9, 0.9, 0.1]),   # all three correct
                images([0.8, 0.2, 0.2]),   # sample 1 fooled here
                images([0.7, 0.6, 0.9])]   # sample 2 fooled here
    # sample 0 survives 3/3, sample 1 survives 2/3, sample 2 survives 2/3
    assert all_or_nothing(Threshold(), versions, y).tolist() == [True, False, False]
    assert all_or_nothing(Threshold(), versions[:1], y).tolist() == [True, True, True]
    with pytest.raises(ValueError, match="versions"):
        all_or_nothing(Threshold(), [], y)
    with pytest.raises(ValueError, match="versions\\[0\\]"):
        all_or_nothing(Threshold(), [images([0.9])], y)


def test_transfer_attacks_follow_the_papers_list():
    specs = transfer_attacks(0.05, steps=7, restarts=3)
    assert all(s["step"] == pytest.approx(0.01) and s["steps"] == 7 and s["eps"] == 0.05 for s in specs.values())
    names = {s["name"] for s in specs.values()}
    assert names == {"mifgsm", "di2fgsm", "sgm"}
    for loss in ("ce", "cw"):
        assert {k for k, s in specs.items() if s["loss"] == loss and s["name"] != "mifgsm"} == \
            {f"mdi2fgsm-{loss}", f"sgm-{loss}"}
        momentum = [s for s in specs.values() if s["loss"] == loss and s["name"] == "mifgsm"]
        assert all(s["mu"] == 1.0 for s in momentum)
        # one version per random start, each with its own seed
        assert len(momentum) == 3 and all(s["random_start"] for s in momentum)
        assert len({s["seed"] for s in momentum}) == 3
    assert len(transfer_attacks(0.05, kinds=("mdi2fgsm",), losses=("cw",))) == 1
    for bad, match in (({"losses": ("ce", "l2")}, "losses"), ({"kinds": ("pgd",)}, "kinds"), ({"kinds": ()}, "kinds"),
                       ({"restarts": 0}, "restarts"), ({"steps": 0}, "steps"), ({"steps": True}, "steps"),
                       ({"seed": -1}, "seed"), ({"step": 2.0}, "step")):
        with pytest.raises(ValueError, match=match):
            transfer_attacks(0.05, **bad)
    for eps in (0.0, 1.5, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="eps"):
            transfer_attacks(eps)


# --------------------------------------------------------------------------- models on digits


def _train(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build("small_cnn", num_classes=10, in_channels=1, width=8)
    fit(model, loader("digits", "train", batch_size=64, seed=seed), epochs=3, lr=0.05, schedule="cosine",
        progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def digits_models():
    return _train(0), _train(1)


@pytest.fixture(scope="module")
def digits_test():
    return head("digits", "test", 120)


def test_pairing_never_pairs_an_image_with_itself():
    for n in (2, 3, 17):
        src = source_pairing(n, torch.Generator().manual_seed(n))
        assert sorted(src.tolist()) == list(range(n))
        assert (src != torch.arange(n)).all()
    with pytest.raises(ValueError, match="2 images"):
        source_pairing(1, torch.Generator())


def test_identical_members_are_less_diverse_than_independent_ones(digits_models, digits_test):
    x, y = digits_test
    a, b = digits_models
    twin = diversity_matrix({"a": a, "twin": copy.deepcopy(a)}, x, y, eps=0.2, seed=0)
    pair = diversity_matrix({"a": a, "b": b}, x, y, eps=0.2, seed=0)
    for table in (twin, pair):
        values = table.to_numpy()
        assert all(math.isfinite(v) and v >= 0 for v in values.ravel())
        assert values[0, 1] == pytest.approx(values[1, 0])  # Eq. 2 is symmetric
    # an identical copy is as vulnerable as the original: d equals a's loss on its own distillations
    assert twin.loc["a", "twin"] == pytest.approx(twin.loc["a", "a"], rel=1e-5)
    assert twin.loc["a", "twin"] < pair.loc["a", "b"]
    # a's distillations fool a itself more than they fool b
    assert pair.loc["a", "a"] < pair.loc["a", "b"]
    assert pair.attrs["n_images"] == int((correct(a, x, y) & correct(b, x, y)).sum())
    assert ensemble_diversity([a, b], x, y, eps=0.2, seed=0) == pytest.approx(pair.loc["a", "b"])
    again = diversity_matrix({"a": a, "b": b}, x, y, eps=0.2, seed=0)
    assert again.equals(pair)  # seeded
    every = diversity_matrix({"a": a, "b": b}, x, y, eps=0.2, seed=0, only_correct=False)
    assert every.attrs["n_images"] == len(x)


def test_within_transferability_is_the_mean_off_diagonal(digits_models, digits_test):
    from functools import partial

    from ensembles_lib.attacks import pgd

    x, y = digits_test
    attack = partial(pgd, eps=0.2, steps=5, seed=0)
    table = transfer_matrix(list(digits_models), x, y, attack)
    expected = (table.iloc[0, 1] + table.iloc[1, 0]) / 2
    assert within_transferability(nn.ModuleList(digits_models), x, y, attack) == pytest.approx(expected)


def test_epoch_metrics_measure_an_ensembles_members(digits_models, digits_test):
    x, y = digits_test
    ensemble = Ensemble([copy.deepcopy(m) for m in digits_models])
    spec = check_value(MetricSpec, {"name": "diversity", "eps": 0.2, "steps": 5, "seed": 3}, "metric")
    record = EPOCH_METRICS["diversity"](ensemble, x, y, eps=0.2, steps=5, seed=3)
    assert record["diversity"] == pytest.approx(ensemble_diversity(list(digits_models), x, y, eps=0.2, steps=5, seed=3))
    assert evaluate([spec], ensemble, x, y) == record
    attack = {"name": "pgd", "eps": 0.2, "steps": 3, "seed": 0}
    check_value(MetricSpec, {"name": "transferability", "attack": attack}, "metric")
    rate = EPOCH_METRICS["transferability"](ensemble, x, y, attack=attack)["transferability"]
    assert 0.0 <= rate <= 1.0
    with pytest.raises(ValueError, match="Ensemble"):
        EPOCH_METRICS["diversity"](digits_models[0], x, y, eps=0.2)
    with pytest.raises(ValueError, match="eps"):
        check_value(MetricSpec, {"name": "diversity"}, "metric")
    with pytest.raises(ValueError, match="epsilon"):
        check_value(MetricSpec, {"name": "transferability", "attack": {"name": "pgd", "epsilon": 0.1}}, "metric")


# --------------------------------------------------------------------------- black box through the cache

SURROGATE = {"model": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}},
             "data": {"name": "digits", "split": "train", "batch_size": 128},
             "optim": {"lr": 0.05, "schedule": "cosine"}, "epochs": 1, "seed": 7}


def test_blackbox_accuracy_is_all_or_nothing_over_the_cached_versions(tmp_data_root, digits_models):
    target = digits_models[0]
    data = {"name": "digits", "split": "test", "n": 60}

    def two_attacks(eps):
        return {"fgsm": {"name": "fgsm", "eps": eps},
                "mi": {"name": "mifgsm", "eps": eps, "steps": 2, "step": eps / 5, "seed": 0}}

    table = blackbox_accuracy({"t": target}, {"s": [SURROGATE]}, (0.0, 0.3), data, attacks=two_attacks,
                              combine="prob", device="cpu")
    assert list(table.index) == [0.0, 0.3] and list(table.columns) == ["t"]
    assert table.attrs["versions"] == {0.0: 0, 0.3: 2} and table.attrs["n_images"] == 60
    x, y = head("digits", "test", 60)
    assert table.loc[0.0, "t"] == pytest.approx(accuracy(target, x, y))
    versions = [cache.adversarial([SURROGATE], spec, data, combine="prob", device="cpu", progress=False)[0]
                for spec in two_attacks(0.3).values()]
    expected = all_or_nothing(target, versions, y).float().mean().item()
    assert table.loc[0.3, "t"] == pytest.approx(expected)
    assert expected <= min(accuracy(target, v, y) for v in versions)


def test_sgm_needs_residual_surrogates_and_says_so_before_training(tmp_data_root, digits_models):
    resnet = {**SURROGATE, "model": {"name": "resnet20", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}}
    assert supports_sgm([resnet]) and not supports_sgm([SURROGATE]) and not supports_sgm([resnet, SURROGATE])
    resnet_model = build("resnet20", num_classes=10, in_channels=1, width=4)
    assert supports_sgm(resnet_model) and has_residual_members(Ensemble([resnet_model, copy.deepcopy(resnet_model)]))
    assert not has_residual_members(Ensemble([resnet_model, digits_models[0]]))
    with pytest.raises(ValueError, match="source"):
        supports_sgm([])
    with pytest.raises(ValueError, match="residual"):
        blackbox_accuracy({"t": digits_models[0]}, {"s": [SURROGATE]}, (0.1,), {"name": "digits", "split": "test", "n": 10},
                          device="cpu")
    assert not cache.artifacts_root().exists()  # nothing trained before the error


# --------------------------------------------------------------------------- plots


def test_decision_regions_of_trained_models_are_computed_then_drawn(digits_models, digits_test):
    x, y = digits_test
    a, b = digits_models
    models = {"ensemble": Ensemble([a, b]).eval(), "member 1": a, "member 2": b}
    grid = decision_grid(models, x[0], int(y[0]), a, eps=0.2, resolution=9, seed=0)
    assert list(grid.regions) == list(models) and all(r.shape == (9, 9) for r in grid.regions.values())
    # the centre of the grid is the image itself, which each model classifies as it does alone
    for name, model in models.items():
        assert grid.regions[name][4, 4] == predict(model, x[:1]).item()
    assert not any(m.training for m in models["ensemble"].modules())  # modes restored
    axes = decision_regions(grid)
    assert [ax.get_title() for ax in axes] == list(models)
    assert (axes[0].get_images()[0].get_array() == grid.regions["ensemble"]).all()
    plt.close("all")


def test_rolling_curves_plot_the_trailing_mean():
    history = [{"epoch": e, "diversity": d, "transferability": 1 - d / 10} for e, d in enumerate([1.0, 3.0, 5.0, 9.0])]
    axes = rolling_training_curves({"DVERGE": history}, ("diversity", "transferability"), window=2)
    assert list(axes[0].get_lines()[0].get_ydata()) == pytest.approx([1.0, 2.0, 4.0, 7.0])
    with pytest.raises(ValueError, match="window"):
        rolling_training_curves({"DVERGE": history}, ("diversity",), window=0)
    plt.close("all")


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_parameters_resolve_for_every_profile(profile):
    config = chapters.resolve("dverge", profile=profile)
    sizes = [int(s) for s in config.sizes.split(",")]
    assert sizes and all(s >= 2 for s in sizes) and sizes == sorted(sizes)
    assert 0 in config.eps_grid and config.eps in config.eps_grid or config.eps <= max(config.eps_grid)
    assert config.distill_eps > 0 and config.distill_eps_large > 0
    if profile == "paper":
        assert (config.distill_eps, config.distill_eps_large, config.transfer_steps, config.transfer_restarts,
                config.whitebox_steps, config.blackbox_steps, config.blackbox_restarts) == (0.07, 0.05, 50, 5, 50, 100, 3)


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="sizes"):
        chapters.resolve("dverge", profile="smoke", sizes="4")
    with pytest.raises(ValueError, match="distill_eps"):
        chapters.resolve("dverge", profile="smoke", distill_eps=2.0)
    with pytest.raises(ValueError, match="did you mean"):
        chapters.resolve("dverge", profile="smoke", distil_eps=0.1)
