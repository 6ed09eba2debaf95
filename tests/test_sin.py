"""The Strength in Numbers chapter's pieces: member_pgd (SiN Appendix A.2's attacks through the
members), the accuracy-vs-steps and training-curve plots, and the chapter's parameter declaration.

The "trained toy ensemble" is three small CNNs trained for a few seconds each on scikit-learn digits.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ensembles_lib import Ensemble
from ensembles_lib.attacks import MEMBER_RULES, member_losses, member_pgd, pgd
from ensembles_lib.attacks.members import member_objective
from ensembles_lib.data import get
from ensembles_lib.evaluation import accuracy
from ensembles_lib.models import build
from ensembles_lib.plots import accuracy_vs_eps, accuracy_vs_steps, training_curves
from ensembles_lib.chapters import parameters, resolve
from ensembles_lib.profiles import PROFILES

EPS = 0.1  # digits have 17 grey levels; 0.1 takes a standard-trained digits model well below clean accuracy


def as_batch(ds):
    return torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(ds.labels)


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


@pytest.fixture(scope="module")
def trained_members():
    """(members, x_test, y_test): three tiny CNNs from different seeds, 8 epochs of Adam each."""
    x_train, y_train = as_batch(get("digits", "train"))
    x_test, y_test = as_batch(get("digits", "test"))
    members = []
    with torch.random.fork_rng():
        for seed in range(3):
            torch.manual_seed(seed)
            model = tiny_cnn()
            opt = torch.optim.Adam(model.parameters(), lr=3e-3)
            for _ in range(8):
                order = torch.randperm(len(x_train))
                for i in range(0, len(order), 64):
                    idx = order[i:i + 64]
                    opt.zero_grad()
                    F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
                    opt.step()
            model.zero_grad(set_to_none=True)
            members.append(model.eval())
    return members, x_test[:200], y_test[:200]


# --------------------------------------------------------------------------- member_pgd


def test_toy_ensemble_is_trained(trained_members):
    members, x, y = trained_members
    assert all(accuracy(m, x, y) > 0.85 for m in members)


@pytest.mark.parametrize("rule", MEMBER_RULES)
def test_member_pgd_respects_budget_and_lowers_accuracy(trained_members, rule):
    members, x, y = trained_members
    ensemble = Ensemble(members, combine="prob")
    clean = accuracy(ensemble, x, y)
    x_adv = member_pgd(members, x, y, rule=rule, eps=EPS, step=EPS / 4, steps=10, seed=0)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(ensemble, x_adv, y) < clean - 0.2


@pytest.mark.parametrize("rule", MEMBER_RULES)
def test_one_member_is_pgd_with_the_cw_margin(trained_members, rule):
    """With a single member every rule is plain PGD on its CW margin: the same start, the same steps."""
    members, x, y = trained_members
    for step_rule in ("sign", "adam"):
        ours = member_pgd([members[0]], x, y, rule=rule, eps=EPS, step=0.02, steps=5, step_rule=step_rule, seed=3)
        reference = pgd(members[0], x, y, eps=EPS, step=0.02, steps=5, loss="cw", step_rule=step_rule, seed=3)
        assert torch.allclose(ours, reference, atol=1e-6)


def test_member_pgd_contract(trained_members):
    """Eval mode during the attack and the training mode restored; no parameter grads; seeded."""
    members, x, y = trained_members
    for m in members:
        m.train()
    try:
        first = member_pgd(members, x[:50], y[:50], rule="random", eps=EPS, steps=6, seed=1)
        assert all(m.training for m in members)
        assert all(p.grad is None for m in members for p in m.parameters())
        assert torch.equal(first, member_pgd(members, x[:50], y[:50], rule="random", eps=EPS, steps=6, seed=1))
        assert not torch.equal(first, member_pgd(members, x[:50], y[:50], rule="random", eps=EPS, steps=6, seed=2))
    finally:
        for m in members:
            m.eval()


def test_member_pgd_accepts_an_ensembles_module_list(trained_members):
    members, x, y = trained_members
    ensemble = Ensemble(members)
    a = member_pgd(ensemble.members, x[:30], y[:30], rule="mean", eps=EPS, steps=3)
    b = member_pgd(members, x[:30], y[:30], rule="mean", eps=EPS, steps=3)
    assert torch.equal(a, b)


def test_member_objective_values():
    losses = torch.tensor([[1.0, -2.0, 0.5], [3.0, -1.0, -0.5]])  # 2 members, 3 samples
    assert torch.equal(member_objective(losses, "mean"), torch.tensor([2.0, -1.5, 0.0]))
    assert torch.equal(member_objective(losses, "max"), torch.tensor([3.0, -1.0, 0.5]))
    with pytest.raises(ValueError, match="rule"):
        member_objective(losses, "random")


def test_member_losses_shape_and_sign(trained_members):
    members, x, y = trained_members
    losses = member_losses(members, x, y, "cw")
    assert losses.shape == (3, len(x))
    # the CW margin is positive exactly where the member misclassifies
    for m, row in zip(members, losses):
        assert torch.equal(row > 0, m(x).argmax(1) != y)


@pytest.mark.parametrize("kwargs, name", [
    ({"rule": "median"}, "rule"), ({"rule": "mean", "loss": "hinge"}, "loss"),
    ({"rule": "mean", "step_rule": "momentum"}, "step_rule"), ({"rule": "mean", "eps": 1.5}, "eps"),
    ({"rule": "mean", "steps": 0}, "steps"), ({"rule": "mean", "step": -0.1}, "step"),
])
def test_member_pgd_bad_arguments(trained_members, kwargs, name):
    members, x, y = trained_members
    kwargs = {"eps": EPS, **kwargs}
    with pytest.raises(ValueError, match=name):
        member_pgd(members, x, y, **kwargs)


def test_member_pgd_needs_a_list_of_members(trained_members):
    members, x, y = trained_members
    for bad in (members[0], [], [members[0], "not a model"], Ensemble(members)):
        with pytest.raises(ValueError, match="members"):
            member_pgd(bad, x, y, rule="mean", eps=EPS)


# --------------------------------------------------------------------------- plots


def test_accuracy_vs_steps_draws_one_line_per_model():
    results = {"a": ([0, 1, 5, 50], [0.9, 0.6, 0.4, 0.3]), "b": ([0, 1, 5, 50], [0.8, 0.7, 0.6, 0.6])}
    ax = accuracy_vs_steps(results, title="t")
    try:
        assert len(ax.get_lines()) == 2
        assert ax.get_xscale() == "symlog"  # 1..50 spans more than a factor of 20
        assert list(ax.get_lines()[1].get_ydata()) == [0.8, 0.7, 0.6, 0.6]
        assert ax.get_ylim() == (0.0, 1.02)
    finally:
        plt.close(ax.figure)
    ax = accuracy_vs_steps({"a": ([1, 2, 5], [0.5, 0.4, 0.3])})
    assert ax.get_xscale() == "linear"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="steps"):
        accuracy_vs_steps({"a": ([1, 2], [0.5])})
    with pytest.raises(ValueError, match="steps"):
        accuracy_vs_steps({"a": ([-1, 2], [0.5, 0.4])})


def test_accuracy_vs_eps_keeps_its_style():
    ax = accuracy_vs_eps({"a": ([0.0, 0.1], [0.9, 0.2]), "b": ([0.0, 0.1], [0.8, 0.5]), "c": ([0.0], [0.7])})
    try:
        assert len(ax.get_lines()) == 3 and ax.get_ylim() == (0.0, 1.02)
        assert ax.get_legend() is not None
    finally:
        plt.close(ax.figure)


def test_training_curves_one_panel_per_metric_one_line_per_model():
    history = [{"epoch": e, "loss": 1.0 / e, "clean_acc": 0.5 + 0.1 * e, "robust_acc": 0.1 * e} for e in (1, 2, 3)]
    histories = {"SingleAdv": history, "Ensemble2Adv": history[:2], "Baseline": history}
    axes = training_curves(histories, ("clean_acc", "robust_acc", "loss"))
    try:
        assert len(axes) == 3
        assert all(len(ax.get_lines()) == 3 for ax in axes)
        assert list(axes[1].get_lines()[1].get_xdata()) == [1, 2]
        assert axes[0].get_ylim() == (0.0, 1.02) and axes[2].get_ylim() != (0.0, 1.02)
    finally:
        plt.close(axes[0].figure)
    with pytest.raises(ValueError, match="robust_acc"):
        training_curves({"x": [{"epoch": 1, "clean_acc": 0.5}]})
    with pytest.raises(ValueError, match="metrics"):
        training_curves(histories, "clean_acc")
    _, two = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="axes"):
        training_curves(histories, ("clean_acc",), axes=two)
    plt.close(two[0].figure)


# --------------------------------------------------------------------------- parameters


def n_params(depth: int, widen: int, channels: int) -> int:
    model = build("wide_resnet", num_classes=10, in_channels=channels, depth=depth, widen_factor=widen)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("profile", PROFILES)
def test_parameters_resolve_for_every_profile(profile):
    config = resolve("strength_in_numbers", profile=profile)
    assert config.profile == profile and set(config) == {p.name for p in parameters("strength_in_numbers")}
    assert 0 < config.train_step <= config.eps and 0 < config.attack_step <= config.eps
    assert config.curve_steps >= 20  # the curve includes the PGD20 point of Table 1
    assert (config.depth - 4) % 6 == 0 and (config.double_depth - 4) % 6 == 0
    if profile != "paper":  # WRN-28-15 is 82M parameters: too slow to build in a quick test
        channels = 3 if config.dataset.startswith("cifar") else 1
        ratio = n_params(config.double_depth, config.double_widen, channels) / n_params(config.depth, config.widen, channels)
        assert 1.7 <= ratio <= 2.5, f"DoubleAdv should have about twice the base's parameters, has {ratio:.2f}x"


def test_paper_profile_is_the_papers_setup():
    config = resolve("strength_in_numbers", profile="paper")
    assert (config.dataset, config.depth, config.widen, config.double_widen) == ("cifar10", 28, 10, 15)
    assert (config.train_steps, config.curve_steps, config.batch_size, config.schedule) == (7, 500, 128, "multistep")
    assert config.eps == pytest.approx(8 / 255, abs=1e-4)


def test_bad_parameter_is_named():
    with pytest.raises(ValueError, match="train_steps"):
        resolve("strength_in_numbers", profile="cpu", train_steps=0)
    with pytest.raises(ValueError, match="did you mean"):
        resolve("strength_in_numbers", profile="cpu", curve_step=10)
