"""Feature distillation (attacks.distill, DVERGE Eq. 1) and the diversity training strategies
DVERGE, ADP and GAL (training.diversity)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensembles_lib import models
from ensembles_lib.attacks import distill, feature_distance, pgd
from ensembles_lib.data import loader
from ensembles_lib.ensembles import Ensemble
from ensembles_lib.training import ADP, DVERGE, GAL, fit, strategy_from_spec
from ensembles_lib.training.diversity import (DET_GUARD, ensemble_entropy, ensemble_log_det,
                                              eval_scores, gradient_alignment)


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("small_cnn", num_classes=10, in_channels=1, width=4)


def ensemble(members: int = 3, combine: str = "prob") -> Ensemble:
    return Ensemble([cnn(seed) for seed in range(members)], combine=combine)


@pytest.fixture(scope="module")
def batch():
    x, y = next(iter(loader("digits", "train", batch_size=32, seed=0, backend="tensor")))
    return x, y


# ------------------------------------------------------------------------------------ distillation


def test_distill_moves_features_toward_target_within_budget(batch):
    x, _ = batch
    model = cnn(0)
    source = x.roll(1, 0)
    eps = 0.1
    for layer in models.feature_layers(model):
        x_new = distill(model, x, source, layer=layer, eps=eps, steps=10)
        before = feature_distance(model, source, x, layer=layer)
        after = feature_distance(model, x_new, x, layer=layer)
        assert after.mean() < 0.9 * before.mean(), layer
        assert (after < before).float().mean() > 0.9, layer
        assert (x_new - source).abs().max() <= eps + 1e-6
        assert x_new.min() >= 0 and x_new.max() <= 1
        assert x_new.shape == x.shape and not x_new.requires_grad


def test_distill_more_budget_gets_closer(batch):
    x, _ = batch
    model = cnn(0)
    source, layer = x.roll(1, 0), models.feature_layers(model)[-1]
    distances = [feature_distance(model, distill(model, x, source, layer=layer, eps=eps), x, layer=layer).mean()
                 for eps in (0.0, 0.05, 0.2)]
    assert distances[0] > distances[1] > distances[2]
    assert torch.equal(distill(model, x, source, layer=layer, eps=0.0), source)


def test_distill_seeded_and_leaves_model_alone(batch):
    x, _ = batch
    model = cnn(1)
    model.train()
    source, layer = x.flip(0), models.feature_layers(model)[1]
    kwargs = dict(layer=layer, eps=0.1, steps=4, random_start=True)
    a = distill(model, x, source, seed=3, **kwargs)
    b = distill(model, x, source, seed=3, **kwargs)
    c = distill(model, x, source, seed=4, **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(distill(model, x, source, layer=layer, eps=0.1), distill(model, x, source, layer=layer, eps=0.1))
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_distill_errors(batch):
    x, _ = batch
    model = cnn(0)
    layer = models.feature_layers(model)[0]
    with pytest.raises(ValueError, match="layer"):
        distill(model, x, x, layer="nope", eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        distill(model, x, x, layer=layer, eps=1.5)
    with pytest.raises(ValueError, match="steps"):
        distill(model, x, x, layer=layer, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="x_source"):
        distill(model, x, x[:3], layer=layer, eps=0.1)
    with pytest.raises(ValueError, match="x_source"):
        distill(model, x, x * 2, layer=layer, eps=0.1)


# ------------------------------------------------------------------------------------ DVERGE


def test_dverge_loss_is_eq5(batch):
    """In eval mode (no batch-norm batch statistics) the loss equals sum_i sum_{j != i} CE(f_i(x'_j), y_s)
    with x'_j distilled from the source images the strategy paired."""
    x, y = batch
    model = ensemble(3).eval()
    strategy = DVERGE(0.1, steps=3)
    strategy.start_epoch(2)
    torch.manual_seed(5)
    loss, scores = strategy.loss(model, x, y)
    torch.manual_seed(5)
    n = len(x)
    source = (torch.arange(n) + torch.randint(1, n, (n,))) % n
    assert (source != torch.arange(n)).all()
    x_s, y_s = x[source], y[source]
    layers = {strategy.layer_for(member) for member in model.members}
    assert len(layers) == 1 and layers <= set(models.feature_layers(model.members[0]))
    distilled = [distill(m, x, x_s, layer=strategy.layer_for(m), eps=0.1, steps=3) for m in model.members]
    with torch.no_grad():
        expected = sum(F.cross_entropy(fi(distilled[j]), y_s)
                       for i, fi in enumerate(model.members) for j in range(3) if j != i)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(scores, model(x))


def test_dverge_advt_adds_each_members_pgd_loss(batch):
    x, y = batch
    model = ensemble(2).eval()
    attack = {"name": "pgd", "eps": 0.1, "steps": 2, "seed": 0}
    plain, advt = DVERGE(0.1, steps=2), DVERGE(0.1, steps=2, adv_attack=attack, rho=2.0)
    torch.manual_seed(1)
    base, _ = plain.loss(model, x, y)
    torch.manual_seed(1)
    combined, _ = advt.loss(model, x, y)
    x_adv = [pgd(m, x, y, eps=0.1, steps=2, seed=0) for m in model.members]
    with torch.no_grad():
        adversarial = sum(F.cross_entropy(m(xa), y) for m, xa in zip(model.members, x_adv))
    assert combined.item() == pytest.approx(base.item() + 2.0 * adversarial.item(), rel=1e-5)


def test_dverge_gradient_reaches_every_member(batch):
    x, y = batch
    model = ensemble(3).train()
    loss, scores = DVERGE(0.1, steps=2).loss(model, x, y)
    assert torch.isfinite(loss) and scores.shape == (len(x), 10)
    loss.backward()
    for member in model.members:
        grads = [p.grad for p in member.parameters()]
        assert all(g is not None for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    assert model.training  # the scores' eval-mode forward restored the mode


def test_dverge_layer_per_epoch_is_deterministic():
    member = cnn(0)
    taps = models.feature_layers(member)
    a, b, other = DVERGE(0.1, seed=3), DVERGE(0.1, seed=3), DVERGE(0.1, seed=4)
    drawn = []
    for epoch in range(20):
        a.start_epoch(epoch)
        drawn.append(a.layer_for(member))
    # a resumed run: a fresh strategy that starts at a later epoch draws what the first drew there
    for epoch in (19, 7, 0):
        b.start_epoch(epoch)
        assert b.layer_for(member) == drawn[epoch]
    assert set(drawn) <= set(taps) and len(set(drawn)) >= 3
    assert [other.layer_for(member, e) for e in range(20)] != drawn
    restricted = DVERGE(0.1, layers=taps[2:])
    assert {restricted.layer_for(member, e) for e in range(20)} == set(taps[2:])


def test_dverge_fit_one_epoch_on_digits_changes_weights():
    model = ensemble(3)
    before = copy.deepcopy(model.state_dict())
    train = loader("digits", "train", batch_size=128, seed=0, backend="tensor")
    history = fit(model, train, epochs=1, lr=0.01, strategy=DVERGE(0.1, steps=3), progress=False)
    assert len(history) == 1 and math.isfinite(history[0]["loss"]) and 0 <= history[0]["train_acc"] <= 1
    for name, value in model.state_dict().items():
        if value.is_floating_point() and name.endswith("weight"):
            assert not torch.equal(value, before[name]), name


# ------------------------------------------------------------------------------------ ADP


class FixedLogits(nn.Module):
    """A member whose logits are its parameter, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]


def test_adp_matches_hand_computation():
    z1, z2 = [2.0, 0.5, -1.0], [0.0, 1.0, 0.3]
    model = Ensemble([FixedLogits(z1), FixedLogits(z2)])
    x, y = torch.zeros(1, 1, 2, 2), torch.tensor([0])

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    p1, p2 = softmax(z1), softmax(z2)
    ce = -math.log(p1[0]) - math.log(p2[0])
    mean = [(a + b) / 2 for a, b in zip(p1, p2)]
    entropy = -sum(m * math.log(m) for m in mean)
    u, v = p1[1:], p2[1:]  # the non-maximal predictions: the true class 0 removed
    cos = sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))
    log_det = math.log((1 + DET_GUARD) ** 2 - cos**2)
    expected = ce - 2.0 * entropy - 0.5 * log_det

    loss, scores = ADP().loss(model, x, y)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(scores, model(x))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    loss_b, _ = ADP(alpha=0.0, beta=0.0).loss(model, x, y)
    assert loss_b.item() == pytest.approx(ce, rel=1e-5)


def test_adp_terms_extremes():
    # orthogonal non-maximal predictions: det = (1 + guard)^2; identical: det ~ the guard
    probs = torch.tensor([[[0.5, 0.5, 0.0]], [[0.5, 0.0, 0.5]]])
    assert ensemble_log_det(probs, torch.tensor([0])).item() == pytest.approx(2 * math.log(1 + DET_GUARD), abs=1e-6)
    same = torch.tensor([[[0.6, 0.3, 0.1]], [[0.6, 0.3, 0.1]]])
    assert ensemble_log_det(same, torch.tensor([0])).item() < math.log(3 * DET_GUARD)
    uniform = torch.full((3, 2, 4), 0.25)
    assert torch.allclose(ensemble_entropy(uniform), torch.full((2,), math.log(4)))


def test_adp_gradient_reaches_every_member(batch):
    x, y = batch
    model = ensemble(3).train()
    loss, scores = ADP().loss(model, x, y)
    assert torch.isfinite(loss) and scores.shape == (len(x), 10)
    loss.backward()
    assert all(p.grad is not None for member in model.members for p in member.parameters())


# ------------------------------------------------------------------------------------ GAL


def test_gal_penalty_maximal_for_identical_members(batch):
    x, y = batch
    twin = cnn(0)
    identical = Ensemble([twin, copy.deepcopy(twin), copy.deepcopy(twin)])
    independent = ensemble(3)
    maximal = 1 + math.log(3)  # log(3 e^1): three pairs, all cosines 1
    penalties = {}
    for name, model in (("identical", identical), ("independent", independent)):
        xg = x.clone().requires_grad_(True)
        grads = [torch.autograd.grad(F.cross_entropy(m(xg), y, reduction="sum"), xg)[0] for m in model.members]
        penalties[name] = gradient_alignment(grads).mean().item()
        loss, _ = GAL(coefficient=0.5).loss(model, x, y)
        with torch.no_grad():
            ce = sum(F.cross_entropy(m(x), y) for m in model.members)
        assert loss.item() == pytest.approx(ce.item() + 0.5 * penalties[name], rel=1e-4)
    assert penalties["identical"] == pytest.approx(maximal, abs=1e-4)
    assert penalties["independent"] < maximal - 0.1


def test_gal_gradient_reaches_every_member(batch):
    x, y = batch
    model = ensemble(2).train()
    loss, scores = GAL().loss(model, x, y)
    assert torch.isfinite(loss) and scores.shape == (len(x), 10)
    loss.backward()
    assert all(p.grad is not None for member in model.members for p in member.parameters())
    with pytest.raises(ValueError, match="gradients"):
        gradient_alignment([x])


# ------------------------------------------------------------------------------------ shared


def test_eval_scores_restore_mode_and_statistics(batch):
    x, _ = batch
    model = ensemble(2).train()
    stats = copy.deepcopy(model.state_dict())
    eval_scores(model, x)
    assert model.training and all(torch.equal(v, stats[k]) for k, v in model.state_dict().items())


def test_specs_round_trip():
    strategies = [DVERGE(0.07), DVERGE(0.05, steps=5, step=0.02, mu=0.5, layers=["features.conv2.tap"], seed=2,
                                      adv_attack={"name": "pgd", "eps": 8 / 255, "steps": 10, "step": 2 / 255},
                                      rho=0.5),
                  ADP(), ADP(alpha=1.0, beta=0.0), GAL(), GAL(coefficient=2.0)]
    for strategy in strategies:
        spec = strategy.spec()
        assert spec == eval(repr(spec))  # plain Python values only
        again = strategy_from_spec(spec)
        assert type(again) is type(strategy) and again.spec() == spec and repr(again) == repr(strategy)
    assert DVERGE(0.07).spec()["step"] == pytest.approx(0.007)
    assert strategy_from_spec({"name": "adp"}).spec() == {"name": "adp", "alpha": 2.0, "beta": 0.5}
    assert strategy_from_spec({"name": "gal"}).spec() == {"name": "gal", "coefficient": 0.5}


def test_errors(batch):
    x, y = batch
    for strategy in (DVERGE(0.1), ADP(), GAL()):
        with pytest.raises(ValueError, match="Ensemble"):
            strategy.loss(cnn(0), x, y)
        with pytest.raises(ValueError, match="at least 2"):
            strategy.loss(Ensemble([cnn(0)]), x, y)
    for eps in (-0.1, 1.5, "0.1", float("nan")):
        with pytest.raises(ValueError, match="eps"):
            DVERGE(eps)
    with pytest.raises(ValueError, match="layers"):
        DVERGE(0.1, layers=["nope"]).loss(ensemble(2), x, y)
    with pytest.raises(ValueError, match="layers"):
        DVERGE(0.1, layers="features.conv1.tap")
    with pytest.raises(ValueError, match="adv_attack"):
        DVERGE(0.1, adv_attack="pgd")
    with pytest.raises(ValueError, match=r"DVERGE.adv_attack.stepz is not a parameter of pgd"):
        DVERGE(0.1, adv_attack={"name": "pgd", "eps": 0.1, "stepz": 3})
    with pytest.raises(ValueError, match="rho"):
        DVERGE(0.1, rho=-1)
    with pytest.raises(ValueError, match="alpha"):
        ADP(alpha=-1)
    with pytest.raises(ValueError, match="coefficient"):
        GAL(coefficient=float("inf"))
    with pytest.raises(ValueError, match=r"strategy.eps is required"):
        strategy_from_spec({"name": "dverge"})
    with pytest.raises(ValueError, match=r"strategy.lambda is not a parameter of gal \(it accepts coefficient\)"):
        strategy_from_spec({"name": "gal", "lambda": 0.5})
