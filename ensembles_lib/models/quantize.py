"""Quantised members for TREND (paper 000, Section IV-C): input, weight and activation quantisers.

Every quantiser rounds in the forward pass and passes the gradient straight through in the
backward pass (BPDA, Athalye et al.; TREND uses it "wherever needed"), written as
`x + (q(x) - x).detach()`: forward value q(x), gradient that of x. Gradient attacks therefore
see through the quantisers instead of meeting a zero gradient. Bit widths are 1..16.

- `InputQuantize(bits)`: TREND Eq. 1-2, uniform bins over the pixel range, bin centres out.
- `Halftone(size)`: ordered (Bayer) dithering to one bit per channel ("HT" in TREND).
- `QuantConv2d`, `QuantLinear`: weights quantised per tensor on every forward.
- `QuantReLU(bits, clip)`: ReLU clipped to [0, clip] and quantised to 2**bits levels.
- `quantize_model(model, ...)`: a copy of a model with any of the above put in.

Used by the TREND chapter (its FP / Q1 / Q2 / HT / W / A members) and by `models.build`'s
`input_bits`, `halftone`, `weight_bits`, `activation_bits` options.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_bool, check_number

INPUT_RANGES = ("unit", "batch")


def check_bits(bits: int, name: str = "bits") -> int:
    """`bits` as an int in 1..16, else ValueError naming the parameter."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"{name} must be an int in 1..16, got {bits!r}")
    return bits


def straight_through(x: torch.Tensor, quantised: torch.Tensor) -> torch.Tensor:
    """Forward value `quantised`, backward the identity to `x` (BPDA)."""
    return x + (quantised - x).detach()


def quantize_input(x: torch.Tensor, bits: int, low: torch.Tensor | float,
                   high: torch.Tensor | float) -> torch.Tensor:
    """TREND Eq. 1-2: bin centres of 2**bits equal bins over [low, high] (no gradient path).

    Eq. 1 puts x = high in an extra bin 2**bits; we clamp the bin index to 2**bits - 1 so the
    output takes at most 2**bits levels, as the bit width promises.
    """
    levels = 2 ** bits
    width = (high - low) / levels  # TREND Eq. 2
    width = torch.as_tensor(width, dtype=x.dtype, device=x.device).clamp_min(torch.finfo(x.dtype).tiny)
    index = torch.floor((x - low) / width).clamp(0, levels - 1)
    return index * width + (0.5 * width + low)  # TREND Eq. 1


class InputQuantize(nn.Module):
    """Input quantisation to `bits` bits per channel per pixel (TREND Eq. 1-2), BPDA backward.

    Input and output are pixels in [0, 1], so this layer goes before the model's `Normalize`.
    `range="unit"` (default) bins the fixed pixel range [0, 1], so one image's quantisation
    does not depend on the rest of its batch (what an attack on single images needs);
    `range="batch"` uses the minibatch's min and max as Eq. 1-2 write it. TREND quantises
    after normalising; with per-channel affine normalisation and the fixed range the two
    orders give the same bins, which is why we keep inputs in pixel units here.
    """

    def __init__(self, bits: int, range: str = "unit"):
        super().__init__()
        self.bits = check_bits(bits)
        if range not in INPUT_RANGES:
            raise ValueError(f"range must be one of {INPUT_RANGES}, got {range!r}")
        self.range = range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.range == "batch":
            low, high = x.detach().amin(), x.detach().amax()
        else:
            low, high = 0.0, 1.0
        return straight_through(x, quantize_input(x.detach(), self.bits, low, high))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, range={self.range!r}"


def bayer_matrix(size: int) -> torch.Tensor:
    """The (size, size) Bayer index matrix (entries 0 .. size**2 - 1), size a power of two."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 2 (2, 4, 8, ...), got {size!r}")
    matrix = torch.zeros(1, 1, dtype=torch.long)
    while matrix.shape[0] < size:
        matrix = torch.cat([torch.cat([4 * matrix, 4 * matrix + 2], 1),
                            torch.cat([4 * matrix + 3, 4 * matrix + 1], 1)], 0)
    return matrix


class Halftone(nn.Module):
    """Halftoning ("HT" in TREND) by ordered Bayer dithering: one bit per channel, BPDA backward.

    Each pixel is compared with a threshold from a tiled (size x size) Bayer matrix,
    (index + 0.5) / size**2, and becomes 1 above it and 0 otherwise, so local grey levels
    survive as the density of ones. We chose ordered dithering over error diffusion
    (Floyd-Steinberg) because every pixel is decided independently: it is one comparison over
    the whole batch, runs at full speed on the GPU and is deterministic, whereas error
    diffusion is a sequential scan over pixels. TREND cites an on-sensor event-driven
    halftoning circuit [42] and gives no algorithm; any halftone maps the image to two levels
    per channel, which is the property its transferability results rest on.
    """

    def __init__(self, size: int = 4):
        super().__init__()
        index = bayer_matrix(size)
        self.size = size
        self.register_buffer("threshold", ((index.float() + 0.5) / size**2).view(1, 1, size, size),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        reps = (-(-h // self.size), -(-w // self.size))
        threshold = self.threshold.repeat(1, 1, *reps)[..., :h, :w].to(x.dtype)
        return straight_through(x, (x.detach() > threshold).to(x.dtype))

    def extra_repr(self) -> str:
        return f"size={self.size}"


def quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-tensor weight quantisation to at most 2**bits values (no gradient path).

    1 bit: sign(w) times mean |w| (binary weights with the scale that best fits w in L2).
    2..16 bits: symmetric uniform grid, step max|w| / (2**(bits-1) - 1), round to nearest;
    2**bits - 1 levels, keeping zero exactly representable.
    """
    if bits == 1:
        return torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype) * weight.abs().mean()
    # The floor keeps an all-zero weight at zero without a data-dependent branch (a GPU sync).
    step = (weight.abs().amax() / (2 ** (bits - 1) - 1)).clamp_min(torch.finfo(weight.dtype).tiny)
    return torch.round(weight / step) * step


class _QuantizedWeight:
    """What QuantConv2d and QuantLinear share: the weight as used on the forward pass."""

    bits: int

    def quantized_weight(self) -> torch.Tensor:
        """The weight quantised to `bits` bits, with the float weight's gradient (BPDA)."""
        return straight_through(self.weight, quantize_weight(self.weight.detach(), self.bits))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class QuantConv2d(_QuantizedWeight, nn.Conv2d):
    """Conv2d whose weight is quantised to `bits` bits on every forward (BPDA backward).

    The float weight stays the parameter (same state-dict keys as nn.Conv2d), so training
    updates it and a trained float model can be loaded into the quantised one.
    """

    @classmethod
    def from_float(cls, conv: nn.Conv2d, bits: int) -> "QuantConv2d":
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                device=conv.weight.device, dtype=conv.weight.dtype)
        q.load_state_dict(conv.state_dict())
        q.bits = check_bits(bits, "weight_bits")
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class QuantLinear(_QuantizedWeight, nn.Linear):
    """Linear whose weight is quantised to `bits` bits on every forward (BPDA backward)."""

    @classmethod
    def from_float(cls, linear: nn.Linear, bits: int) -> "QuantLinear":
        q = cls(linear.in_features, linear.out_features, linear.bias is not None,
                device=linear.weight.device, dtype=linear.weight.dtype)
        q.load_state_dict(linear.state_dict())
        q.bits = check_bits(bits, "weight_bits")
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


class QuantReLU(nn.Module):
    """ReLU clipped to [0, clip] and rounded to 2**bits evenly spaced levels (0 and clip included).

    The clip keeps the grid fixed (DoReFa-style activations); with BatchNorm before every ReLU
    the default clip of 1.0 covers most of the unit-variance pre-activations. Backward: the
    clipped ReLU's gradient (1 inside (0, clip), 0 outside); the rounding is straight-through.
    """

    def __init__(self, bits: int, clip: float = 1.0):
        super().__init__()
        self.bits = check_bits(bits, "activation_bits")
        self.clip = check_number(clip, "activation_clip", minimum=0, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clamp(0.0, self.clip)
        steps = 2 ** self.bits - 1
        return straight_through(y, torch.round(y.detach() * (steps / self.clip)) * (self.clip / steps))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, clip={self.clip}"


def _replace(module: nn.Module, weight_bits: int | None, activation_bits: int | None,
             clip: float) -> None:
    for name, child in module.named_children():
        if weight_bits is not None and type(child) is nn.Conv2d:
            setattr(module, name, QuantConv2d.from_float(child, weight_bits))
        elif weight_bits is not None and type(child) is nn.Linear:
            setattr(module, name, QuantLinear.from_float(child, weight_bits))
        elif activation_bits is not None and type(child) is nn.ReLU:
            setattr(module, name, QuantReLU(activation_bits, clip))
        else:
            _replace(child, weight_bits, activation_bits, clip)


def check_quantize_options(input_bits: int | None = None, halftone: bool = False,
                           weight_bits: int | None = None, activation_bits: int | None = None,
                           activation_clip: float = 1.0, input_range: str = "unit") -> None:
    """ValueError naming the first bad quantisation option (see `quantize_model`)."""
    for name, bits in (("input_bits", input_bits), ("weight_bits", weight_bits),
                       ("activation_bits", activation_bits)):
        if bits is not None:
            check_bits(bits, name)
    check_bool(halftone, "halftone")
    if halftone and input_bits is not None:
        raise ValueError("input_bits and halftone are two input quantisers: pass at most one")
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")
    QuantReLU(1, activation_clip)  # validates activation_clip


def quantize_model(model: nn.Module, *, input_bits: int | None = None, halftone: bool = False,
                   weight_bits: int | None = None, activation_bits: int | None = None,
                   activation_clip: float = 1.0, input_range: str = "unit",
                   inplace: bool = False) -> nn.Module:
    """A quantised version of `model`: a copy, or `model` itself changed when `inplace`.

    weight_bits: every nn.Conv2d / nn.Linear becomes QuantConv2d / QuantLinear (same keys).
    activation_bits: every nn.ReLU becomes QuantReLU(activation_bits, activation_clip).
    input_bits or halftone: the model is wrapped as Sequential(input=<quantiser>, model=<model>),
    so the quantiser sees pixels in [0, 1] before the model's Normalize. At most one of the two.
    Feature taps keep working; their names gain the prefix "model." when the input is wrapped.
    """
    check_quantize_options(input_bits, halftone, weight_bits, activation_bits, activation_clip,
                           input_range)
    quantised = model if inplace else copy.deepcopy(model)
    _replace(quantised, weight_bits, activation_bits, activation_clip)
    if input_bits is None and not halftone:
        return quantised
    front = Halftone() if halftone else InputQuantize(input_bits, input_range)
    device = next((p.device for p in quantised.parameters()), torch.device("cpu"))
    return nn.Sequential(OrderedDict(input=front.to(device), model=quantised))
