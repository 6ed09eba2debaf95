"""The attack contract (ensembles_lib.attacks.contract) and the attack specs (attacks.specs): every
attack validates its keywords from one declaration, checks x and y once at entry (NaN, dtypes,
label range), accepts an nn.ModuleList of members wherever a list works, and has a JSON spec
with the same bounds and defaults. Tiny untrained models keep every test well under a second.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import ensembles_lib
from ensembles_lib import Ensemble, attacks
from ensembles_lib.attacks import (AttackArgumentError, autoattack, di2fgsm, distill, ensemble_pgd, feature_distance,
                                   fgsm, ifgsm, member_losses, member_pgd, mifgsm, pgd, sgm, square)
from ensembles_lib.attacks.specs import ATTACK_NAMES, AttackSpec, PGDSpec, attack_spec, spec_model
from ensembles_lib.attacks.contract import attack
from ensembles_lib.fields import Budget, Count, Seed
from ensembles_lib.models import build, feature_layers

EPS = 0.1


class Block(nn.Module):
    """A residual block with a `shortcut`, so that SGM runs on the toy model too."""

    def __init__(self, c: int):
        super().__init__()
        self.branch = nn.Conv2d(c, c, 3, padding=1)
        self.shortcut = nn.Identity()

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


def toy(seed: int = 0, channels: int = 3) -> nn.Module:
    """A random conv net on (N, channels, 8, 8) images with 10 classes."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), Block(4), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, 10)).eval()


def batch(n: int = 6, channels: int = 3):
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, channels, 8, 8, generator=gen), torch.randint(10, (n,), generator=gen)


# every attack taking (model or members, x, y), as call(model, x, y, **extra) -> x_adv
CALLS = {
    "fgsm": lambda m, x, y, **k: fgsm(m, x, y, eps=EPS, **k),
    "ifgsm": lambda m, x, y, **k: ifgsm(m, x, y, eps=EPS, steps=2, **k),
    "pgd": lambda m, x, y, **k: pgd(m, x, y, eps=EPS, steps=2, **k),
    "pgd_adam_restarts": lambda m, x, y, **k: pgd(m, x, y, eps=EPS, steps=2, step_rule="adam", restarts=2, **k),
    "mifgsm": lambda m, x, y, **k: mifgsm(m, x, y, eps=EPS, steps=2, random_start=True, **k),
    "di2fgsm": lambda m, x, y, **k: di2fgsm(m, x, y, eps=EPS, steps=2, mu=1.0, **k),
    "sgm": lambda m, x, y, **k: sgm(m, x, y, eps=EPS, steps=2, **k),
    "square": lambda m, x, y, **k: square(m, x, y, eps=EPS, n_queries=5, **k),
    "ensemble_pgd": lambda m, x, y, **k: ensemble_pgd([m, toy(1)], x, y, eps=EPS, steps=2, **k),
    "member_pgd": lambda m, x, y, **k: member_pgd([m, toy(1)], x, y, rule="random", eps=EPS, steps=2, **k),
}


# ---- inputs: checked once, at entry, with the dtype and the offending value -------------------

@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("bad, shown", [(math.nan, "NaN"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_non_finite_x_is_refused_naming_what_it_holds(name, bad, shown):
    x, y = batch()
    x[2, 1, 3, 4] = bad
    with pytest.raises(ValueError, match=rf"^x must be finite, but it holds {shown}$"):
        CALLS[name](toy(), x, y)


def test_nan_x_was_returned_as_nan_before_and_is_refused_now_by_every_input_check():
    x, y = batch()
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        distill(toy(), x, batch()[0], layer="0", eps=EPS)
    with pytest.raises(ValueError, match="NaN"):
        distill(toy(), batch()[0], x, layer="0", eps=EPS)
    with pytest.raises(ValueError, match="NaN"):
        attacks.check_images(x)


@pytest.mark.parametrize("name", list(CALLS))
def test_float_labels_get_a_message_showing_their_dtype(name):
    x, y = batch()
    with pytest.raises(ValueError, match=r"^y must be int64 labels of shape \(6,\), got dtype torch.float32 "
                                         r"shape \(6,\)$"):
        CALLS[name](toy(), x, y.float())


@pytest.mark.parametrize("name", list(CALLS))
def test_labels_outside_the_models_classes_are_a_value_error_not_an_index_error(name):
    x, y = batch()
    y[3] = 12
    with pytest.raises(ValueError, match=r"^y holds label 12 outside \[0, 10\)$"):
        CALLS[name](toy(), x, y)
    y[3] = -1
    with pytest.raises(ValueError, match=r"^y holds label -1 outside \[0, number of classes\)$"):
        CALLS[name](toy(), x, y)


def test_label_check_reads_the_class_count_of_autoattacks_model_too():
    x, y = batch()
    with pytest.raises(ValueError, match=r"label 10 outside \[0, 10\)"):
        autoattack(toy(), x, torch.full_like(y, 10), eps=EPS)


@pytest.mark.parametrize("x, y, message", [
    (torch.rand(6, 8, 8), torch.zeros(6, dtype=torch.int64), r"x must be a float tensor of shape \(N, C, H, W\), "
                                                             r"got dtype torch.float32 shape \(6, 8, 8\)"),
    ((torch.rand(6, 3, 8, 8) * 255).to(torch.uint8), torch.zeros(6, dtype=torch.int64), "got dtype torch.uint8"),
    ([[0.5]], torch.zeros(1, dtype=torch.int64), "got list"),
    (torch.rand(6, 3, 8, 8) * 2 - 0.5, torch.zeros(6, dtype=torch.int64), r"x must lie in \[0, 1\]"),
    (torch.rand(6, 3, 8, 8), torch.zeros(5, dtype=torch.int64), r"shape \(6,\), got dtype torch.int64 shape \(5,\)"),
    (torch.rand(6, 3, 8, 8), torch.zeros(6, dtype=torch.int32), "got dtype torch.int32"),
    (torch.rand(6, 3, 8, 8), [0] * 6, "y must be int64 labels of shape \\(6,\\), got list"),
])
def test_bad_inputs_are_described(x, y, message):
    with pytest.raises(ValueError, match=message):
        pgd(toy(), x, y, eps=EPS)


class HookCounter(nn.Module):
    """Wraps a model and records, at every forward, how many forward hooks it carries."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.hooks_seen: list[int] = []

    def forward(self, x):
        self.hooks_seen.append(len(self._forward_hooks))
        return self.model(x)


def test_class_count_is_checked_at_the_first_forward_only_and_leaves_no_hook():
    model = HookCounter(toy())
    x, y = batch()
    pgd(model, x, y, eps=EPS, steps=4)
    # the label-range hook is on the model for its first forward and gone for the other steps
    assert model.hooks_seen[0] == 1 and model.hooks_seen[1:] == [0, 0, 0]
    assert len(model._forward_hooks) == 0


def test_entry_checks_copy_to_the_host_once_per_call_not_once_per_step(monkeypatch):
    copies = []
    original = torch.Tensor.tolist

    def counting(self):
        copies.append(self.shape)
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counting)
    x, y = batch()
    for steps in (1, 8):
        copies.clear()
        pgd(toy(), x, y, eps=EPS, steps=steps)
        assert len(copies) == 1  # the one stacked (x min, x max, y min, y max)


def test_bad_arguments_fail_before_the_model_runs():
    model = HookCounter(toy())
    x, y = batch()
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, eps=2.0)
    with pytest.raises(ValueError, match="y holds label"):
        pgd(model, x, torch.full_like(y, -3), eps=EPS)
    assert model.hooks_seen == []


# ---- keyword arguments: one declaration, messages naming the parameter and what it accepts -------

BAD_KWARGS = [
    (dict(eps=2.0), r"^eps must be a number in \[0, 1\] \(pixel units, e.g. 8/255\), got 2.0$"),
    (dict(eps=EPS, steps=0), r"^steps must be an int >= 1, got 0$"),
    (dict(eps=EPS, steps=True), r"^steps must be an int >= 1, got True$"),
    (dict(eps=EPS, steps=2.5), r"^steps must be an int >= 1, got 2.5$"),
    (dict(eps="0.1"), r"^eps must be a number in \[0, 1\]"),
    (dict(eps=math.nan), r"^eps must be a number in \[0, 1\]"),
    (dict(eps=EPS, step_rule="adamw"), r"^step_rule must be one of 'sign', 'adam', got 'adamw'$"),
    (dict(eps=EPS, step=0.0), r"^step must be a number in \(0, 1\] \(pixel units, e.g. 2/255\) or None, got 0.0$"),
    (dict(eps=EPS, loss="hinge"), r"^loss must be one of 'ce', 'cw' or a callable"),
    (dict(eps=EPS, seed=-1), r"^seed must be an int in \[0, 4294967295\], got -1$"),
    (dict(eps=EPS, epsilon=0.3), r"^epsilon is not a parameter of pgd \(it accepts eps, steps, step, restarts, "
                                 r"loss, step_rule, random_start, start, sigma, eot_samples, seed\)$"),
    (dict(), r"^eps is required: a number in \[0, 1\]"),
]


@pytest.mark.parametrize("kwargs, message", BAD_KWARGS, ids=[str(k) for k, _ in BAD_KWARGS])
def test_bad_keywords_name_the_parameter_and_what_it_accepts(kwargs, message):
    x, y = batch()
    with pytest.raises(AttackArgumentError, match=message):
        pgd(toy(), x, y, **kwargs)


def test_every_bad_keyword_is_reported_at_once():
    x, y = batch()
    with pytest.raises(ValueError) as err:
        pgd(toy(), x, y, eps=2, steps=0, step_rule="adamw", foo=1)
    assert [part.split()[0] for part in str(err.value).split("; ")] == ["eps", "steps", "step_rule", "foo"]


@pytest.mark.parametrize("fn, kwargs, name", [
    (fgsm, dict(eps=EPS, steps=3), "steps"),  # fgsm takes no steps
    (mifgsm, dict(eps=EPS, mu=-0.5), "mu"),
    (di2fgsm, dict(eps=EPS, resize_rate=5.0), "resize_rate"),
    (di2fgsm, dict(eps=EPS, p=1.5), "p"),
    (sgm, dict(eps=EPS, gamma=0.0), "gamma"),
    (square, dict(eps=EPS, p_init=0.0), "p_init"),
    (autoattack, dict(eps=EPS, version="fast"), "version"),
    (ensemble_pgd, dict(eps=EPS, rule="vote"), "rule"),
    (member_pgd, dict(eps=EPS), "rule"),
])
def test_each_attacks_own_parameters_are_validated(fn, kwargs, name):
    x, y = batch()
    model = [toy()] if fn in (ensemble_pgd, member_pgd) else toy()
    with pytest.raises(ValueError, match=rf"^{name} (must be|is)"):
        fn(model, x, y, **kwargs)


def test_numpy_scalars_count_as_the_numbers_they_hold():
    x, y = batch()
    plain = pgd(toy(), x, y, eps=EPS, steps=3, seed=4)
    assert torch.equal(pgd(toy(), x, y, eps=np.float64(EPS), steps=np.int64(3), seed=np.int32(4)), plain)


def test_signature_and_help_show_the_declared_defaults():
    parameters = inspect.signature(pgd).parameters
    assert list(parameters) == ["model", "x", "y", "eps", "steps", "step", "restarts", "loss", "step_rule",
                                "random_start", "start", "sigma", "eot_samples", "seed"]
    assert [parameters[p].default for p in ("steps", "step", "restarts", "loss", "step_rule", "random_start",
                                            "eot_samples", "seed")] == [10, None, 1, "ce", "sign", True, 1, 0]
    assert parameters["eps"].annotation == "a number in [0, 1] (pixel units, e.g. 8/255)"
    assert parameters["eps"].default is inspect.Parameter.empty


def test_the_contract_refuses_an_attack_without_a_seed():
    with pytest.raises(TypeError, match="seed"):
        @attack()
        def no_seed(model, x, y, *, eps: Budget):
            return x


# ---- members: a list, a tuple or an nn.ModuleList ----------------------------------------------

MEMBER_CALLS = {
    "ensemble_pgd": lambda ms, x, y: ensemble_pgd(ms, x, y, eps=EPS, steps=2, rule="sign_all", seed=3),
    "member_pgd_random": lambda ms, x, y: member_pgd(ms, x, y, rule="random", eps=EPS, steps=3, seed=3),
    "member_pgd_mean": lambda ms, x, y: member_pgd(ms, x, y, rule="mean", eps=EPS, steps=2, seed=3),
    "member_pgd_max_adam": lambda ms, x, y: member_pgd(ms, x, y, rule="max", eps=EPS, steps=2, step_rule="adam",
                                                       seed=3),
    "member_losses": lambda ms, x, y: member_losses(ms, x, y, "ce"),
}


@pytest.mark.parametrize("name", list(MEMBER_CALLS))
def test_a_module_list_of_members_works_wherever_a_list_does(name):
    x, y = batch()
    members = [toy(0), toy(1), toy(2)]
    as_list = MEMBER_CALLS[name](members, x, y)
    for other in (tuple(members), nn.ModuleList(members), Ensemble(members, combine="prob").members):
        assert torch.equal(MEMBER_CALLS[name](other, x, y), as_list)


@pytest.mark.parametrize("members", [[], nn.ModuleList(), toy(), [toy(), "not a module"]],
                         ids=["empty", "empty_module_list", "one_model", "not_modules"])
def test_members_must_be_a_non_empty_sequence_of_modules(members):
    x, y = batch()
    with pytest.raises(ValueError, match=r"^members must be a non-empty list, tuple or nn.ModuleList of nn.Module"):
        ensemble_pgd(members, x, y, eps=EPS)
    with pytest.raises(ValueError, match=r"^members must be"):
        member_pgd(members, x, y, rule="mean", eps=EPS)


def test_a_single_model_attack_refuses_a_list():
    x, y = batch()
    with pytest.raises(ValueError, match=r"^model must be an nn.Module, got list"):
        pgd([toy()], x, y, eps=EPS)


# ---- what every attack still guarantees, on colour inputs (the channels-last working layout) ----

@pytest.mark.parametrize("name", list(CALLS))
def test_result_is_detached_contiguous_nchw_in_the_ball_and_x_is_untouched(name):
    model = toy()
    x, y = batch()
    before = x.clone()
    params = list(model.parameters())
    x_adv = CALLS[name](model, x.requires_grad_(True), y, seed=2)
    assert x_adv.shape == x.shape and x_adv.is_contiguous() and not x_adv.requires_grad
    assert (x_adv - before).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x.detach(), before) and x.grad is None
    assert all(p.grad is None and p.requires_grad for p in params) and not model.training
    assert torch.equal(CALLS[name](model, before, y, seed=2), x_adv)


def test_distill_pairs_and_feature_distance_inputs_are_checked():
    model = build("small_cnn", num_classes=10, in_channels=3)
    layer = feature_layers(model)[0]
    x, _ = batch()
    x_s = batch(6)[0].flip(0)
    with pytest.raises(ValueError, match=r"^x_source must have x's shape \(6, 3, 8, 8\)"):
        distill(model, x, x_s[:4], layer=layer, eps=EPS)
    with pytest.raises(ValueError, match="^layer must be one of"):
        distill(model, x, x_s, layer="nope", eps=EPS)
    with pytest.raises(ValueError, match=r"^eps must"):
        distill(model, x, x_s, layer=layer, eps=-1.0)
    out = distill(model, x, x_s, layer=layer, eps=EPS, steps=2)
    assert out.is_contiguous() and (out - x_s).abs().max() <= EPS + 1e-6
    with pytest.raises(ValueError, match="^b must lie in"):
        feature_distance(model, x, x_s + 2, layer=layer)
    assert feature_distance(model, x, out, layer=layer).shape == (6,)


# ---- the attack specs --------------------------------------------------------------------------

def test_attack_names_are_the_attacks_taking_model_x_y():
    assert ATTACK_NAMES == ("fgsm", "ifgsm", "pgd", "mifgsm", "di2fgsm", "sgm", "apgd", "apgd_targeted", "square")


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_spec_fields_have_the_functions_defaults_and_bounds(name):
    fn = getattr(attacks, name)
    spec = attack_spec({"name": name, "eps": EPS})
    defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                if p.kind is p.KEYWORD_ONLY and p.default is not p.empty and k != "seed"}
    assert {k: getattr(spec, k) for k in defaults} == defaults
    assert spec.seed is None
    canonical = spec.canonical()
    assert canonical == {"name": name, "eps": EPS, **{k: v for k, v in defaults.items() if v is not None}}
    json.dumps(canonical)
    assert attack_spec(canonical) == spec  # the canonical form round-trips
    with pytest.raises(ValueError, match=rf"^attack.{name}.eps must be a number in \[0, 1\]"):
        attack_spec({"name": name, "eps": 2})
    with pytest.raises(ValueError, match=rf"^eps must be a number in \[0, 1\]"):
        fn(toy(), *batch(), eps=2)


def test_spec_errors_name_the_field_and_what_it_accepts():
    cases = [
        ({"name": "pgd", "eps": 2}, r"^attack.pgd.eps must be a number in \[0, 1\] \(pixel units, e.g. 8/255\), got 2$"),
        ({"name": "pgd", "eps": EPS, "steps": 0}, r"^attack.pgd.steps must be an int >= 1, got 0$"),
        ({"name": "pgd", "eps": EPS, "step_rule": "adamw"}, r"^attack.pgd.step_rule must be one of 'sign', 'adam'"),
        ({"name": "pgd", "eps": EPS, "epsilon": 1}, r"^attack.pgd.epsilon is not a parameter of pgd \(it accepts eps, "),
        ({"name": "pgd"}, r"^attack.pgd.eps is required"),
        ({"name": "ifgsm", "eps": True}, r"^attack.ifgsm.eps must be a number"),
        ({"name": "fgsm", "eps": EPS, "loss": "hinge"}, r"^attack.fgsm.loss must be one of 'ce', 'cw', got 'hinge'$"),
        ({"name": "cw", "eps": EPS}, r"^attack.name 'cw' is not an attack .*one of 'fgsm', 'ifgsm', 'pgd'"),
        ({"eps": EPS}, r"^attack.name is missing; it must be one of 'fgsm'"),
        ("pgd", r"^attack must be a dict naming one of"),
    ]
    for value, message in cases:
        with pytest.raises(AttackArgumentError, match=message):
            attack_spec(value)


def test_a_spec_holds_json_only_loss_names_and_is_frozen():
    with pytest.raises(ValueError, match="attack.pgd.loss must be one of 'ce', 'cw'"):
        attack_spec({"name": "pgd", "eps": EPS, "loss": lambda logits, y: logits[:, 0]})
    spec = attack_spec({"name": "pgd", "eps": EPS})
    with pytest.raises(ValueError):
        spec.eps = 0.2
    assert attack_spec(spec) is spec and isinstance(spec, PGDSpec)


def test_spec_is_a_discriminated_union_usable_as_a_field_type():
    from pydantic import BaseModel

    class Holder(BaseModel):
        attack: AttackSpec

    held = Holder.model_validate({"attack": {"name": "mifgsm", "eps": EPS, "mu": 0.5}}).attack
    assert held == attack_spec({"name": "mifgsm", "eps": EPS, "mu": 0.5}) and held.mu == 0.5


def test_run_equals_the_direct_call_and_the_specs_own_seed_wins():
    model, (x, y) = toy(), batch()
    spec = attack_spec({"name": "pgd", "eps": EPS, "steps": 3, "loss": "cw"})
    direct = {s: pgd(model, x, y, eps=EPS, steps=3, loss="cw", seed=s) for s in (0, 5, 9)}
    assert torch.equal(spec.run(model, x, y), direct[0])
    assert torch.equal(spec.run(model, x, y, seed=5), direct[5])
    seeded = attack_spec({"name": "pgd", "eps": EPS, "steps": 3, "loss": "cw", "seed": 9})
    assert torch.equal(seeded.run(model, x, y, seed=5), direct[9])
    assert seeded.canonical()["seed"] == 9


def test_a_changed_default_changes_the_canonical_form():
    def make(default_steps: int):
        @attack()
        def toy_attack(model, x, y, *, eps: Budget, steps: Count = default_steps, seed: Seed = 0):
            return x

        return spec_model(toy_attack)

    old, new = make(10)(name="toy_attack", eps=EPS), make(20)(name="toy_attack", eps=EPS)
    assert old.canonical() == {"name": "toy_attack", "eps": EPS, "steps": 10}
    assert new.canonical() == {"name": "toy_attack", "eps": EPS, "steps": 20}


# ---- no private names across modules -----------------------------------------------------------

def test_no_module_imports_a_private_name_from_the_attacks_or_within_them():
    root = Path(ensembles_lib.__file__).parent
    offences = []
    for path in root.rglob("*.py"):
        in_attacks = "attacks" in path.relative_to(root).parts
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if not (in_attacks or "attacks" in module.split(".")):
                continue
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if private or any(part.startswith("_") and part != "__future__" for part in module.split(".")):
                offences.append(f"{path.relative_to(root)}: from {'.' * node.level}{module} import "
                                f"{', '.join(a.name for a in node.names)}")
    assert offences == []
