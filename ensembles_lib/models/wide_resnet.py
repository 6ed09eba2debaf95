"""Wide ResNet (Zagoruyko & Komodakis 2016): the Strength in Numbers base model.

WRN-depth-k: a 3x3 stem of 16 channels, three stages of n = (depth - 4) / 6 pre-activation
blocks (BN-ReLU-conv twice, dropout between) of 16k, 32k, 64k channels, then BN, ReLU, global
average pooling and a linear layer. SiN's baseline is WRN-28-10 (36.5M parameters) and its
DoubleAdv twin widens the blocks to k = 15. Taps: the stem, every block's output (the residual
stream, which the next block's BN-ReLU reads) and the final BN before its ReLU.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .features import Tap
from ..checks import check_int
from .layers import init_weights
from .normalize import Normalize
from .registry import register


class WideBlock(nn.Module):
    """Pre-activation block; the 1x1 projection (when shapes change) reads the activated input."""

    def __init__(self, in_channels: int, channels: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.projection = (nn.Conv2d(in_channels, channels, 1, stride, bias=False)
                           if stride != 1 or in_channels != channels else None)
        self.tap = Tap()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv1(activated)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        skip = x if self.projection is None else self.projection(activated)
        return self.tap(out + skip)


class WideResNet(nn.Module):
    """normalize -> stem -> 3 stages of WideBlocks -> BN -> tap -> ReLU -> pool -> fc."""

    def __init__(self, depth: int, widen_factor: int, dropout: float, num_classes: int,
                 in_channels: int, normalize: Normalize):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = normalize
        self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
                                              tap=Tap()))
        channels = 16
        for index, width in enumerate(widths, start=1):
            blocks = []
            for position in range(n):
                stride = 2 if index > 1 and position == 0 else 1
                blocks.append(WideBlock(channels, width, stride, dropout))
                channels = width
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.head = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), tap=Tap(), relu=nn.ReLU()))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(self.head(x)), 1))


@register("wide_resnet")
def wide_resnet(num_classes, in_channels, normalize, *, depth: int = 28, widen_factor: int = 10,
                dropout: float = 0.0):
    """WRN-`depth`-`widen_factor`; depth = 6n + 4 (10, 16, 22, 28, ...), dropout in [0, 1)."""
    check_int(depth, "depth")
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 34, 40, ...), got {depth!r}")
    check_int(widen_factor, "widen_factor")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return WideResNet(depth, widen_factor, float(dropout), num_classes, in_channels, normalize)
