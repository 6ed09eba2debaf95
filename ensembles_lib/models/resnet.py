"""ResNet-18/34/50/101 in CIFAR form (He et al. 2016; 3x3 stem, no max-pool).

Residual blocks here are shared with the CIFAR ResNet-20/32/56 (resnet_cifar.py). Each block
ends in a `Tap` on the residual sum before its ReLU, which is where DVERGE distils features;
the stem has one too. Global average pooling makes any input size work (8x8 digits, 28x28
Fashion-MNIST, 32x32 CIFAR). ResNet-18 is TREND's, SQ's and CLM's CIFAR model; `width` (the
first stage's channels, 64 in the paper) shrinks it for the CPU profiles.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .features import Tap
from ..checks import check_choice, check_int
from .layers import conv_unit, init_weights
from .normalize import Normalize
from .registry import register

SHORTCUTS = ("A", "B")


class PadShortcut(nn.Module):
    """He et al.'s option A: subsample by `stride` and zero-pad the new channels (no parameters)."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


def shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    """Identity where shapes agree; else option A (zero-pad) or B (1x1 conv + BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(out_channels, stride)
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        bn=nn.BatchNorm2d(out_channels),
    ))


class BasicBlock(nn.Module):
    """Two 3x3 convs; out = ReLU(tap(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)))."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut_kind: str = "B"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = shortcut(in_channels, channels, stride, shortcut_kind)
        self.tap = Tap()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.tap(out + self.shortcut(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4; tap on the sum before the ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut_kind: str = "B"):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut(in_channels, out_channels, stride, shortcut_kind)
        self.tap = Tap()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.tap(out + self.shortcut(x)))


class ResNet(nn.Module):
    """normalize -> 3x3 stem -> stages of residual blocks (stride 2 from the second) -> pool -> fc."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], blocks: list[int],
                 widths: list[int], num_classes: int, in_channels: int, normalize: Normalize,
                 shortcut_kind: str = "B"):
        super().__init__()
        self.normalize = normalize
        self.stem = conv_unit(in_channels, widths[0], 3)
        channels = widths[0]
        stages = []
        for index, (count, width) in enumerate(zip(blocks, widths)):
            layers = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                layers.append(block(channels, width, stride, shortcut_kind))
                channels = width * block.expansion
            stages.append(nn.Sequential(*layers))
        # Named layer1.. so taps read "layer2.0.tap", as in the papers' code and figures.
        for index, stage in enumerate(stages, start=1):
            self.add_module(f"layer{index}", stage)
        self.num_stages = len(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(x))
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet_from_blocks(block, blocks, num_classes, in_channels, normalize, width, shortcut_kind="B"):
    """A ResNet with `blocks[i]` residual blocks of type `block` in stage i (ImageNet-style and CIFAR ResNets)."""
    check_int(width, "width")
    check_choice(shortcut_kind, "shortcut", SHORTCUTS)
    widths = [width * 2**i for i in range(len(blocks))]
    return ResNet(block, blocks, widths, num_classes, in_channels, normalize, shortcut_kind)


@register("resnet18", block=BasicBlock, blocks=(2, 2, 2, 2))
@register("resnet34", block=BasicBlock, blocks=(3, 4, 6, 3))
@register("resnet50", block=Bottleneck, blocks=(3, 4, 6, 3))
@register("resnet101", block=Bottleneck, blocks=(3, 4, 23, 3))
def imagenet_style_resnet(num_classes, in_channels, normalize, *, block, blocks, width: int = 64):
    """ResNet-18/34/50/101, CIFAR form: 3x3 stem, 4 stages of width, 2, 4, 8 x width; 1x1-conv shortcuts."""
    return resnet_from_blocks(block, list(blocks), num_classes, in_channels, normalize, width, "B")
