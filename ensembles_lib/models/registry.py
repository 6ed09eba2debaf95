"""The model registry: architectures by name, built with validated options.

`build(name, num_classes, in_channels, **options)` returns an nn.Module that takes float NCHW
images in [0, 1] and returns (N, num_classes) logits. Each architecture registers a builder
`builder(num_classes, in_channels, normalize, **its_options)`; the options below are common
to every architecture and handled here:

- mean, std: the first layer's `Normalize` (scalar or one per channel; default 0.5 / 0.5).
- input_bits, halftone, weight_bits, activation_bits, activation_clip, input_range: TREND's
  quantised members, applied with `quantize_model` (see quantize.py).
- activation ("relu" or "leaky_relu"), negative_slope (in (0, 1), default 0.01; leaky_relu only):
  every nn.ReLU becomes nn.LeakyReLU(negative_slope), with `leaky_relu_model` (see
  activation.py; GAL's members in the DVERGE chapter). Not with activation_bits: ValueError.
- sq (None or a dict of `stochastic_quantize.SQOptions`): stochastic quantisation at the input
  and features, `samples` members per forward (the SQ ensembles chapter); same state-dict keys.

`with_defaults` fills in every option's default, and the model spec's canonical form (the cache
key) is its result; options added after models were cached (`KEYED_WHEN_SET`) are left out while
at their default instead, so a spec that does not set them keeps the key it had before them.

Used by every chapter, and by the cache, which keys trained models on (name, options).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ..checks import check_int
from .activation import DEFAULT_SLOPE, check_activation, leaky_relu_model
from .normalize import Normalize
from .quantize import check_quantize_options, quantize_model
from .stochastic_quantize import check_sq_options, stochastic_quantize

COMMON_OPTIONS: dict[str, Any] = {
    "mean": 0.5,
    "std": 0.5,
    "input_bits": None,
    "halftone": False,
    "weight_bits": None,
    "activation_bits": None,
    "activation_clip": 1.0,
    "input_range": "unit",
    "activation": "relu",
    "negative_slope": DEFAULT_SLOPE,
    "sq": None,
}
ACTIVATION_OPTIONS = ("activation", "negative_slope")
# options that add no parameter: a model with them takes another's weights (specs' `init`)
PARAMETER_FREE_OPTIONS = (*ACTIVATION_OPTIONS, "sq")
# added after models were cached: left out of the canonical spec while at their default, so the
# cache keys of specs that do not set them are unchanged
KEYED_WHEN_SET: dict[str, Any] = {key: COMMON_OPTIONS[key] for key in (*ACTIVATION_OPTIONS, "sq")}

_BUILDERS: dict[str, tuple[Callable[..., nn.Module], dict[str, Any]]] = {}


def register(name: str, **fixed: Any) -> Callable:
    """Decorator: register `builder` under `name`, with `fixed` keyword arguments bound."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model name {name!r} is already registered")
        _BUILDERS[name] = (builder, fixed)
        return builder

    return decorate


def names() -> list[str]:
    """Every registered architecture name, sorted."""
    return sorted(_BUILDERS)


def _lookup(name: str) -> tuple[Callable[..., nn.Module], dict[str, Any]]:
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {', '.join(names())}, got {name!r}")
    return _BUILDERS[name]


def options(name: str) -> dict[str, Any]:
    """The options `build(name, ...)` accepts, with their defaults (architecture's, then common)."""
    builder, fixed = _lookup(name)
    own = {p.name: p.default for p in inspect.signature(builder).parameters.values()
           if p.default is not inspect.Parameter.empty and p.name not in fixed}
    return {**own, **COMMON_OPTIONS}


def with_defaults(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` options of architecture `name` with every other option at its default, except the
    `KEYED_WHEN_SET` ones, which are left out (given or not) while at their default; ValueError
    naming the unknown ones and listing the valid ones, or naming a bad `activation` /
    `negative_slope`. The one check of option names: `build` and the model specs
    (`specs.ArchitectureSpec`) both use it, so the spec's canonical form (the cache key) is this."""
    valid = options(name)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"options {', '.join(map(repr, unknown))} unknown to {name}; "
                         f"it accepts {', '.join(sorted(valid))}")
    filled = {**valid, **given}
    check_activation(filled["activation"], filled["negative_slope"], filled["activation_bits"])
    sq = check_sq_options(filled["sq"])
    filled["sq"] = None if sq is None else sq.model_dump()
    return {key: value for key, value in filled.items()
            if not (key in KEYED_WHEN_SET and value == KEYED_WHEN_SET[key])}


def build(name: str, num_classes: int = 10, in_channels: int = 3, **opts: Any) -> nn.Module:
    """A freshly initialised `name` model for `in_channels`-channel images and `num_classes`.

    Unknown names and options raise ValueError listing the valid ones, before anything is built.
    """
    builder, fixed = _lookup(name)
    check_int(num_classes, "num_classes")
    check_int(in_channels, "in_channels")
    opts = with_defaults(name, opts)
    common = {key: opts.pop(key, default) for key, default in COMMON_OPTIONS.items()}
    quant = {key: common[key] for key in COMMON_OPTIONS if key not in ("mean", "std", "sq", *ACTIVATION_OPTIONS)}
    check_quantize_options(**quant)
    normalize = Normalize(common["mean"], common["std"], channels=in_channels)
    model = builder(num_classes, in_channels, normalize, **fixed, **opts)
    if common["activation"] == "leaky_relu":
        model = leaky_relu_model(model, common["negative_slope"])
    if any(quant[key] not in (None, False)
           for key in ("input_bits", "halftone", "weight_bits", "activation_bits")):
        model = quantize_model(model, **quant, inplace=True)
    if common["sq"] is not None:
        model = stochastic_quantize(model, **common["sq"])
    return model
