"""Registry, architectures, normalisation and feature taps (ensembles_lib.models)."""

import pytest
import torch
from torch import nn

from ensembles_lib import models
from ensembles_lib.models import Normalize, Tap, build, feature_layers, features

# Small widths keep every architecture's forward cheap on two CPU cores.
SMALL = {
    "resnet18": {"width": 4}, "resnet34": {"width": 4}, "resnet50": {"width": 4},
    "resnet101": {"width": 2}, "resnet20": {"width": 4}, "resnet32": {"width": 4},
    "resnet56": {"width": 4}, "vgg11": {"width": 4}, "vgg11_bn": {"width": 4},
    "vgg19": {"width": 4}, "vgg19_bn": {"width": 4},
    "wide_resnet": {"depth": 10, "widen_factor": 1}, "small_cnn": {"width": 4},
    "mlp": {"width": 16}, "lenet5": {},
}
SHAPES = [(3, 32, 32), (1, 28, 28), (1, 8, 8)]


def test_registry_lists_every_required_architecture():
    required = {"resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "resnet50", "resnet101",
                "vgg11", "vgg19", "vgg11_bn", "vgg19_bn", "wide_resnet", "lenet5", "small_cnn", "mlp"}
    assert required <= set(models.names())
    assert set(SMALL) == set(models.names()), "SMALL must cover every registered model"


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_model_maps_images_to_logits(name, shape):
    torch.manual_seed(0)
    model = build(name, num_classes=7, in_channels=shape[0], **SMALL[name]).eval()
    x = torch.rand(2, *shape)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    assert isinstance(next(iter(model.children())), Normalize), "normalisation must come first"


@pytest.mark.parametrize("name", ["resnet18", "resnet20", "vgg11", "lenet5", "small_cnn", "mlp"])
def test_default_widths_run_on_cifar_shape(name):
    model = build(name).eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name, options, low, high", [
    ("resnet20", {}, 0.26e6, 0.28e6),                    # He et al.: 0.27M
    ("resnet56", {}, 0.84e6, 0.86e6),                    # He et al.: 0.85M
    ("resnet18", {}, 11.1e6, 11.25e6),
    ("wide_resnet", {"depth": 28, "widen_factor": 10}, 36.0e6, 37.0e6),  # WRN-28-10: 36.5M
])
def test_parameter_counts_match_the_papers(name, options, low, high):
    count = sum(p.numel() for p in build(name, **options).parameters())
    assert low <= count <= high


def test_wider_wide_resnet_has_about_twice_the_parameters():
    # SiN's DoubleAdv widens WRN-28-10 to width 15 to match a two-member ensemble.
    base = sum(p.numel() for p in build("wide_resnet", widen_factor=10).parameters())
    wide = sum(p.numel() for p in build("wide_resnet", widen_factor=15).parameters())
    assert 2.1 < wide / base < 2.4


def test_shortcut_option_b_adds_projection_parameters():
    a = sum(p.numel() for p in build("resnet20").parameters())
    b = sum(p.numel() for p in build("resnet20", shortcut="B").parameters())
    assert b > a
    assert build("resnet20", shortcut="B")(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet20") as info:
        build("resnet7")
    assert "name" in str(info.value) and "wide_resnet" in str(info.value)


@pytest.mark.parametrize("name, options, word", [
    ("resnet20", {"widht": 8}, "widht"),
    ("lenet5", {"width": 8}, "width"),
    ("resnet18", {"blocks": (1, 1, 1, 1)}, "blocks"),
    ("resnet20", {"width": 0}, "width"),
    ("resnet20", {"shortcut": "C"}, "shortcut"),
    ("wide_resnet", {"depth": 27}, "depth"),
    ("wide_resnet", {"dropout": 1.5}, "dropout"),
    ("mlp", {"depth": 0}, "depth"),
    ("small_cnn", {"mean": [0.5, 0.5]}, "mean"),
    ("small_cnn", {"std": 0.0}, "std"),
    ("small_cnn", {"input_bits": 0}, "input_bits"),
])
def test_bad_options_name_the_option(name, options, word):
    with pytest.raises(ValueError, match=word):
        build(name, **options)


@pytest.mark.parametrize("num_classes, in_channels", [(0, 3), (10, 0), (2.5, 3)])
def test_bad_sizes_are_rejected(num_classes, in_channels):
    with pytest.raises(ValueError):
        build("small_cnn", num_classes=num_classes, in_channels=in_channels)


def test_options_report_defaults():
    opts = models.options("wide_resnet")
    assert opts["depth"] == 28 and opts["widen_factor"] == 10 and opts["dropout"] == 0.0
    assert opts["mean"] == 0.5 and opts["std"] == 0.5 and opts["input_bits"] is None
    assert "block" not in models.options("resnet18")


def test_normalize_is_per_channel_and_default_maps_unit_range_to_symmetric():
    model = build("small_cnn", width=4)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(model.normalize(x), 2 * x - 1)
    norm = Normalize([0.1, 0.2, 0.3], [1.0, 2.0, 4.0], channels=3)
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)
    assert torch.allclose(norm(x), expected)
    assert set(dict(norm.named_buffers())) == {"mean", "std"}
    with pytest.raises(ValueError, match="channel"):
        norm(torch.rand(2, 1, 8, 8))


def test_custom_statistics_reach_the_model():
    a = build("small_cnn", width=4, mean=[0.4914, 0.4822, 0.4465], std=[0.247, 0.243, 0.261])
    assert torch.allclose(a.normalize.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))


def test_state_dict_round_trip_reproduces_outputs():
    torch.manual_seed(1)
    a = build("resnet20", width=4, in_channels=1).eval()
    torch.manual_seed(2)
    b = build("resnet20", width=4, in_channels=1).eval()
    x = torch.rand(2, 1, 8, 8)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))


def _tap_call_order(model, x):
    order = []
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
               for name, m in model.named_modules() if isinstance(m, Tap)]
    model(x)
    for h in handles:
        h.remove()
    return order


@pytest.mark.parametrize("name", sorted(SMALL))
def test_feature_layers_are_in_forward_order(name):
    model = build(name, in_channels=1, **SMALL[name]).eval()
    layers = feature_layers(model)
    assert len(layers) >= 2
    assert _tap_call_order(model, torch.rand(2, 1, 8, 8)) == layers


def _checked_layers(model):
    """Every tap, except first, middle and last only for the deepest (resnet56, resnet101)."""
    layers = feature_layers(model)
    return layers if len(layers) <= 20 else [layers[0], layers[len(layers) // 2], layers[-1]]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_features_at_every_layer_are_pre_activation_with_gradients(name):
    torch.manual_seed(0)
    model = build(name, in_channels=1, **SMALL[name]).eval()
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    captured = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=n: captured.__setitem__(name, o))
               for n, m in model.named_modules() if isinstance(m, Tap)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for layer in _checked_layers(model):
        feat = features(model, x, layer)
        assert feat.shape[0] == 2
        assert torch.allclose(feat, captured[layer], atol=1e-6)
        (grad,) = torch.autograd.grad(feat.square().sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # Somewhere a pre-activation value is negative (a post-ReLU value never is).
    assert any((value < 0).any() for value in captured.values())


def test_features_stop_the_forward_at_the_tap():
    model = build("resnet20", width=4).eval()
    calls = []
    model.fc.register_forward_hook(lambda *args: calls.append(1))
    features(model, torch.rand(2, 3, 32, 32), "layer1.0.tap")
    assert calls == []
    model(torch.rand(2, 3, 32, 32))
    assert calls == [1]
    assert not model.fc._forward_hooks or len(model.fc._forward_hooks) == 1
    assert all(not m._forward_hooks for m in model.modules() if isinstance(m, Tap))


def test_unknown_feature_layer_lists_the_valid_ones():
    model = build("resnet20", width=4)
    with pytest.raises(ValueError, match=r"layer1\.0\.tap"):
        features(model, torch.rand(1, 3, 32, 32), "layer9")


def test_features_reach_inside_wrappers():
    members = nn.ModuleList([build("small_cnn", width=4), build("lenet5")])
    layers = feature_layers(members)
    assert layers[0].startswith("0.") and layers[-1].startswith("1.")
    feat = features(members[1], torch.rand(2, 3, 8, 8), "features.c3.tap")
    assert feat.shape == (2, 16, 4, 4)
