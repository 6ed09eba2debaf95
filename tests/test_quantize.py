"""TREND's quantisers: input (Eq. 1-2), halftone, weights, activations; BPDA gradients."""

import pytest
import torch
from torch import nn

from ensembles_lib.models import (Halftone, InputQuantize, QuantConv2d, QuantLinear, QuantReLU,
                                  build, feature_layers, features, quantize_model)
from ensembles_lib.models.quantize import bayer_matrix, quantize_weight


def _levels(t: torch.Tensor) -> int:
    return torch.unique(t.detach()).numel()


@pytest.mark.parametrize("bits", [0, 17, -1, 2.0, True, None])
def test_bits_outside_1_to_16_are_rejected(bits):
    with pytest.raises(ValueError, match="bits"):
        InputQuantize(bits)
    with pytest.raises(ValueError, match="activation_bits"):
        QuantReLU(bits)
    if bits is not None:
        with pytest.raises(ValueError, match="weight_bits"):
            quantize_model(nn.Linear(2, 2), weight_bits=bits)
        with pytest.raises(ValueError, match="activation_bits"):
            build("small_cnn", width=4, activation_bits=bits)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_input_quantize_takes_at_most_2_pow_bits_levels(bits):
    x = torch.rand(4, 3, 32, 32)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    y = InputQuantize(bits)(x)
    assert _levels(y) <= 2**bits
    width = 1 / 2**bits
    assert (y - x).abs().max() <= width / 2 + 1e-6  # every pixel goes to its bin centre


def test_input_quantize_matches_trend_eq_1_by_hand():
    x = torch.tensor([0.0, 0.2, 0.26, 0.5, 0.74, 0.99, 1.0]).view(1, 1, 1, 7)
    # 2 bits over [0, 1]: bin width 0.25, centres 0.125, 0.375, 0.625, 0.875; 1.0 joins the top bin.
    expected = torch.tensor([0.125, 0.125, 0.375, 0.625, 0.625, 0.875, 0.875]).view(1, 1, 1, 7)
    assert torch.allclose(InputQuantize(2)(x), expected)
    assert torch.allclose(InputQuantize(1)(x).flatten(), torch.tensor([0.25] * 3 + [0.75] * 4))


def test_batch_range_uses_the_minibatch_min_and_max():
    x = torch.tensor([0.2, 0.3, 0.5, 0.6]).view(1, 1, 1, 4)
    # [0.2, 0.6] in 2 bins of 0.2: centres 0.3 and 0.5.
    y = InputQuantize(1, range="batch")(x)
    assert torch.allclose(y.flatten(), torch.tensor([0.3, 0.3, 0.5, 0.5]))
    with pytest.raises(ValueError, match="range"):
        InputQuantize(1, range="global")


def test_bayer_matrix_is_a_permutation_and_sizes_are_checked():
    m = bayer_matrix(4)
    assert sorted(m.flatten().tolist()) == list(range(16))
    assert m.tolist()[0] == [0, 8, 2, 10]
    for bad in (3, 1, 0, 6):
        with pytest.raises(ValueError, match="size"):
            Halftone(bad)


@pytest.mark.parametrize("grey", [0.1, 0.25, 0.5, 0.8])
def test_halftone_is_binary_and_keeps_the_grey_level_as_density(grey):
    x = torch.full((2, 3, 16, 16), grey)
    y = Halftone(4)(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    # Thresholds (k + 0.5) / 16: the fraction of ones is the fraction of thresholds below grey.
    expected = sum((k + 0.5) / 16 < grey for k in range(16)) / 16
    assert y.mean().item() == pytest.approx(expected)


def test_halftone_handles_sizes_not_divisible_by_the_matrix():
    y = Halftone(8)(torch.rand(2, 1, 28, 28))
    assert y.shape == (2, 1, 28, 28) and _levels(y) <= 2


@pytest.mark.parametrize("quantiser", [InputQuantize(1), InputQuantize(4), InputQuantize(2, "batch"),
                                       Halftone(4)], ids=["q1", "q4", "q2-batch", "halftone"])
def test_input_quantisers_pass_the_gradient_straight_through(quantiser):
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(2, 3, 8, 8)
    (grad,) = torch.autograd.grad((quantiser(x) * w).sum(), x)
    assert torch.equal(grad, w)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_weight_quantisation_levels_and_error(bits):
    torch.manual_seed(0)
    w = torch.randn(64, 32, 3, 3)
    q = quantize_weight(w, bits)
    assert _levels(q) <= 2**bits
    assert torch.equal(quantize_weight(torch.zeros(3, 3), bits), torch.zeros(3, 3))
    if bits >= 2:
        step = w.abs().max() / (2 ** (bits - 1) - 1)
        assert (q - w).abs().max() <= step / 2 + 1e-6
    else:
        assert torch.equal(q.sign(), torch.where(w >= 0, 1.0, -1.0))
        assert q.abs().unique().numel() == 1


def test_sixteen_bit_weights_are_nearly_exact():
    torch.manual_seed(0)
    w = torch.randn(100)
    assert torch.allclose(quantize_weight(w, 16), w, atol=w.abs().max().item() / 2**15)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_quant_relu_levels_range_and_gradient(bits):
    x = torch.linspace(-1, 2, 301, requires_grad=True)
    y = QuantReLU(bits, clip=1.0)(x)
    assert _levels(y) <= 2**bits
    assert y.min() == 0 and y.max() == 1.0
    (grad,) = torch.autograd.grad(y.sum(), x)
    inside = (x > 0) & (x < 1)
    assert torch.equal(grad, inside.float())  # clipped ReLU's gradient, rounding straight-through
    with pytest.raises(ValueError, match="activation_clip"):
        QuantReLU(bits, clip=0)


def test_quant_layers_keep_float_keys_and_quantise_the_forward():
    torch.manual_seed(0)
    conv, linear = nn.Conv2d(3, 8, 3), nn.Linear(16, 4)
    qconv, qlinear = QuantConv2d.from_float(conv, 2), QuantLinear.from_float(linear, 2)
    assert qconv.state_dict().keys() == conv.state_dict().keys()
    assert torch.equal(qconv.weight, conv.weight)
    x = torch.rand(1, 3, 6, 6)
    expected = nn.functional.conv2d(x, quantize_weight(conv.weight.detach(), 2), conv.bias)
    assert torch.allclose(qconv(x), expected, atol=1e-6)
    v = torch.rand(2, 16)
    expected = nn.functional.linear(v, quantize_weight(linear.weight.detach(), 2), linear.bias)
    assert torch.allclose(qlinear(v), expected, atol=1e-6)
    # The weight's gradient is straight-through: that of the float layer at the quantised weight.
    qlinear(v).sum().backward()
    assert torch.allclose(qlinear.weight.grad, torch.ones(4, 1) * v.sum(0))


def test_quantize_model_copies_and_replaces_every_layer():
    model = build("small_cnn", width=4)
    q = quantize_model(model, weight_bits=2, activation_bits=2)
    kinds = [type(m) for m in q.modules()]
    assert nn.ReLU not in kinds and nn.Conv2d not in kinds and nn.Linear not in kinds
    assert kinds.count(QuantReLU) == 4 and kinds.count(QuantConv2d) == 4 and kinds.count(QuantLinear) == 1
    assert any(type(m) is nn.Conv2d for m in model.modules()), "original must be left untouched"
    assert q.state_dict().keys() == model.state_dict().keys()
    q.load_state_dict(model.state_dict())  # a trained float model loads into its quantised twin


def test_activation_quantised_model_has_few_activation_levels():
    torch.manual_seed(0)
    model = build("small_cnn", width=4, activation_bits=2).eval()
    seen = []
    for m in model.modules():
        if isinstance(m, QuantReLU):
            m.register_forward_hook(lambda mod, i, o: seen.append(o))
    model(torch.rand(4, 3, 16, 16))
    assert len(seen) == 4 and all(_levels(o) <= 4 for o in seen)


def test_sixteen_bit_model_agrees_with_float_and_two_bit_does_not():
    torch.manual_seed(0)
    model = build("small_cnn", width=4).eval()
    x = torch.rand(4, 3, 16, 16)
    close = quantize_model(model, weight_bits=16).eval()
    far = quantize_model(model, weight_bits=2, activation_bits=2).eval()
    assert torch.allclose(close(x), model(x), atol=1e-3)
    assert not torch.allclose(far(x), model(x), atol=1e-2)


@pytest.mark.parametrize("options", [
    {"input_bits": 1}, {"input_bits": 2}, {"halftone": True}, {"weight_bits": 1},
    {"weight_bits": 4}, {"activation_bits": 1}, {"activation_bits": 4},
    {"input_bits": 2, "weight_bits": 2, "activation_bits": 2},
], ids=lambda o: "-".join(f"{k}{v}" for k, v in o.items()))
def test_gradients_reach_the_input_through_every_quantiser(options):
    torch.manual_seed(0)
    model = build("small_cnn", width=4, **options).eval()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), torch.tensor([1, 2])), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_input_quantised_model_ignores_changes_within_a_bin():
    torch.manual_seed(0)
    model = build("small_cnn", width=4, input_bits=2).eval()
    assert isinstance(model.input, InputQuantize) and model.input.bits == 2
    x = (torch.randint(0, 4, (2, 3, 16, 16)) + 0.5) / 4  # bin centres
    wiggle = (torch.rand_like(x) - 0.5) * 0.2  # stays inside each 0.25-wide bin
    assert torch.equal(model(x), model(x + wiggle))
    assert not torch.equal(build("small_cnn", width=4).eval()(x), build("small_cnn", width=4).eval()(x + wiggle))


def test_input_quantisers_are_exclusive_and_taps_survive_wrapping():
    with pytest.raises(ValueError, match="halftone"):
        build("small_cnn", input_bits=2, halftone=True)
    with pytest.raises(ValueError, match="halftone"):
        build("small_cnn", halftone=1)
    model = build("resnet20", width=4, halftone=True).eval()
    layers = feature_layers(model)
    assert layers[0] == "model.stem.tap"
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(features(model, x, layers[3]).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
