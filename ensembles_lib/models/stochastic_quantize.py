"""Stochastic quantisation (SQ) ensembles (paper 002, Farkya et al., Sec. 2): a network whose input
and penultimate features are quantised at random, so that every forward pass through it is one
member of an ensemble drawn on the fly.

A value v in [b_0, b_{k-1}] (k evenly spaced bins, spacing delta) goes to bin b_i with probability
p_i(v) (Eq. 2): every pair of bins b_i <= v <= b_j splits its weight between the two so that the
pair's mean is v, the weight being rho(1 - delta_i / alpha) rho(1 - delta_j / alpha), delta_i the
distance from v to b_i in bins and rho the ReLU, so no bin more than alpha bins away is ever drawn.
The probabilities are normalised over the pairs; since every pair's mean is v, so is the mixture's:
the quantiser is unbiased inside [b_0, b_{k-1}] (E[q(v)] = v) for every alpha. alpha = 1 leaves one
pair, the two bins around v, with weights (1 - t) t: normalised, that is Eq. 1's binary scheme; on
a bin itself (t = 0 or 1) every weight vanishes and we take Eq. 1's limit, the bin itself.

Bins: the input is quantised over the fixed pixel range [0, 1] (`input_range="unit"`; an image's
own min and max, `"sample"`, is the option the paper also allows); the features over each feature
vector's own min and max, as the paper does (Sec. 2.2, "Regularization").

Gradients (`gradient`): "gumbel" draws the bin by the Gumbel-max trick and back-propagates the
Gumbel-softmax relaxation at `temperature` (hard forward, soft backward), the relaxation the paper
trains and attacks with; "straight_through" passes the gradient of the identity, which is exactly
the gradient of E[q(v)] = v, the quantiser's expectation (BPDA, Athalye et al. 2018). `mode =
"expectation"` replaces every draw by its expectation, the identity: the deterministic surrogate of
the SQ network is the fine-tuned network without SQ.

`stochastic_quantize(model, ...)` puts SQ into any registry model without changing its state-dict
keys (so a standard model's weights load into it): forward hooks on the model draw `samples`
members per image (the batch is repeated) and return log of the mean member probabilities, and a
pre-hook on the last nn.Linear (the classifier) quantises its input features. Randomness comes from
the controller's `generator` (seeded by `manual_seed`; attacks seed it through `attack_mode`).
Used by the SQ ensembles chapter (and the registry's `sq` option).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ..fields import STRICT, ArgumentError, Count, Positive, check_value, explain

SQ_AT = ("input", "input+features")
SQ_GRADIENTS = ("gumbel", "straight_through")
SQ_MODES = ("sample", "expectation")


class SQOptions(BaseModel):
    """The registry's `sq` option: where SQ goes, its bins, alpha, members per forward, gradient."""

    model_config = ConfigDict(extra="forbid", frozen=True, **STRICT)

    at: Literal[SQ_AT] = "input+features"  # type: ignore[valid-type]
    bins: int = Field(default=16, ge=2, le=256)
    alpha: float = Field(default=4.0, ge=1, le=256)
    samples: Count = 16
    gradient: Literal[SQ_GRADIENTS] = "gumbel"  # type: ignore[valid-type]
    temperature: Positive = 1.0
    input_range: Literal["unit", "sample"] = "unit"


def check_sq_options(sq: dict | None) -> SQOptions | None:
    """`sq` (None, or a dict of `SQOptions` fields) validated; ArgumentError naming the bad field."""
    if sq is None:
        return None
    if not isinstance(sq, dict):
        raise ArgumentError(f"sq must be None or a dict of {', '.join(SQOptions.model_fields)}, got {sq!r}")
    try:
        return SQOptions.model_validate(sq)
    except ValidationError as err:
        raise ArgumentError(explain(err, SQOptions, sq, where="sq")) from None


def pair_masses(u: torch.Tensor, bins: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2's normalised bin probabilities of positions `u` (in bin units, clamped to [0, bins - 1])
    over the only bins that can be drawn, the `2 reach` around u (reach = min(ceil(alpha), bins - 1)):
    (probabilities, bin indices), each (..., 2 reach); a column whose bin lies outside the range has
    probability 0 (its index is clamped). Differentiable in u.

    With u between bins lo and lo + 1 (t = u - lo), the pair of left bin lo - a and right bin
    lo + 1 + b has weight w_ab = rho(1 - (t + a) / alpha) rho(1 - (1 - t + b) / alpha), which
    factorises into a left and a right term, and spans a + b + 1 bins; so the left bins' masses are
    wl_a sum_b wr_b (1 - t + b) / (a + b + 1) and the right bins' wr_b sum_a wl_a (t + a) / (a + b + 1),
    two small matrix products instead of a loop over the O(alpha^2) pairs."""
    u = u.clamp(0, bins - 1)
    lo = u.detach().floor().clamp(max=bins - 2)
    t = (u - lo).unsqueeze(-1)  # in [0, 1]: u sits between bins lo and lo + 1
    reach = min(math.ceil(alpha), bins - 1)  # pairs further than alpha bins have zero weight
    offsets = torch.arange(reach, device=u.device, dtype=u.dtype)
    left = lo.long().unsqueeze(-1) - offsets.long()  # bin indices lo - a
    right = lo.long().unsqueeze(-1) + 1 + offsets.long()  # bin indices lo + 1 + b
    d_left, d_right = t + offsets, 1 - t + offsets  # delta_i, delta_j in bins
    w_left = F.relu(1 - d_left / alpha) * (left >= 0)
    w_right = F.relu(1 - d_right / alpha) * (right <= bins - 1)
    span = 1.0 / (offsets[:, None] + offsets[None, :] + 1)  # 1 / ((b_j - b_i) / delta), [a, b]
    masses = torch.cat([w_left * ((w_right * d_right) @ span.T),  # Eq. 2, b_i's share of every pair (i, j)
                        w_right * ((w_left * d_left) @ span)], -1)  # Eq. 2, b_j's share
    index = torch.cat([left.clamp(min=0), right.clamp(max=bins - 1)], -1)
    total = masses.sum(-1, keepdim=True)
    # only on a bin with alpha = 1 do all weights vanish: Eq. 1's limit there is the bin itself
    nearest = torch.zeros_like(masses)
    nearest[..., 0] = (t.squeeze(-1) < 0.5).to(u.dtype)
    nearest[..., reach] = (t.squeeze(-1) >= 0.5).to(u.dtype)
    return torch.where(total > 0, masses / total.clamp_min(torch.finfo(u.dtype).tiny), nearest), index


def sq_probabilities(u: torch.Tensor, bins: int, alpha: float) -> torch.Tensor:
    """(..., bins) bin probabilities of positions `u` in bin units (v = b_0 + u delta, u in
    [0, bins - 1]; values outside are clamped): Eq. 2 summed over the bin pairs around u and
    normalised (the paper's p_i = p~_i / Z). Differentiable in u."""
    masses, index = pair_masses(u, bins, alpha)
    return u.new_zeros(*u.shape, bins).scatter_add(-1, index, masses)


def _bounds(v: torch.Tensor, fixed: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest bin for each row of v (N, D): fixed, or the row's own min and max."""
    if fixed is not None:
        return v.new_full((len(v), 1), fixed[0]), v.new_full((len(v), 1), fixed[1])
    return v.amin(1, keepdim=True), v.amax(1, keepdim=True)


class StochasticQuantize(nn.Module):
    """SQ of each row of a (N, ...) tensor to `bins` evenly spaced bins (Eq. 2) between fixed
    bounds (`fixed=(low, high)`) or the row's own min and max. Records, while `record` is set,
    the bin probabilities (N, D, bins) and the bin spacing (N,) of its last call, for Eq. 4-7."""

    def __init__(self, bins: int, alpha: float, gradient: str = "gumbel", temperature: float = 1.0,
                 fixed: tuple[float, float] | None = None):
        super().__init__()
        options = SQOptions(bins=bins, alpha=alpha, gradient=gradient, temperature=temperature)
        self.bins, self.alpha = options.bins, options.alpha
        self.gradient, self.temperature = options.gradient, options.temperature
        self.fixed = fixed
        self.mode = "sample"
        self.record = False
        self.last_probs: torch.Tensor | None = None
        self.last_spacing: torch.Tensor | None = None
        self.draw: "SQController | None" = None  # set by the controller: where the noise comes from

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "expectation":
            return x  # E[q(v)] = v inside the bins (Eq. 2 is unbiased)
        v = x.flatten(1)
        low, high = _bounds(v, self.fixed)
        spacing = ((high - low) / (self.bins - 1)).clamp_min(1e-12)
        probs, index = pair_masses((v - low) / spacing, self.bins, self.alpha)
        if self.record:
            full = probs.new_zeros(*probs.shape[:-1], self.bins).scatter_add(-1, index, probs)
            self.last_probs, self.last_spacing = full, spacing.squeeze(1)
        levels = low.unsqueeze(-1) + spacing.unsqueeze(-1) * index.to(x.dtype)
        needs_gradient = torch.is_grad_enabled() and x.requires_grad
        if self.gradient == "gumbel" and needs_gradient:
            # Gumbel-max with g = -log E, E ~ Exp(1): argmax(log p + g) = argmax(p / E), and the
            # Gumbel-softmax softmax((log p + g) / tau) is (p / E)^(1 / tau), normalised
            weights = probs / -torch.log(self._uniform(probs).clamp(1e-20, 1 - 1e-7))
            hard = F.one_hot(weights.argmax(-1), probs.shape[-1]).to(x.dtype)  # a draw from probs
            if self.temperature != 1.0:
                weights = weights.clamp_min(1e-30) ** (1.0 / self.temperature)
            soft = weights / weights.sum(-1, keepdim=True)
            q = ((hard - soft.detach() + soft) * levels).sum(-1)  # Gumbel-softmax backward, hard forward
        else:
            # the same distribution by inverting the CDF, one uniform a value instead of one a bin
            uniform = self._uniform(probs[..., :1])
            column = (probs.detach().cumsum(-1) < uniform).sum(-1, keepdim=True).clamp(max=probs.shape[-1] - 1)
            drawn = levels.gather(-1, column).squeeze(-1)
            q = v + (drawn - v).detach() if needs_gradient else drawn  # BPDA: the gradient of E[q(v)] = v
        return q.view_as(x)

    def _uniform(self, like: torch.Tensor) -> torch.Tensor:
        return self.draw.uniform(like.shape, like.device, like.dtype) if self.draw is not None else torch.rand_like(like)

    def extra_repr(self) -> str:
        where = f"fixed={self.fixed}" if self.fixed is not None else "per row"
        return f"bins={self.bins}, alpha={self.alpha}, gradient={self.gradient}, {where}"


class SQController(nn.Module):
    """The SQ of one model: its input and feature quantisers, the members drawn per forward, and
    the generator they draw from. Lives as `model.sq`; holds no state-dict entries."""

    def __init__(self, options: SQOptions):
        super().__init__()
        self.options = options
        self.samples = options.samples
        fixed = (0.0, 1.0) if options.input_range == "unit" else None
        self.input = StochasticQuantize(options.bins, options.alpha, options.gradient, options.temperature, fixed)
        self.features = StochasticQuantize(options.bins, options.alpha, options.gradient, options.temperature) \
            if options.at == "input+features" else None
        for layer in self.layers():
            object.__setattr__(layer, "draw", self)  # not a child: no module cycle
        self.generator = torch.Generator()
        self._device_generators: dict[str, torch.Generator] = {}
        self.member_logits: torch.Tensor | None = None
        self.record = False

    def layers(self) -> list[StochasticQuantize]:
        return [layer for layer in (self.input, self.features) if layer is not None]

    def manual_seed(self, seed: int | None) -> None:
        """Reseed the draws (a nondeterministic seed when `seed` is None)."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def uniform(self, shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Uniform noise drawn on `device` from a generator seeded by this controller's (CPU) one,
        so the draws repeat under a seed on any device without copying noise across."""
        key = str(device)
        if key not in self._device_generators:
            self._device_generators[key] = torch.Generator(device=device)
        g = self._device_generators[key]
        g.manual_seed(int(torch.randint(2**62, (1,), generator=self.generator)))
        return torch.rand(shape, generator=g, device=device, dtype=dtype)

    def set(self, *, samples: int | None = None, gradient: str | None = None, mode: str | None = None,
            temperature: float | None = None) -> None:
        """Change how the trained SQ network is run: members per forward, the gradient relaxation,
        "sample" or "expectation" (ArgumentError naming a bad value). The weights are untouched."""
        if samples is not None:
            self.samples = check_value(Count, samples, "samples")
        for layer in self.layers():
            if gradient is not None:
                if gradient not in SQ_GRADIENTS:
                    raise ArgumentError(f"gradient must be one of {SQ_GRADIENTS}, got {gradient!r}")
                layer.gradient = gradient
            if mode is not None:
                if mode not in SQ_MODES:
                    raise ArgumentError(f"mode must be one of {SQ_MODES}, got {mode!r}")
                layer.mode = mode
            if temperature is not None:
                layer.temperature = check_value(Positive, temperature, "temperature")

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Within: each forward keeps the member logits (samples, N, C) and the feature layer's bin
        probabilities and spacing, with their graphs, for the training loss (Eq. 7)."""
        layers = self.layers()
        for layer in layers:
            layer.record = True
        self.record = True
        try:
            yield
        finally:
            self.record = False
            for layer in layers:
                layer.record = False
                layer.last_probs = layer.last_spacing = None
            self.member_logits = None

    # hooks ------------------------------------------------------------------------------------
    def _before(self, _model: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        n = 1 if self.input.mode == "expectation" else self.samples
        return (self.input(x.repeat(n, *([1] * (x.dim() - 1)))), *rest)

    def _after(self, _model: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        n = 1 if self.input.mode == "expectation" else self.samples
        logits = output.view(n, -1, *output.shape[1:])
        if self.record:
            self.member_logits = logits
        # the members' mean probability, as log (the library's "prob" ensemble output)
        return torch.logsumexp(torch.log_softmax(logits, -1), 0) - math.log(n)

    def _before_classifier(self, _linear: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        return (self.features(x), *rest)


def classifier_of(model: nn.Module) -> nn.Linear:
    """The model's last nn.Linear in module order: the classifier the feature SQ goes in front of."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to put the feature SQ before")
    return linears[-1]


def stochastic_quantize(model: nn.Module, **options) -> nn.Module:
    """`model` itself, with SQ at its input (and at its classifier's input for at="input+features"):
    each forward draws `samples` members per image and returns log of their mean probabilities
    (`outputs_log_probs`). Options: `SQOptions`. State-dict keys are unchanged."""
    opts = check_sq_options(options)
    if hasattr(model, "sq"):
        raise ValueError("model already has stochastic quantisation")
    controller = SQController(opts)
    model.sq = controller
    model.register_forward_pre_hook(controller._before)
    model.register_forward_hook(controller._after)
    if controller.features is not None:
        classifier_of(model).register_forward_pre_hook(controller._before_classifier)
    model.outputs_log_probs = True
    model.manual_seed = controller.manual_seed
    return model


def sq_controller(model: nn.Module) -> SQController:
    """The SQ controller of a model built with the `sq` option; ArgumentError if it has none."""
    controller = getattr(model, "sq", None)
    if not isinstance(controller, SQController):
        raise ArgumentError(f"{type(model).__name__} has no stochastic quantisation (build it with options sq=...)")
    return controller


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last axis of `probs` (Eq. 4), 0 log 0 = 0."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)


def sq_information(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The SQ ensemble's information per image, in nats, from its feature bin probabilities
    `probs` (n, N, D, bins): p(T~_i | x~) for n input samples x~ (each of probability 1/n), N
    images, D features. Per feature (Eq. 4-6), then averaged over features (Sec. 2.2):

        p(T~_i) = mean over x~ of p(T~_i | x~)                                        (Eq. 6)
        H(T~_i) = entropy of p(T~_i)                                                    (Eq. 4)
        H(T~_i | X~) = mean over x~ of the entropy of p(T~_i | x~)                      (Eq. 5)
        I(X~; T~_i) = H(T~_i) - H(T~_i | X~)

    Returns {"mi", "h_t", "h_t_given_x"}, each (N,). Used by the SQ training loss (Eq. 7) and by
    the chapter's diversity, AIP and detector sections."""
    if probs.dim() != 4:
        raise ValueError(f"probs must be (samples, images, features, bins), got shape {tuple(probs.shape)}")
    h_t = entropy(probs.mean(0)).mean(-1)  # Eq. 6, Eq. 4
    h_t_given_x = entropy(probs).mean(0).mean(-1)  # Eq. 5
    return {"mi": h_t - h_t_given_x, "h_t": h_t, "h_t_given_x": h_t_given_x}


def recorded_information(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """`sq_information` of `model` (built with sq at="input+features") on images `x`, from one
    forward of its `samples` members, detached; also "log_probs", the model's (N, C) output."""
    controller = sq_controller(model)
    if controller.features is None:
        raise ArgumentError("the information terms need sq at='input+features' (a feature SQ layer)")
    with torch.no_grad(), controller.recording():
        out = model(x)
        probs = controller.features.last_probs
        info = sq_information(probs.view(-1, len(x), *probs.shape[1:]))
    return {**info, "log_probs": out}
