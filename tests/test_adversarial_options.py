"""Adversarial training's options (clean=False, objective="members": DVERGE's AdvT baseline) and
the Gaussian random start of ifgsm and pgd (SiN Algorithm 1), on tiny models and tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ensembles_lib import Ensemble
from ensembles_lib.attacks import ifgsm, pgd
from ensembles_lib.attacks.ascent import sign_ascent
from ensembles_lib.attacks.gradient import (attack_mode, gaussian_start, generator, gradient, uniform_start,
                                            working_layout)
from ensembles_lib.attacks.specs import attack_spec
from ensembles_lib.specs import SpecError, strategy_spec
from ensembles_lib.training import Adversarial, fit, strategy_from_spec

EPS = 0.1
IFGSM = {"name": "ifgsm", "eps": EPS, "steps": 3, "seed": 5}  # a seeded spec: the same x_adv on every call


def net(seed: int, channels: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))


def ensemble(combine: str = "logit") -> Ensemble:
    return Ensemble([net(0), net(1), net(2)], combine=combine)


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


class Constant(nn.Module):
    """Scores that do not depend on x: a zero input gradient, so sign steps never move x_adv and
    an attack returns its start projected onto the eps-ball."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]


# --------------------------------------------------------------------------------- clean=False


@pytest.mark.parametrize("combine", ["logit", "prob"])
def test_without_the_clean_term_the_loss_is_the_adversarial_loss_alone(combine):
    model, (x, y) = ensemble(combine), batch()
    strategy = Adversarial(IFGSM, clean=False)
    loss, scores = strategy.loss(model, x, y)
    x_adv = attack_spec(IFGSM).run(model, x, y)
    adv_scores = model(x_adv)
    by_hand = F.nll_loss(adv_scores, y) if combine == "prob" else F.cross_entropy(adv_scores, y)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    # the only batch forwarded is x_adv: the running accuracy is read on it
    assert torch.allclose(scores, adv_scores, atol=1e-6)


def test_the_default_keeps_sin_eq3_with_its_clean_term():
    model, (x, y) = ensemble(), batch()
    x_adv = attack_spec(IFGSM).run(model, x, y)
    rho = 0.5
    loss, scores = Adversarial(IFGSM, rho=rho).loss(model, x, y)
    by_hand = (F.cross_entropy(model(x), y) + rho * F.cross_entropy(model(x_adv), y)) / (1 + rho)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert torch.allclose(scores, model(x), atol=1e-6)


class BatchStats(nn.Module):
    """Scores that are each image's deviation from its forward batch's mean: they depend on
    which images share the pass, as train-mode batch-norm outputs do."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.full((1,), 50.0))  # large enough that a batch mean moved by eps shows

    def forward(self, x):
        flat = x.flatten(1)[:, :5]
        return self.w * (flat - flat.mean(0, keepdim=True))


@pytest.mark.parametrize("objective", ["ensemble", "members"])
def test_separate_passes_normalise_clean_and_adversarial_batches_apart(objective):
    model = Ensemble([BatchStats(), BatchStats()], combine="logit") if objective == "members" else BatchStats()
    x, y = batch()
    x_adv = attack_spec(IFGSM).run(model, x, y)
    loss, scores = Adversarial(IFGSM, objective=objective, separate_passes=True).loss(model, x, y)
    factor = 2 if objective == "members" else 1  # the members objective sums two identical members' losses
    by_hand = (F.cross_entropy(model(x), y) + F.cross_entropy(model(x_adv), y)) / 2 * factor
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert torch.allclose(scores, model(x), atol=1e-6)  # the clean pass alone: its own batch mean
    joint, _ = Adversarial(IFGSM, objective=objective).loss(model, x, y)
    assert joint.item() != pytest.approx(loss.item(), rel=1e-3)  # one pass mixes the two batches' statistics


# --------------------------------------------------------------------------------- objective="members"


def test_members_objective_sums_each_members_own_loss_on_the_ensembles_x_adv():
    model, (x, y) = ensemble("prob"), batch()
    seen = []

    def attack(m, x, y):  # a fixed attack that records what it attacked
        seen.append(m)
        return (x + EPS * torch.sign(x - 0.5)).clamp(0, 1)

    x_adv = attack(model, x, y)
    seen.clear()
    loss, scores = Adversarial(attack, clean=False, objective="members").loss(model, x, y)
    assert seen == [model]  # x_adv generated against the whole ensemble
    by_hand = sum(F.cross_entropy(m(x_adv), y) for m in model.members)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert torch.allclose(scores, model(x_adv), atol=1e-6)  # the ensemble's scores, as the accuracy reads

    loss.backward()
    for i, member in enumerate(model.members):
        own = torch.autograd.grad(F.cross_entropy(member(x_adv), y), list(member.parameters()))
        for p, g in zip(member.parameters(), own):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"member {i} got no gradient"
            assert torch.allclose(p.grad, g, atol=1e-6)  # member i's gradient is its own loss's


def test_members_objective_with_the_clean_term_weights_each_member_by_rho():
    model, (x, y) = ensemble("logit"), batch()
    x_adv = attack_spec(IFGSM).run(model, x, y)
    rho = 2.0
    loss, scores = Adversarial(IFGSM, rho=rho, objective="members").loss(model, x, y)
    by_hand = sum((F.cross_entropy(m(x), y) + rho * F.cross_entropy(m(x_adv), y)) / (1 + rho)
                  for m in model.members)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert torch.allclose(scores, model(x), atol=1e-6)  # the ensemble's scores on the clean batch


def test_advt_spec_trains_an_ensemble_with_fit():
    model, (x, y) = ensemble(), batch(16)
    strategy = strategy_from_spec({"name": "adversarial", "attack": {"name": "pgd", "eps": EPS, "steps": 2},
                                   "clean": False, "objective": "members"})
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, [(x[:8], y[:8]), (x[8:], y[8:])], epochs=1, strategy=strategy, lr=0.1, progress=False)
    assert len(history) == 1 and 0 <= history[0]["train_acc"] <= 1
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --------------------------------------------------------------------------------- specs and errors


def test_defaults_leave_existing_specs_and_their_canonical_form_unchanged():
    value = {"name": "adversarial", "rho": 1.0, "attack": {"name": "ifgsm", "eps": 0.3, "steps": 3}}
    spec = strategy_spec(value)
    assert spec.clean is True and spec.objective == "ensemble"
    assert spec.canonical() == {"name": "adversarial", "rho": 1.0,
                                "attack": {"name": "ifgsm", "eps": 0.3, "steps": 3, "loss": "ce", "eot_samples": 1}}
    assert strategy_from_spec(spec).spec() == spec.canonical()
    assert repr(strategy_from_spec(spec)) == f"Adversarial(attack={spec.canonical()['attack']}, rho=1.0)"


def test_non_default_options_are_in_the_canonical_form_and_round_trip():
    spec = strategy_spec({"name": "adversarial", "attack": IFGSM, "clean": False, "objective": "members"})
    canonical = spec.canonical()
    assert canonical["clean"] is False and canonical["objective"] == "members"
    assert strategy_spec(canonical) == spec
    strategy = strategy_from_spec(spec)
    assert strategy.spec() == canonical and strategy_from_spec(strategy.spec()).spec() == canonical
    assert "clean=False" in repr(strategy) and "objective='members'" in repr(strategy)
    separate = strategy_spec({"name": "adversarial", "attack": IFGSM, "separate_passes": True})
    assert separate.canonical()["separate_passes"] is True
    assert strategy_from_spec(separate).spec() == separate.canonical()


@pytest.mark.parametrize("options, named", [
    (dict(clean=False, rho=0.5), "rho"),
    (dict(objective="member"), "objective"),
    (dict(clean=1), "clean"),
    (dict(separate_passes="yes"), "separate_passes"),
])
def test_invalid_options_raise_naming_the_option(options, named):
    with pytest.raises(ValueError, match=named):
        Adversarial(IFGSM, **options)
    with pytest.raises(SpecError, match=named):
        strategy_spec({"name": "adversarial", "attack": IFGSM, **options})


def test_members_objective_needs_an_ensemble_and_says_so_before_attacking():
    calls = []
    strategy = Adversarial(lambda m, x, y: calls.append(1) or x, objective="members")
    with pytest.raises(ValueError, match=r"objective='members'.*Ensemble.*Sequential"):
        strategy.loss(net(0), *batch())
    assert calls == []


@pytest.mark.parametrize("fn, kwargs, named", [
    (pgd, dict(start="gaussian"), "sigma"),
    (ifgsm, dict(start="gaussian"), "sigma"),
    (pgd, dict(sigma=0.05), "sigma"),
    (ifgsm, dict(sigma=0.05), "sigma"),
    (pgd, dict(start="gaussian", sigma=0.05, random_start=False), "random_start"),
    (pgd, dict(start="normal", sigma=0.05), "start"),
    (ifgsm, dict(start="gaussian", sigma=0.0), "sigma"),
    (ifgsm, dict(start="gaussian", sigma=1.5), "sigma"),
])
def test_invalid_starts_raise_naming_the_parameter(fn, kwargs, named):
    with pytest.raises(ValueError, match=named):
        fn(net(0), *batch(), eps=EPS, steps=2, **kwargs)
    with pytest.raises(ValueError, match=named):
        attack_spec({"name": fn.__name__, "eps": EPS, **kwargs})


# --------------------------------------------------------------------------------- the Gaussian start


def test_gaussian_start_is_seeded_clipped_and_has_the_right_moments():
    sigma = 0.05
    x = torch.full((64, 3, 16, 16), 0.5)  # mid-grey: clipping at 0 and 1 is 10 sigma away
    a, b = gaussian_start(x, sigma, generator(1, x.device)), gaussian_start(x, sigma, generator(1, x.device))
    assert torch.equal(a, b)
    assert not torch.equal(a, gaussian_start(x, sigma, generator(2, x.device)))
    delta = a - x
    n = delta.numel()
    assert abs(delta.mean().item()) < 5 * sigma / n ** 0.5
    assert delta.std().item() == pytest.approx(sigma, rel=5 / (2 * n) ** 0.5)
    edge = gaussian_start(torch.zeros(4, 1, 8, 8), 0.5, generator(0, torch.device("cpu")))
    assert edge.min() == 0 and edge.max() <= 1 and (edge > 0).any()


@pytest.mark.parametrize("fn", [ifgsm, pgd])
def test_attacks_start_from_the_gaussian_point(fn):
    sigma = 0.05
    x, y = torch.full((32, 3, 8, 8), 0.5), torch.zeros(32, dtype=torch.long)
    # a zero input gradient leaves x_adv at its start; eps=1 makes the projection a no-op
    x_adv = fn(Constant(), x, y, eps=1.0, steps=2, start="gaussian", sigma=sigma, seed=3)
    expected = gaussian_start(working_layout(x), sigma, generator(3, x.device))
    assert torch.equal(x_adv, expected.contiguous())
    delta = x_adv - x
    assert abs(delta.mean().item()) < 5 * sigma / delta.numel() ** 0.5
    assert delta.std().item() == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("fn", [ifgsm, pgd])
def test_gaussian_start_attacks_are_deterministic_and_stay_in_the_budget(fn):
    model, (x, y) = ensemble(), batch()
    run = lambda seed: fn(model, x, y, eps=EPS, steps=2, start="gaussian", sigma=0.2, seed=seed)
    a = run(1)
    assert torch.equal(a, run(1)) and not torch.equal(a, run(2))
    assert a.min() >= 0 and a.max() <= 1 and (a - x).abs().max() <= EPS + 1e-6
    spec = attack_spec({"name": fn.__name__, "eps": EPS, "steps": 2, "start": "gaussian", "sigma": 0.2})
    assert torch.equal(spec.run(model, x, y, seed=1), a)
    assert spec.canonical()["start"] == "gaussian" and spec.canonical()["sigma"] == 0.2


# --------------------------------------------------------------------------------- defaults unchanged


def test_default_attacks_are_bit_identical_to_the_start_they_always_took():
    model, (x, y) = ensemble(), batch()
    steps, seed = 3, 4
    xw = working_layout(x)

    def by_hand(start, step):  # the pre-`start` algorithm, composed from its helpers
        with attack_mode(model, seed, x.device):
            return sign_ascent(lambda xa: gradient(model, xa, y), xw, start, eps=EPS, step=step,
                               steps=steps).contiguous()

    with attack_mode(model, seed, x.device):
        uniform = uniform_start(xw, EPS, generator(seed, x.device))
    assert torch.equal(pgd(model, x, y, eps=EPS, steps=steps, seed=seed), by_hand(uniform, 2.5 * EPS / steps))
    assert torch.equal(ifgsm(model, x, y, eps=EPS, steps=steps, seed=seed), by_hand(xw.clone(), EPS / steps))
    for fn in (pgd, ifgsm):
        assert torch.equal(fn(model, x, y, eps=EPS, steps=steps, seed=seed),
                           fn(model, x, y, eps=EPS, steps=steps, seed=seed, start=None, sigma=None))


def test_existing_attack_specs_keep_their_canonical_form():
    assert attack_spec({"name": "pgd", "eps": EPS}).canonical() == {
        "name": "pgd", "eps": EPS, "steps": 10, "restarts": 1, "loss": "ce", "step_rule": "sign",
        "random_start": True, "eot_samples": 1}
    assert attack_spec({"name": "ifgsm", "eps": EPS}).canonical() == {
        "name": "ifgsm", "eps": EPS, "steps": 10, "loss": "ce", "eot_samples": 1}
