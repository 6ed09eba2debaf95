"""The `activation` model option: leaky ReLUs in every architecture, checked values, spec keys."""

import functools

import pytest
import torch
from torch import nn

from ensembles_lib import models, specs
from ensembles_lib.models import QuantConv2d, build, feature_layers, features, leaky_relu_model
from tests.test_models import SMALL

LEAKY = {"activation": "leaky_relu", "negative_slope": 0.1}
MODEL = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
RUN = {"model": MODEL, "data": {"name": "digits", "split": "train", "batch_size": 64},
       "optim": {"lr": 0.05}, "epochs": 1, "seed": 0}


def count(model: nn.Module, kind: type) -> int:
    return sum(type(module) is kind for module in model.modules())


def twins(name: str, **options) -> tuple[nn.Module, nn.Module]:
    """The ReLU model and its leaky twin with the same weights, both in eval mode."""
    torch.manual_seed(0)
    relu = build(name, in_channels=1, **SMALL[name], **options).eval()
    leaky = build(name, in_channels=1, **SMALL[name], **options, **LEAKY).eval()
    leaky.load_state_dict(relu.state_dict())
    return relu, leaky


@pytest.mark.parametrize("name", models.names())
def test_every_architecture_swaps_each_relu_and_keeps_its_taps(name):
    relu, leaky = twins(name)
    assert count(leaky, nn.ReLU) == 0
    assert count(leaky, nn.LeakyReLU) == count(relu, nn.ReLU) >= 1
    assert {m.negative_slope for m in leaky.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert feature_layers(leaky) == feature_layers(relu)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        # the first tap reads a pre-activation no activation has touched yet: DVERGE's features agree
        first = feature_layers(relu)[0]
        assert torch.equal(features(relu, x, first), features(leaky, x, first))
        assert not torch.allclose(relu(x), leaky(x)), "negative pre-activations must now leak"


def test_leaky_relu_is_the_leak_of_negative_pre_activations():
    layer = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    z = layer[0](torch.randn(32, 4))
    leaky_relu_model(layer, 0.2)
    assert (z < 0).any() and isinstance(layer[1], nn.LeakyReLU)
    assert torch.allclose(layer[1](z), torch.where(z > 0, z, 0.2 * z))


def test_input_gradient_flows_where_every_relu_is_off():
    # GAL's penalty reads input gradients: with the first layer's units all off a ReLU model
    # gives exactly zero, the leaky one does not
    torch.manual_seed(0)
    relu = build("mlp", in_channels=1, width=8)
    leaky = build("mlp", in_channels=1, width=8, **LEAKY)
    leaky.load_state_dict(relu.state_dict())
    grads = []
    for model in (relu, leaky):
        with torch.no_grad():
            model.hidden1.linear.bias.fill_(-100.0)
        x = torch.rand(3, 1, 8, 8, requires_grad=True)
        model(x)[:, 0].sum().backward()
        grads.append(x.grad)
    assert torch.count_nonzero(grads[0]) == 0
    assert torch.count_nonzero(grads[1]) == grads[1].numel()


def test_relu_stays_the_default_and_other_options_combine():
    assert count(build("mlp", width=8), nn.ReLU) == 2  # its two hidden layers
    opts = models.options("mlp")
    assert opts["activation"] == "relu" and opts["negative_slope"] == 0.01
    model = build("small_cnn", width=4, weight_bits=4, activation="leaky_relu")
    assert count(model, QuantConv2d) >= 1 and count(model, nn.ReLU) == 0
    assert {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)} == {0.01}


@pytest.mark.parametrize("options, message", [
    ({"activation": "gelu"}, r"^activation must be one of 'relu', 'leaky_relu', got 'gelu'$"),
    ({"activation": "leaky_relu", "negative_slope": 0.0}, r"^negative_slope must be a number in \(0, 1\), got 0.0$"),
    ({"activation": "leaky_relu", "negative_slope": 1}, r"^negative_slope must be a number in \(0, 1\), got 1$"),
    ({"activation": "leaky_relu", "negative_slope": True}, r"^negative_slope must be .*got True$"),
    ({"activation": "leaky_relu", "negative_slope": float("nan")}, r"^negative_slope must be .*got nan$"),
    ({"negative_slope": 0.2}, r"^negative_slope applies only to activation='leaky_relu'"),
    ({"activation": "leaky_relu", "activation_bits": 2}, r"^activation='leaky_relu' and activation_bits .*at most one"),
])
def test_bad_values_are_refused_by_build_and_by_the_spec(options, message, monkeypatch):
    builder, fixed = models.registry._BUILDERS["small_cnn"]

    @functools.wraps(builder)  # same options, but building is an error: the check comes first
    def unbuildable(*args, **kwargs):
        raise AssertionError("built before the options were checked")

    monkeypatch.setitem(models.registry._BUILDERS, "small_cnn", (unbuildable, fixed))
    with pytest.raises(ValueError, match=message):
        build("small_cnn", width=4, **options)
    spec = {**RUN, "model": {**MODEL, "options": {"width": 4, **options}}}
    with pytest.raises(specs.SpecError, match="^spec.model: " + message.lstrip("^")):
        specs.training_run(spec)


def test_the_spec_carries_the_option_and_default_keys_are_unchanged():
    run = specs.training_run({**RUN, "model": {**MODEL, "options": {"width": 4, **LEAKY}}})
    assert {key: run.canonical()["model"]["options"][key] for key in LEAKY} == LEAKY
    model = run.model.build()
    assert count(model, nn.ReLU) == 0 and count(model, nn.LeakyReLU) >= 1
    # the default is left out of the canonical form (the cache key), spelt out or not, so the
    # keys of models cached before the option existed stay valid
    plain = specs.training_run(RUN).canonical()
    assert not set(LEAKY) & set(plain["model"]["options"])
    spelt = {**RUN, "model": {**MODEL, "options": {"width": 4, "activation": "relu", "negative_slope": 0.01}}}
    assert specs.training_run(spelt).canonical() == plain
    assert count(specs.training_run(spelt).model.build(), nn.ReLU) >= 1
