"""Small, fast models for the smoke and cpu profiles (seconds to minutes on two CPU cores).

small_cnn: two stages of two 3x3 conv-BN-ReLU units (width, then 2 x width channels), a 2x2
max-pool after each, global average pooling and a linear layer. mlp: the image average-pooled
to resolution x resolution (so any input size gives the same layer shapes), flattened, then
`depth` hidden layers of `width` units with ReLU. Taps before every ReLU. These stand in for
the papers' CIFAR networks when a chapter runs on digits or Fashion-MNIST.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .features import Tap
from ..checks import check_int
from .layers import conv_unit, init_weights
from .registry import register


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, normalize: nn.Module, width: int):
        super().__init__()
        self.normalize = normalize
        self.features = nn.Sequential(OrderedDict(
            conv1=conv_unit(in_channels, width),
            conv2=conv_unit(width, width),
            pool1=nn.MaxPool2d(2, ceil_mode=True),
            conv3=conv_unit(width, 2 * width),
            conv4=conv_unit(2 * width, 2 * width),
            pool2=nn.MaxPool2d(2, ceil_mode=True),
        ))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class MLP(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, normalize: nn.Module, width: int,
                 depth: int, resolution: int):
        super().__init__()
        self.normalize = normalize
        self.resize = nn.AdaptiveAvgPool2d(resolution)
        features = in_channels * resolution**2
        for index in range(1, depth + 1):
            self.add_module(f"hidden{index}", nn.Sequential(OrderedDict(
                linear=nn.Linear(features, width), tap=Tap(), relu=nn.ReLU())))
            features = width
        self.depth = depth
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.resize(self.normalize(x)), 1)
        for index in range(1, self.depth + 1):
            x = getattr(self, f"hidden{index}")(x)
        return self.fc(x)


@register("small_cnn")
def small_cnn(num_classes, in_channels, normalize, *, width: int = 32):
    """SmallCNN with `width` channels in the first stage."""
    return SmallCNN(num_classes, in_channels, normalize, check_int(width, "width"))


@register("mlp")
def mlp(num_classes, in_channels, normalize, *, width: int = 256, depth: int = 2,
        resolution: int = 16):
    """MLP with `depth` hidden layers of `width` units on a resolution x resolution pooled image."""
    return MLP(num_classes, in_channels, normalize, check_int(width, "width"),
               check_int(depth, "depth"), check_int(resolution, "resolution"))
