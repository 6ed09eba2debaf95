"""The strong white-box suite (ensembles_lib.evaluation.strong) and its APGD / APGD-T adapters:
the worst case per image, no higher than PGD alone, Square catching a gradient-masking model,
determinism, argument errors, the attack contract, the suite's description and the steps check.

Two small MLPs trained for a second on scikit-learn digits: a plain one, and one that rounds its
input to three grey levels first (torch.round: zero gradient everywhere, so gradient attacks only
see their random start, while Square's +-eps squares cross the rounding thresholds).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from ensembles_lib.attacks import AttackArgumentError, apgd, apgd_targeted, pgd
from ensembles_lib.data import get
from ensembles_lib.evaluation import (DEFAULT_SUITE, SUITE_NAMES, accuracy, attack_check, converged,
                                      cumulative_accuracy, gradient_worst, steps_convergence, strong_accuracy,
                                      strong_correct, suite)
from ensembles_lib.evaluation.strong import MASKING, NOT_CONVERGED, SOUND, SUITE_MISSES

EPS = 0.05  # digits (17 grey levels): the plain MLP keeps part of its accuracy, so the suite has room to differ
# the suite at test size: fewer steps, targets and queries than DEFAULT_SUITE, the same five attacks
SMALL = suite(("pgd", {"steps": 10, "restarts": 2}), ("apgd-ce", {"steps": 20}), ("apgd-dlr", {"steps": 20}),
              ("apgd-t", {"steps": 20, "n_targets": 3}), ("square", {"n_queries": 200}))


class Round(nn.Module):
    """x rounded to `levels` + 1 grey levels: a non-differentiable step (zero gradient)."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * self.levels) / self.levels


def mlp(*front: nn.Module) -> nn.Module:
    return nn.Sequential(*front, nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for layer in model.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def as_batch(ds):
    return torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(ds.labels)


@pytest.fixture(scope="module")
def data():
    x_train, y_train = as_batch(get("digits", "train"))
    x_test, y_test = as_batch(get("digits", "test"))
    return x_train, y_train, x_test[:128], y_test[:128]


@pytest.fixture(scope="module")
def plain(data):
    x_train, y_train, _, _ = data
    return fit(mlp(), x_train, y_train)


@pytest.fixture(scope="module")
def masked(data):
    x_train, y_train, _, _ = data
    return fit(mlp(Round(2)), x_train, y_train)


@pytest.fixture(scope="module")
def plain_masks(plain, data):
    _, _, x, y = data
    return strong_correct(plain, x, y, eps=EPS, attacks=SMALL)


# ---- the worst case ----------------------------------------------------------------------------

def test_masks_per_attack_and_worst_is_their_and(plain_masks, data):
    _, _, x, y = data
    assert list(plain_masks) == ["clean", *SUITE_NAMES, "worst"]
    for name, mask in plain_masks.items():
        assert mask.dtype == torch.bool and mask.shape == (len(x),), name
    worst = plain_masks["worst"]
    for name in ("clean", *SUITE_NAMES):
        assert not (worst & ~plain_masks[name]).any(), f"worst holds where {name} does not"
        assert not (plain_masks[name] & ~plain_masks["clean"]).any(), f"{name} correct where clean is wrong"
    expected = plain_masks["clean"].clone()
    for name in SUITE_NAMES:
        expected &= plain_masks[name]
    assert torch.equal(worst, expected)
    acc = strong_accuracy(plain_masks)
    assert acc["worst"] <= min(acc[name] for name in SUITE_NAMES) <= acc["clean"]
    assert 0 < acc["worst"] < acc["clean"]  # EPS leaves room on both sides


def test_worst_is_no_higher_than_pgd_alone(plain, plain_masks, data):
    _, _, x, y = data
    settings = dict(SMALL["pgd"].settings)
    alone = accuracy(plain, pgd(plain, x, y, eps=EPS, **settings), y)
    assert strong_accuracy(plain_masks)["worst"] <= alone
    # the first attack runs on every clean-correct image: its entry is PGD's own figure there
    ok = plain_masks["clean"]
    on_clean = accuracy(plain, pgd(plain, x[ok], y[ok], eps=EPS, **settings), y[ok]) * ok.float().mean().item()
    assert strong_accuracy(plain_masks)["pgd"] == pytest.approx(on_clean)


def test_survivors_only_false_runs_each_attack_on_every_clean_correct_image(plain, data):
    _, _, x, y = data
    both = suite(("pgd", {"steps": 10}), ("apgd-ce", {"steps": 20}))
    every = strong_correct(plain, x, y, eps=EPS, attacks=both, survivors_only=False)
    alone = accuracy(plain, apgd(plain, x[every["clean"]], y[every["clean"]], eps=EPS, steps=20),
                     y[every["clean"]]) * every["clean"].float().mean().item()
    assert strong_accuracy(every)["apgd-ce"] == pytest.approx(alone)
    assert torch.equal(every["worst"], every["clean"] & every["pgd"] & every["apgd-ce"])


def test_square_catches_a_gradient_masking_model(masked, data):
    _, _, x, y = data
    both = suite(("pgd", {"steps": 10, "restarts": 2}), ("square", {"n_queries": 300}))
    acc = strong_accuracy(strong_correct(masked, x, y, eps=2 * EPS, attacks=both))
    assert acc["clean"] > 0.9
    assert acc["pgd"] >= acc["clean"] - 0.1  # zero gradients: PGD moves it by its random start only
    assert acc["square"] < acc["pgd"] - 0.1  # about 0.2 lower on these 128 images, for seeds 0-3
    assert acc["worst"] <= acc["square"]


# ---- determinism, errors and the attack contract ---------------------------------------------------

def test_deterministic_under_a_seed_and_global_rng_untouched(plain, data):
    _, _, x, y = data
    small = suite(("pgd", {"steps": 5}), ("apgd-t", {"steps": 10, "n_targets": 2}), ("square", {"n_queries": 50}))
    state = torch.get_rng_state()
    first = strong_correct(plain, x, y, eps=EPS, attacks=small, seed=3, batch_size=16)
    assert torch.equal(torch.get_rng_state(), state)
    second = strong_correct(plain, x, y, eps=EPS, attacks=small, seed=3, batch_size=16)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_model_mode_and_parameter_grads_untouched(plain, data):
    _, _, x, y = data
    plain.train()
    for p in plain.parameters():
        p.grad = torch.zeros_like(p)
    try:
        strong_correct(plain, x[:16], y[:16], eps=EPS, attacks=SMALL)
        assert plain.training
        assert all(p.grad.abs().max() == 0 and p.requires_grad for p in plain.parameters())
    finally:
        plain.eval()
        plain.zero_grad(set_to_none=True)


class Exploding(nn.Module):
    """A model that must never be called: errors are raised before any work."""

    def forward(self, x):
        raise AssertionError("the model ran before the argument check")


@pytest.mark.parametrize("attacks, match", [
    (("pgd", "fab"), r"'fab' is not a suite attack; allowed: 'pgd', 'apgd-ce', 'apgd-dlr', 'apgd-t', 'square'"),
    ((("pgd", {"steps": 0}),), r"attacks\['pgd'\]\.steps must be an int >= 1"),
    ((("apgd-t", {"n_target": 3}),), r"n_target is not a parameter of apgd-t"),
    ((("apgd-ce", {"loss": "dlr"}),), r"loss cannot be set here"),
    ((("pgd", {"eps": 0.1}),), r"eps cannot be set here"),
    (("pgd", "pgd"), r"pgd named twice"),
    ((), r"at least one attack"),
    ("pgd", r"attacks must be a Suite or a sequence"),
])
def test_bad_attacks_are_a_value_error_before_any_work(attacks, match, data):
    _, _, x, y = data
    with pytest.raises(ValueError, match=match):
        strong_correct(Exploding(), x, y, eps=EPS, attacks=attacks)


def test_bad_budget_is_a_value_error(data):
    _, _, x, y = data
    with pytest.raises(ValueError, match=r"^eps\b.*1"):
        strong_correct(Exploding(), x, y, eps=2.0)


def test_apgd_adapters_need_enough_classes():
    two = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(AttackArgumentError, match="at least 3 classes"):
        apgd(two, x, y, eps=EPS, loss="dlr", steps=2)
    with pytest.raises(AttackArgumentError, match="at least 4 classes"):
        apgd_targeted(two, x, y, eps=EPS, steps=2)


def test_apgd_adapters_keep_the_budget(plain, data):
    _, _, x, y = data
    for x_adv in (apgd(plain, x, y, eps=EPS, steps=10, loss="dlr"), apgd_targeted(plain, x, y, eps=EPS, steps=10,
                                                                                  n_targets=20)):
        assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert accuracy(plain, x_adv, y) < accuracy(plain, x, y)


# ---- the suite's description ---------------------------------------------------------------------

def test_default_suite_description_canonical_form_and_digest():
    assert DEFAULT_SUITE.names == SUITE_NAMES
    assert DEFAULT_SUITE.describe() == ("PGD-20 (2 restarts), APGD-CE-100, APGD-DLR-100, APGD-T-100 (9 targets), "
                                        "Square (5000 queries)")
    canonical = DEFAULT_SUITE.canonical()
    assert canonical[3] == {"name": "apgd-t", "n_targets": 9, "restarts": 1, "steps": 100}
    assert DEFAULT_SUITE.digest() == suite(("pgd", {"restarts": 2, "steps": 20}), *SUITE_NAMES[1:]).digest()
    assert SMALL.digest() != DEFAULT_SUITE.digest()
    assert len({DEFAULT_SUITE, suite(("pgd", {"steps": 20, "restarts": 2}), *SUITE_NAMES[1:])}) == 1  # hashable
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_SUITE.attacks = ()
    assert "PGD-10 (2 restarts, step_rule=adam)" == suite(("pgd", {"steps": 10, "restarts": 2,
                                                                   "step_rule": "adam"})).describe()


# ---- steps convergence ---------------------------------------------------------------------------

def test_steps_convergence_curve(plain, data):
    _, _, x, y = data
    curve = steps_convergence(plain, x, y, eps=EPS, steps=(1, 5, 20))
    assert list(curve) == [1, 5, 20]
    clean = accuracy(plain, x, y)
    assert all(0 <= v <= clean for v in curve.values())
    assert curve[20] < clean
    again = steps_convergence(plain, x, y, eps=EPS, steps=(1, 5, 20))
    assert curve == again


def test_steps_convergence_errors():
    x, y = torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="'square' takes no steps"):
        steps_convergence(Exploding(), x, y, eps=EPS, attack="square")
    with pytest.raises(ValueError, match="increasing"):
        steps_convergence(Exploding(), x, y, eps=EPS, steps=(20, 10))
    with pytest.raises(ValueError, match="leave out 'steps'"):
        steps_convergence(Exploding(), x, y, eps=EPS, attack=("pgd", {"steps": 3}))


def test_converged():
    assert converged({10: 0.50, 20: 0.40, 50: 0.395}, tol=0.01)
    assert not converged({10: 0.50, 20: 0.40}, tol=0.01)
    assert not converged({100: 0.30, 10: 0.50, 50: 0.40}, tol=0.05)  # ordered by steps, not insertion
    with pytest.raises(ValueError, match="at least two points"):
        converged({10: 0.5}, tol=0.01)
    with pytest.raises(ValueError, match="tol"):
        converged({10: 0.5, 20: 0.5}, tol=0)


# ---- the chapters' readings: per attack added, gradient attacks only, the attack check ------------

def test_cumulative_accuracy_falls_attack_by_attack_to_the_worst_case(plain_masks):
    row = cumulative_accuracy(plain_masks, SMALL)
    assert list(row) == ["clean", "PGD-10 (2 restarts)", "+ APGD-CE-20", "+ APGD-DLR-20", "+ APGD-T-20 (3 targets)",
                         "+ Square (200 queries)"]
    values = list(row.values())
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(strong_accuracy(plain_masks)["worst"])
    assert values[1] == pytest.approx(strong_accuracy(plain_masks)["pgd"])  # the first attack ran on every image
    with pytest.raises(ValueError, match="square"):
        cumulative_accuracy({k: v for k, v in plain_masks.items() if k != "square"}, SMALL)


def test_attack_check_flags_masking_non_convergence_and_a_missing_attack(masked, plain, plain_masks, data):
    _, _, x, y = data
    gradient = gradient_worst(plain_masks, SMALL)
    assert torch.equal(gradient & plain_masks["square"], plain_masks["worst"])
    w = strong_accuracy(plain_masks)["worst"]
    flat = {10: w, 20: w}  # a CW-PGD curve that settled on the suite's own figure
    row = attack_check(plain_masks["worst"], gradient, plain_masks["clean"], flat)
    assert row["verdict"] == SOUND and row["converged"] and row["longest run"] == w
    assert attack_check(plain_masks["worst"], gradient, plain_masks["clean"], {10: w + 0.1, 20: w})["verdict"] == \
        NOT_CONVERGED
    low = {10: 0.0, 20: 0.0}  # a long CW-PGD that leaves nothing: the suite missed images it should have found
    expected = SUITE_MISSES if row["worst case"] > 0.02 else SOUND
    assert attack_check(plain_masks["worst"], gradient, plain_masks["clean"], low)["verdict"] == expected
    # the rounding model: gradient attacks see nothing, Square alone finds far more
    grad_only = suite(("pgd", {"steps": 10, "restarts": 2}))
    masks = strong_correct(masked, x, y, eps=2 * EPS, attacks=grad_only)
    square_alone = strong_correct(masked, x, y, eps=2 * EPS, attacks=[("square", {"n_queries": 300})])["square"]
    check = attack_check(masks["worst"], gradient_worst(masks, grad_only), square_alone, flat)
    assert check["verdict"] == MASKING and check["Square alone"] < check["gradient attacks"] - 0.1
    # Square run last in the suite, finding what the gradient attacks missed, is the same warning
    both = suite(("pgd", {"steps": 10, "restarts": 2}), ("square", {"n_queries": 300}))
    in_suite = strong_correct(masked, x, y, eps=2 * EPS, attacks=both)
    assert attack_check(in_suite["worst"], gradient_worst(in_suite, both), None, flat)["verdict"] == MASKING
    assert math.isnan(attack_check(plain_masks["worst"], gradient, None, flat)["Square alone"])
    with pytest.raises(ValueError, match="same images"):
        attack_check(masks["worst"], masks["worst"][:5], square_alone, flat)
