"""Attack specs: an attack named in JSON with its keyword parameters, as training (adversarial
training), the per-epoch metrics and the stored adversarial examples use them.

    attack_spec({"name": "pgd", "eps": 8 / 255, "steps": 10}).run(model, x, y, seed=3) -> x_adv

One frozen pydantic model per attack that takes (model, x, y), derived from the attack's own
signature (`contract.attack`'s declaration): the same fields, bounds and defaults, with `loss` as
a name only ("ce", "cw": a spec is JSON) and `seed: int | None = None` (None: the caller passes a
seed per call, as adversarial training does per batch). `AttackSpec` is their union, told apart
by "name". `canonical()` is the dump with every default filled in, so a changed default of an
attack changes the key of everything stored with it. Budgets in pixel units.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import torch
import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from .adapters import apgd, apgd_targeted, square
from .fgsm import fgsm, ifgsm
from .losses import Loss, LossName
from .momentum import di2fgsm, mifgsm
from ..fields import Seed, explain
from .contract import AttackArgumentError
from .pgd import pgd
from .sgm import sgm

# the strong suite's attacks too (evaluation.strong), so their examples are stored like any other
ATTACKS = {f.__name__: f for f in (fgsm, ifgsm, pgd, mifgsm, di2fgsm, sgm, apgd, apgd_targeted, square)}
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACKS)


class AttackSpecBase(BaseModel):
    """What every attack spec has: its attack's name and seed, `run` and `canonical`."""

    # strict as the attacks themselves: True is not a count, "0.1" is not a budget
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: Optional[int] = None) -> torch.Tensor:
        """x_adv of the named attack with this spec's parameters; the spec's own seed wins if set,
        else `seed`, else 0."""
        kwargs = {k: v for k, v in self if k not in ("name", "seed")}
        chosen = self.seed if self.seed is not None else seed if seed is not None else 0
        return ATTACKS[self.name](model, x, y, **kwargs, seed=chosen)

    def canonical(self) -> dict:
        """Every field as JSON, defaults filled in (None-valued ones left out, as the other specs
        do): the form a cache key hashes."""
        return self.model_dump(mode="json", exclude_none=True)


def spec_model(fn) -> type[AttackSpecBase]:
    """The spec model of attack `fn`, from its declared keywords."""
    fields: dict[str, Any] = {"name": (Literal[fn.__name__], fn.__name__)}
    for key, (annotation, default) in fn.declaration.items():
        if key != "seed":
            fields[key] = (LossName if annotation == Loss else annotation, default)
    fields["seed"] = (Optional[Seed], None)
    summary = (fn.__doc__ or "").strip().split("\n")[0]
    return create_model(f"{fn.__name__.upper()}Spec", __base__=AttackSpecBase, __module__=__name__,
                        __doc__=f"The spec of `attacks.{fn.__name__}`: {summary}", **fields)


FGSMSpec = spec_model(fgsm)
IFGSMSpec = spec_model(ifgsm)
PGDSpec = spec_model(pgd)
MIFGSMSpec = spec_model(mifgsm)
DI2FGSMSpec = spec_model(di2fgsm)
SGMSpec = spec_model(sgm)
APGDSpec = spec_model(apgd)
APGDTargetedSpec = spec_model(apgd_targeted)
SquareSpec = spec_model(square)
SPECS = {"fgsm": FGSMSpec, "ifgsm": IFGSMSpec, "pgd": PGDSpec, "mifgsm": MIFGSMSpec, "di2fgsm": DI2FGSMSpec,
         "sgm": SGMSpec, "apgd": APGDSpec, "apgd_targeted": APGDTargetedSpec, "square": SquareSpec}

AttackSpec = Annotated[Union[FGSMSpec, IFGSMSpec, PGDSpec, MIFGSMSpec, DI2FGSMSpec, SGMSpec, APGDSpec, APGDTargetedSpec,
                             SquareSpec], Field(discriminator="name")]
_ADAPTER = TypeAdapter(AttackSpec)


def attack_spec(value: Any) -> AttackSpecBase:
    """`value` (a dict {"name": <one of ATTACK_NAMES>, <its parameters>}, or a spec, passed
    through) as the attack's spec model; AttackArgumentError (a ValueError) naming each bad field
    and what it accepts, e.g. "attack.pgd.eps must be a number in [0, 1] ..., got 2"."""
    if isinstance(value, AttackSpecBase):
        return value
    names = ", ".join(map(repr, ATTACK_NAMES))
    if not isinstance(value, dict):
        raise AttackArgumentError(f"attack must be a dict naming one of {names} with its parameters, got {value!r}")
    name = value.get("name")
    if name not in SPECS:
        what = "is missing" if name is None else f"{name!r} is not an attack that takes (model, x, y)"
        raise AttackArgumentError(f"attack.name {what}; it must be one of {names}")
    try:
        return _ADAPTER.validate_python(value)
    except ValidationError as err:
        raise AttackArgumentError(explain(err, AttackSpec, value, where=f"attack.{name}", owner=name)) from None
