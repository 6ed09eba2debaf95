"""LeNet-5 (LeCun et al. 1998): CLM's MNIST sub-model and SQ's LeNet-MNIST.

C1: 6 5x5 convs, S2: 2x2 max-pool, C3: 16 5x5 convs, S4: 2x2 max-pool, C5: 120 5x5 convs to
1x1, F6: 84 units, then the classifier; ReLU activations, no BatchNorm. To accept any input
size, C1 and C3 pad by 2 (so 8x8 digits survive both pools) and an adaptive average pool
brings S4's map to the 5x5 that C5 expects (for 28x28 input: 28 -> 14 -> 7 -> 5 -> 1).
Taps before every ReLU (C1, C3, C5, F6).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .features import Tap
from .layers import conv_unit
from .registry import register


class LeNet5(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, normalize: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.features = nn.Sequential(OrderedDict(
            c1=conv_unit(in_channels, 6, 5, padding=2, batch_norm=False),
            s2=nn.MaxPool2d(2, ceil_mode=True),
            c3=conv_unit(6, 16, 5, padding=2, batch_norm=False),
            s4=nn.MaxPool2d(2, ceil_mode=True),
            resize=nn.AdaptiveAvgPool2d(5),
            c5=conv_unit(16, 120, 5, padding=0, batch_norm=False),
        ))
        self.f6 = nn.Sequential(OrderedDict(linear=nn.Linear(120, 84), tap=Tap(), relu=nn.ReLU()))
        self.fc = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.fc(self.f6(torch.flatten(x, 1)))


@register("lenet5")
def lenet5(num_classes, in_channels, normalize):
    """LeNet-5 with ReLU; no options beyond the common ones."""
    return LeNet5(num_classes, in_channels, normalize)
