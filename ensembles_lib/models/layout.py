"""The memory layout models train and run in: channels-last wherever a model convolves.

oneDNN's CPU convolutions and cuDNN's tensor-core kernels both work in NHWC; a model whose
weights are channels-last makes PyTorch pick that layout for every activation after the first
convolution, even for 1-channel inputs, which saves a layout conversion around each
convolution, batch norm and pooling. The values are those of the NCHW model up to float
rounding. Measured by bench/train.py: 1.2-1.3x for steps that take input gradients (adversarial
training, DVERGE), about 1.0x for plain steps, but 0.5x for GAL's double backpropagation (small
CNN 0.47 -> 0.85 s, ResNet-20 6 -> 11 s a step), which therefore trains NCHW. Used by
`training.fit` and by `cache` for every model it hands out.
"""

from __future__ import annotations

import torch
from torch import nn


def convolves(model: nn.Module) -> bool:
    """True when `model` has a 2-d convolution (the layers channels-last speeds up)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """`model` with its 4-d parameters and buffers channels-last, in place (returned for chaining);
    with enabled=False back in the default NCHW layout, for steps that run slower channels-last
    (GAL's double backpropagation: `training.fit` asks the strategy). A model without
    convolutions is returned unchanged."""
    if convolves(model):
        model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
    return model
