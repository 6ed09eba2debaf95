"""Small pieces the architectures share: conv-BN units with a feature tap, weight init."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .features import Tap




def conv_unit(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
              padding: int | None = None, batch_norm: bool = True) -> nn.Sequential:
    """conv -> (BN) -> tap -> ReLU; the tap reads the pre-activation output."""
    pad = kernel_size // 2 if padding is None else padding
    layers: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=not batch_norm))
    ]
    if batch_norm:
        layers.append(("bn", nn.BatchNorm2d(out_channels)))
    layers += [("tap", Tap()), ("relu", nn.ReLU())]
    return nn.Sequential(OrderedDict(layers))


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions (fan-out, ReLU), unit BatchNorm, zero biases: the ResNet/WRN init."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
