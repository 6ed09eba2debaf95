"""Architectures, normalisation, feature taps and quantised members (DESIGN.md: models/).

    from ensembles_lib import models
    model = models.build("resnet20", num_classes=10, in_channels=3)   # [0, 1] NCHW in, logits out
    models.names()                           # every registered architecture
    models.options("wide_resnet")            # its options and their defaults
    models.feature_layers(model)             # tap names, forward order
    models.features(model, x, "layer2.0.tap")  # pre-activation features there (DVERGE)
    models.build("resnet18", input_bits=2)   # a TREND Q2 member; also halftone, weight_bits, ...
    models.build("resnet20", activation="leaky_relu", negative_slope=0.1)  # GAL's members (DVERGE code)
"""

from . import lenet, resnet, resnet_cifar, small, vgg, wide_resnet  # noqa: F401  (register models)
from .activation import ACTIVATIONS, leaky_relu_model
from .features import Tap, feature_layers, features
from .layout import channels_last
from .normalize import Normalize
from .quantize import (Halftone, InputQuantize, QuantConv2d, QuantLinear, QuantReLU,
                       quantize_model)
from .registry import build, names, options, register

__all__ = [
    "build", "names", "options", "register", "channels_last", "Normalize", "Tap", "feature_layers", "features",
    "InputQuantize", "Halftone", "QuantConv2d", "QuantLinear", "QuantReLU", "quantize_model",
    "ACTIVATIONS", "leaky_relu_model",
]
