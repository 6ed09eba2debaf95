"""The input gradient every attack uses, with expectation over transformation (EOT), the
context an attack runs in (eval mode, parameters' grads untouched, seeded randomness), and the
iterative attacks' random starts (uniform in the eps-ball; Gaussian, with its `start`/`sigma`
parameter types).

All tensors are images in [0, 1] (pixel units). Used by every attack chapter.
"""

import contextlib
from typing import Annotated, Callable, Iterator, Literal, Optional, Sequence, Union

import torch
import torch.nn as nn
from pydantic import AfterValidator, Field, ValidationInfo

from ..checks import check_int
from .losses import LossFn, get_loss

Transform = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def attack_mode(models: Union[nn.Module, Sequence[nn.Module]], seed: int, device: torch.device) -> Iterator[None]:
    """Run an attack on `models`: eval mode, parameters frozen, randomness seeded and restored.

    Freezing (requires_grad=False) means no backward pass can write a parameter's .grad, ours or
    a library's that calls .backward(), and autograd skips the weight gradients. Random models
    draw either from the global RNG (forked and seeded here) or from a torch.Generator stored as a
    module attribute (an Ensemble with combine="random" or "vote": its `generator`); both are
    seeded from `seed` so the attack repeats exactly, and both are put back afterwards so the
    caller's random streams are as if the attack had not run. Everything is restored on exit.
    """
    models = [models] if isinstance(models, nn.Module) else list(models)
    modes = [{m: m.training for m in model.modules()} for model in models]
    params = {id(p): p for model in models for p in model.parameters()}.values()
    flags = [(p, p.requires_grad) for p in params]
    generators = {id(g): g for model in models for m in model.modules()
                  for g in vars(m).values() if isinstance(g, torch.Generator)}.values()
    states = [(g, g.get_state()) for g in generators]
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        for model in models:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        for k, (g, _) in enumerate(states):
            # offset: a model's draws should not replay the attack's own random-start stream
            g.manual_seed(seed + 1 + k)
        with torch.random.fork_rng(devices=cuda):
            # only the generators forked here: torch.manual_seed would also reseed every other
            # device's (unrestored), and on a CPU-only machine it costs ~0.1 ms a call queueing
            # a lazy CUDA seed with a formatted stack trace
            torch.default_generator.manual_seed(seed)
            for index in cuda:
                torch.cuda.default_generators[index].manual_seed(seed)
            yield
    finally:
        for g, state in states:
            g.set_state(state)
        for p, flag in flags:
            p.requires_grad_(flag)
        for mode in modes:
            for m, training in mode.items():
                m.training = training


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A local generator on `device` seeded with `seed` (attacks never draw from the global RNG)."""
    return torch.Generator(device=device).manual_seed(seed)


def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Union[str, LossFn] = "ce",
             eot_samples: int = 1, transform: Optional[Transform] = None) -> torch.Tensor:
    """d/dx of the summed per-sample `loss`, averaged over `eot_samples` draws (EOT).

    A draw is one pass through `transform` (a random input transform, e.g. input diversity) and
    `model` (possibly random, e.g. a randomised ensemble); with eot_samples=1 and no randomness
    this is the plain input gradient. Gradients go to x only (torch.autograd.grad), so parameters'
    .grad are never written. Returns a detached tensor shaped like x.
    """
    loss_fn = get_loss(loss)
    eot_samples = check_int(eot_samples, "eot_samples")
    x = x.detach().requires_grad_(True)
    total = torch.zeros_like(x)
    for _ in range(eot_samples):
        inputs = transform(x) if transform is not None else x
        total += torch.autograd.grad(loss_fn(model(inputs), y).sum(), x)[0]
    return total / eot_samples if eot_samples > 1 else total


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Nearest point to x_adv in the L-inf ball of radius eps around x, intersected with [0, 1]."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)


def uniform_start(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """x plus uniform noise in [-eps, eps], clipped to [0, 1] (Madry et al.'s PGD start)."""
    noise = torch.empty_like(x).uniform_(-eps, eps, generator=gen)
    return (x + noise).clamp_(0, 1)


def gaussian_start(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """x plus N(0, sigma^2 I) noise, clipped to [0, 1]: the start of SiN Algorithm 1's training
    attack (x~0 = x + e, e ~ N(0, sigma^2 I)); sigma in pixel units, drawn from `gen`.

    Not projected onto the eps-ball: Algorithm 1 applies its projection only after each step, so
    the first gradient is taken at the unprojected start; every attack takes at least one step,
    hence x_adv still lies in the ball. Clipped because the models take images in [0, 1].
    """
    noise = torch.empty_like(x).normal_(0.0, sigma, generator=gen)
    return (x + noise).clamp_(0, 1)


def _start_fits(start: Optional[str], info: ValidationInfo) -> Optional[str]:
    # an attack that also takes random_start (pgd) declares it before `start`
    if start == "gaussian" and info.data.get("random_start") is False:
        raise ValueError("start='gaussian' is a random start: it needs random_start=True "
                         "(random_start=False starts at x)")
    return start


def _sigma_fits(sigma: Optional[float], info: ValidationInfo) -> Optional[float]:
    if "start" not in info.data:
        return sigma  # start itself was refused; that error says why
    if info.data["start"] == "gaussian" and sigma is None:
        raise ValueError("sigma is required with start='gaussian': the noise's standard deviation, a number in "
                         "(0, 1] in pixel units (e.g. 8/255)")
    if info.data["start"] != "gaussian" and sigma is not None:
        raise ValueError("sigma is the standard deviation of start='gaussian'; leave it None with "
                         f"start={info.data['start']!r}")
    return sigma


# An iterative attack's start: None is the attack's own (x for ifgsm, a uniform point of the
# eps-ball for pgd), "gaussian" is `gaussian_start` with standard deviation `sigma`. Both default
# to None, which the specs' canonical form leaves out: earlier attack specs keep their keys.
Start = Annotated[Optional[Literal["gaussian"]], AfterValidator(_start_fits)]
Sigma = Annotated[Optional[Annotated[float, Field(gt=0, le=1, description="pixel units, e.g. 8/255")]],
                  Field(validate_default=True), AfterValidator(_sigma_fits)]


def working_layout(x: torch.Tensor) -> torch.Tensor:
    """x in the memory layout the attack loop iterates in: channels-last on the CPU.

    oneDNN's CPU convolutions run NHWC natively, so a channels-last input saves the layout
    conversions around every convolution (about 8% of a ResNet-20 gradient on 2 cores); the
    values are the same. Elsewhere x is returned unchanged. Attacks return contiguous NCHW.
    """
    if x.device.type == "cpu" and x.dim() == 4 and x.shape[1] > 1:
        return x.contiguous(memory_format=torch.channels_last)
    return x

