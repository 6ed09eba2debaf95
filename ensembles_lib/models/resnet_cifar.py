"""ResNet-20/32/56 for CIFAR (He et al. 2016, Section 4.2): 3 stages of 16, 32, 64 channels.

depth = 6n + 2 with n basic blocks a stage. We default to option A shortcuts (subsample and
zero-pad channels, no parameters) as He et al. used on CIFAR, which gives ResNet-20 its
0.27M parameters; `shortcut="B"` swaps in 1x1 conv + BN projections. ResNet-20 is DVERGE's
sub-model. Taps: the stem and every block's residual sum (before its ReLU).
"""

from __future__ import annotations

from ..checks import check_int
from .registry import register
from .resnet import BasicBlock, resnet_from_blocks


@register("resnet20", depth=20)
@register("resnet32", depth=32)
@register("resnet56", depth=56)
def cifar_resnet(num_classes, in_channels, normalize, *, depth, width: int = 16, shortcut: str = "A"):
    """He et al.'s CIFAR ResNet of `depth` layers; `width` is the first stage's channels (16)."""
    check_int(width, "width")
    n = (depth - 2) // 6
    return resnet_from_blocks(BasicBlock, [n, n, n], num_classes, in_channels, normalize, width, shortcut)
