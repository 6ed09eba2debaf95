"""VGG-11 and VGG-19, with or without BatchNorm, in the CIFAR style (Simonyan & Zisserman 2015).

The conv stack is the paper's (configurations A and E: 3x3 convs, five 2x2 max-pools); the
ImageNet head of three wide fully connected layers is replaced by global average pooling and
one linear layer, as CIFAR adaptations do. Pools use ceil_mode, so a 1x1 map stays 1x1 and
8x8 digits pass all five. Every conv has a tap before its ReLU. VGG-11 is TREND's second base
model; `width` (64 in the paper) scales every stage.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..checks import check_int
from .layers import conv_unit, init_weights
from .registry import register

# Channel multiples of `width` per conv; "M" is a 2x2 max-pool.
CONFIGS = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    19: [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"],
}


class VGG(nn.Module):
    """normalize -> features (conv units and pools) -> global average pool -> linear."""

    def __init__(self, depth: int, num_classes: int, in_channels: int, normalize: nn.Module,
                 width: int = 64, batch_norm: bool = False):
        super().__init__()
        self.normalize = normalize
        layers: list[tuple[str, nn.Module]] = []
        channels, convs, pools = in_channels, 0, 0
        for item in CONFIGS[depth]:
            if item == "M":
                pools += 1
                layers.append((f"pool{pools}", nn.MaxPool2d(2, ceil_mode=True)))
            else:
                convs += 1
                layers.append((f"conv{convs}", conv_unit(channels, item * width, 3, batch_norm=batch_norm)))
                channels = item * width
        self.features = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@register("vgg11", depth=11, batch_norm=False)
@register("vgg11_bn", depth=11, batch_norm=True)
@register("vgg19", depth=19, batch_norm=False)
@register("vgg19_bn", depth=19, batch_norm=True)
def vgg(num_classes, in_channels, normalize, *, depth, batch_norm, width: int = 64):
    """VGG-`depth` (11 or 19), BatchNorm after each conv when `batch_norm`."""
    check_int(width, "width")
    return VGG(depth, num_classes, in_channels, normalize, width, batch_norm)
