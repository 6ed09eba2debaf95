"""Stochastic quantisation (SQ paper Eq. 1-2), its information terms (Eq. 4-6), the Eq. 7 strategy
and EOT over SQ draws."""

import math

import pytest
import torch
from scipy import stats

from ensembles_lib.attacks import pgd
from ensembles_lib.attacks.gradient import gradient
from ensembles_lib.fields import ArgumentError
from ensembles_lib.models import registry
from ensembles_lib.models.stochastic_quantize import (StochasticQuantize, recorded_information, sq_controller,
                                                      sq_information, sq_probabilities)
from ensembles_lib.specs import SpecError, training_run
from ensembles_lib.training import SQTraining


@pytest.mark.parametrize("bins,alpha", [(16, 1.0), (16, 2.0), (16, 4.0), (16, 16.0), (5, 2.5), (2, 1.0)])
def test_probabilities_normalised_unbiased_and_zero_beyond_alpha(bins, alpha):
    u = torch.linspace(0, bins - 1, 997, dtype=torch.float64)
    p = sq_probabilities(u, bins, alpha)
    levels = torch.arange(bins, dtype=torch.float64)
    assert p.shape == (997, bins)
    assert torch.allclose(p.sum(-1), torch.ones(997, dtype=torch.float64))
    assert torch.allclose((p * levels).sum(-1), u, atol=1e-12)  # unbiased inside the range
    assert (p >= 0).all()
    assert (p[(levels - u[:, None]).abs() >= alpha] == 0).all()  # nothing alpha bins away or further


def test_alpha_one_is_the_binary_scheme_of_eq1():
    u = torch.tensor([0.0, 0.25, 2.6, 3.0, 15.0], dtype=torch.float64)
    p = sq_probabilities(u, 16, 1.0)
    expected = torch.zeros(5, 16, dtype=torch.float64)
    expected[0, 0] = 1
    expected[1, 0], expected[1, 1] = 0.75, 0.25  # (b1 - v) / (b1 - b0) and (v - b0) / (b1 - b0)
    expected[2, 2], expected[2, 3] = 0.4, 0.6
    expected[3, 3] = 1
    expected[4, 15] = 1
    assert torch.allclose(p, expected)


def test_hand_example_of_eq2_with_alpha_two():
    # u = 1.5 between bins 1 and 2 of 4; pairs (1,2): weights (1-.25)(1-.25); (0,2): (1-.75)(1-.25);
    # (1,3): (1-.25)(1-.75); (0,3): (1-.75)(1-.75)
    p = sq_probabilities(torch.tensor([1.5], dtype=torch.float64), 4, 2.0)[0]
    w12, w02, w13, w03 = 0.5625, 0.1875, 0.1875, 0.0625
    raw = torch.tensor([w02 * 0.5 / 2 + w03 * 1.5 / 3,
                        w12 * 0.5 + w13 * 1.5 / 2,
                        w12 * 0.5 + w02 * 1.5 / 2,
                        w13 * 0.5 / 2 + w03 * 1.5 / 3], dtype=torch.float64)
    assert torch.allclose(p, raw / raw.sum())


def test_sampled_bins_follow_eq2_chi_square():
    layer = StochasticQuantize(bins=8, alpha=3.0, fixed=(0.0, 7.0))
    v = torch.full((20000, 1), 3.3)
    torch.manual_seed(0)
    counts = torch.bincount(layer(v).round().long().flatten(), minlength=8).double()
    p = sq_probabilities(torch.tensor([3.3], dtype=torch.float64), 8, 3.0)[0]
    support = p > 0
    assert counts[~support].sum() == 0
    chi2 = stats.chisquare(counts[support].numpy(), (p[support] * counts.sum()).numpy())
    assert chi2.pvalue > 1e-3
    assert abs(layer(torch.full((20000, 1), 3.3)).mean().item() - 3.3) < 0.02  # unbiased


def test_feature_bins_span_each_rows_min_and_max_and_gradients():
    torch.manual_seed(0)
    v = torch.randn(6, 10, requires_grad=True)
    for gradient_kind in ("gumbel", "straight_through"):
        layer = StochasticQuantize(bins=16, alpha=4.0, gradient=gradient_kind)
        q = layer(v)
        low, high = v.amin(1, keepdim=True), v.amax(1, keepdim=True)
        levels = (q - low) / ((high - low) / 15)
        assert torch.allclose(levels, levels.round(), atol=1e-4)  # on a bin
        assert (q >= low - 1e-6).all() and (q <= high + 1e-6).all()
        (g,) = torch.autograd.grad(q.sum(), v)
        assert torch.isfinite(g).all()
        if gradient_kind == "straight_through":
            assert torch.equal(g, torch.ones_like(g))  # the gradient of E[q(v)] = v
        else:
            assert not torch.equal(g, torch.ones_like(g))


def test_information_terms():
    n, images, features, bins = 8, 3, 5, 4
    constant = torch.zeros(n, images, features, bins)
    constant[..., 2] = 1
    info = sq_information(constant)
    assert torch.allclose(info["mi"], torch.zeros(images))
    # k equiprobable, independent outputs: sample s puts all mass on bin s mod k
    onehot = torch.zeros(n, images, features, bins)
    for s in range(n):
        onehot[s, ..., s % bins] = 1
    info = sq_information(onehot)
    assert torch.allclose(info["mi"], torch.full((images,), math.log(bins)))
    assert torch.allclose(info["h_t_given_x"], torch.zeros(images))
    # the same spread in every sample: H(T|X) = H(T) = log k, no information
    spread = torch.full((n, images, features, bins), 1 / bins)
    info = sq_information(spread)
    assert torch.allclose(info["mi"], torch.zeros(images), atol=1e-6)
    assert torch.allclose(info["h_t_given_x"], torch.full((images,), math.log(bins)))
    with pytest.raises(ValueError, match="samples, images, features, bins"):
        sq_information(torch.zeros(3, 4))


def _sq_lenet(**sq):
    torch.manual_seed(0)
    return registry.build("lenet5", num_classes=10, in_channels=1, sq={"samples": 4, **sq}).eval()


def test_sq_model_keeps_state_dict_keys_and_is_seeded():
    plain = registry.build("lenet5", num_classes=10, in_channels=1)
    model = _sq_lenet()
    assert list(model.state_dict()) == list(plain.state_dict())
    model.load_state_dict(plain.state_dict())
    x = torch.rand(5, 1, 12, 12)
    model.manual_seed(3)
    a = model(x)
    model.manual_seed(3)
    assert a.shape == (5, 10) and torch.equal(a, model(x))
    assert torch.allclose(a.exp().sum(1), torch.ones(5))  # log of the mean member probabilities
    assert not torch.equal(a, model(x))  # a fresh draw
    sq_controller(model).set(mode="expectation")
    assert torch.allclose(model(x), torch.log_softmax(plain(x), 1), atol=1e-6)  # E[SQ] = identity


def test_recorded_information_and_errors():
    model = _sq_lenet()
    info = recorded_information(model, torch.rand(3, 1, 12, 12))
    assert info["mi"].shape == (3,) and (info["mi"] >= -1e-6).all()
    assert (info["h_t_given_x"] <= info["h_t"] + 1e-6).all()
    with pytest.raises(ArgumentError, match="samples"):
        sq_controller(model).set(samples=0)
    with pytest.raises(ArgumentError, match="gradient must be one of"):
        sq_controller(model).set(gradient="bpda")
    with pytest.raises(ValueError, match="sq.alpha must be a number in"):
        registry.build("lenet5", num_classes=10, in_channels=1, sq={"alpha": 0.5})
    with pytest.raises(ArgumentError, match="input\\+features"):
        recorded_information(_sq_lenet(at="input"), torch.rand(2, 1, 12, 12))


def test_sq_strategy_loss_terms_and_spec():
    model = _sq_lenet().train()
    x, y = torch.rand(6, 1, 12, 12), torch.randint(10, (6,))
    model.manual_seed(0)
    plain, scores = SQTraining(0.0, 0.0).loss(model, x, y)
    model.manual_seed(0)
    regularised, _ = SQTraining(2.0, 3.0).loss(model, x, y)
    assert scores.shape == (6, 10) and regularised > plain
    regularised.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ArgumentError, match="input\\+features"):
        SQTraining(1.0, 0.0).loss(_sq_lenet(at="input"), x, y)
    with pytest.raises(ArgumentError, match="beta"):
        SQTraining(-1.0, 0.0)
    base = {"model": {"name": "lenet5", "num_classes": 10, "in_channels": 1},
            "data": {"name": "digits", "split": "train", "batch_size": 64}, "optim": {"lr": 0.05}, "epochs": 1, "seed": 0}
    run = training_run({**base, "model": {**base["model"], "options": {"sq": {"alpha": 4.0}}},
                        "strategy": {"name": "sq", "beta": 1.0, "mu": 1.0}, "init": base})
    assert run.model.options["sq"]["bins"] == 16 and run.strategy.beta == 1.0
    assert "sq" not in training_run(base).model.options  # keys of models without SQ unchanged
    with pytest.raises(SpecError, match="mu"):
        training_run({**base, "strategy": {"name": "sq", "mu": -1.0}})


def test_eot_with_one_sample_equals_the_plain_attack():
    model = _sq_lenet()
    x, y = torch.rand(4, 1, 12, 12), torch.randint(10, (4,))
    a = pgd(model, x, y, eps=0.1, step=0.03, steps=3, seed=1)
    b = pgd(model, x, y, eps=0.1, step=0.03, steps=3, seed=1, eot_samples=1)
    assert torch.equal(a, b)
    model.manual_seed(5)
    one = gradient(model, x, y, eot_samples=1)
    model.manual_seed(5)
    xr = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(torch.nn.functional.nll_loss(model(xr), y, reduction="sum"), xr)
    assert torch.allclose(one, plain, atol=1e-6)
    assert not torch.equal(pgd(model, x, y, eps=0.1, step=0.03, steps=3, seed=1, eot_samples=4), a)


@pytest.mark.parametrize("gradient_kind", ["gumbel", "straight_through"])
def test_draws_with_a_gradient_follow_eq2_too(gradient_kind):
    layer = StochasticQuantize(bins=8, alpha=3.0, gradient=gradient_kind, fixed=(0.0, 7.0))
    v = torch.full((20000, 1), 5.6, requires_grad=True)
    torch.manual_seed(1)
    q = layer(v)
    counts = torch.bincount(q.detach().round().long().flatten(), minlength=8).double()
    p = sq_probabilities(torch.tensor([5.6], dtype=torch.float64), 8, 3.0)[0]
    assert counts[p == 0].sum() == 0
    assert stats.chisquare(counts[p > 0].numpy(), (p[p > 0] * counts.sum()).numpy()).pvalue > 1e-3


def test_defensive_quantization_penalises_non_orthogonal_weights():
    from ensembles_lib.training import DefensiveQuantization
    from ensembles_lib.training.lipschitz import orthogonality_penalty

    q, _ = torch.linalg.qr(torch.randn(6, 6))
    assert orthogonality_penalty(q) == pytest.approx(0.0, abs=1e-8)
    assert orthogonality_penalty(q[:4]) == pytest.approx(0.0, abs=1e-8)  # rows orthonormal: the smaller Gram
    assert orthogonality_penalty(2 * q) == pytest.approx(6 * 3 ** 2, rel=1e-5)  # (4 - 1)^2 on each diagonal entry
    conv = torch.zeros(2, 1, 2, 2)
    conv[0, 0, 0, 0] = conv[1, 0, 1, 1] = 1.0  # two orthonormal filters
    assert orthogonality_penalty(conv) == pytest.approx(0.0)
    torch.manual_seed(0)
    model = registry.build("lenet5", num_classes=10, in_channels=1, weight_bits=4, activation_bits=4)
    x, y = torch.rand(4, 1, 12, 12), torch.randint(10, (4,))
    plain, scores = DefensiveQuantization(0.0).loss(model, x, y)
    regularised, _ = DefensiveQuantization(1e-3).loss(model, x, y)
    assert scores.shape == (4, 10) and regularised > plain
    regularised.backward()
    assert model.fc.weight.grad is not None
    with pytest.raises(ArgumentError, match="beta"):
        DefensiveQuantization(-1.0)
