"""Counter-linked models (CLM): PRSE changes exactly the weights its masks select (Eq. 4-5), the
strategy trains a population through `fit` and resumes the same draws, per-image dispatch is
uniform and seeded, MRA is Eq. 6 and saliency similarity Eq. 7-8, on hand-made cases."""

import pytest
import torch
from torch import nn

from ensembles_lib import Ensemble
from ensembles_lib.evaluation.dispatch import (crafted_on_random, dispatch_draws, mra_correct, population_correct,
                                               saliency, saliency_similarity)
from ensembles_lib.training import CounterLinked, fit, strategy_from_spec
from ensembles_lib.training.counter_link import first_weight, link_mask, prse


def test_prse_moves_exactly_the_linked_weights_within_delta():
    w_i = torch.tensor([[0.00, 0.50, 0.20], [1.00, -0.30, 0.05]])
    w_j = torch.tensor([[0.05, 0.50, 0.90], [0.95, 0.30, 0.06]])
    link = torch.tensor([[True, False, True], [True, True, False]])
    # |w_i - w_j| < 0.1 at (0,0), (0,1), (1,0), (1,2); linked among them: (0,0) and (1,0)
    odd = prse(w_i, w_j, link, alpha=0.25, delta=0.1, number=1)
    expected = w_i.clone()
    expected[0, 0] -= 0.25
    expected[1, 0] -= 0.25
    torch.testing.assert_close(odd, expected)
    even = prse(w_i, w_j, link, alpha=0.25, delta=0.1, number=2)  # even submodels move up
    torch.testing.assert_close(even - w_i, -(odd - w_i))
    assert torch.equal(w_i, torch.tensor([[0.00, 0.50, 0.20], [1.00, -0.30, 0.05]]))  # inputs untouched
    with pytest.raises(ValueError, match="one shape"):
        prse(w_i, w_j[:, :2], link, alpha=0.1, delta=0.1, number=1)


def test_link_mask_is_seeded_and_marks_about_half():
    mask = link_mask((6, 1, 5, 5), seed=3)
    assert mask.dtype == torch.bool and torch.equal(mask, link_mask((6, 1, 5, 5), seed=3))
    assert not torch.equal(mask, link_mask((6, 1, 5, 5), seed=4))
    assert 0.35 < link_mask((1000,), seed=0).float().mean().item() < 0.65


def _population(n=3, seed=0):
    torch.manual_seed(seed)
    return Ensemble([nn.Sequential(nn.Flatten(), nn.Linear(4, 3)) for _ in range(n)], combine="logit")


def test_after_step_moves_only_linked_first_layer_weights_every_period():
    population = _population()
    for member in population.members:  # all alike: every linked weight is within delta of every other
        member[1].weight.data.fill_(0.1)
    strategy = CounterLinked(alpha=0.5, delta=0.01, period=10, seed=1)
    strategy.after_step(population, 9)  # not a multiple of the period: nothing happens
    assert all(torch.all(m[1].weight == 0.1) for m in population.members)
    strategy.after_step(population, 10)
    link = link_mask((3, 4), seed=1)
    for number, member in enumerate(population.members, start=1):
        w = member[1].weight
        assert torch.all(w[~link] == 0.1)
        assert torch.allclose(w[link], torch.full_like(w[link], 0.1 + (-1) ** number * 0.5))
    assert first_weight(population.members[0]) is population.members[0][1].weight


def test_counter_linked_trains_through_fit_and_is_a_spec():
    x, y = torch.rand(32, 1, 2, 2), torch.randint(0, 3, (32,))
    population = _population()
    strategy = strategy_from_spec({"name": "counter_linked", "alpha": 0.05, "delta": 0.5, "period": 2, "seed": 0})
    history = fit(population, [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)], epochs=2, lr=0.1,
                  strategy=strategy, progress=False)
    assert len(history) == 2 and all(r["loss"] > 0 for r in history)
    assert strategy.spec()["name"] == "counter_linked" and strategy.spec()["period"] == 2
    with pytest.raises(ValueError, match="Ensemble"):
        strategy.loss(population.members[0], x, y)
    with pytest.raises(ValueError, match="alpha"):
        CounterLinked(alpha=0.0, delta=0.1)


def test_dispatch_draws_every_member_about_equally_and_is_seeded():
    draws = dispatch_draws(6000, 5, seed=7)
    counts = torch.bincount(draws, minlength=5).float()
    assert torch.all((counts / 6000 - 0.2).abs() < 0.03)
    assert torch.equal(draws, dispatch_draws(6000, 5, seed=7)) and not torch.equal(draws, dispatch_draws(6000, 5, 8))
    ensemble = Ensemble([nn.Identity(), nn.Identity()], combine="dispatch", seed=0)
    x = torch.eye(3).repeat(400, 1)  # (1200, 3) "logits"
    out = ensemble(x)
    assert out.shape == x.shape and ensemble.last_members.shape == (1200,)
    assert 0.4 < ensemble.last_members.float().mean().item() < 0.6  # per image, not one draw a batch


class _Fixed(nn.Module):
    """Predicts class `cls` for every image; an attack on it changes nothing."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def forward(self, x):
        return nn.functional.one_hot(torch.full((len(x),), self.cls), 3).float() + 0 * x.flatten(1)[:, :3]


def test_mra_is_eq_6_on_a_hand_example():
    members = [_Fixed(0), _Fixed(0), _Fixed(1), _Fixed(2)]  # two right, two wrong on label 0
    x, y = torch.rand(8, 1, 2, 2), torch.zeros(8, dtype=torch.long)
    scores = mra_correct(members, x, y, lambda m, xb, yb: xb, seed=0)
    assert torch.allclose(scores, torch.full((8,), 0.5))  # (1/n) sum_i rho(m_i, x'_j) = 2/4 per image
    assert torch.equal(population_correct(members, x, y), scores)
    seen = []
    crafted_on_random(members, x, y, lambda m, xb, yb: seen.append((members.index(m), len(xb))) or xb, seed=3)
    draws = dispatch_draws(8, 4, seed=3)
    assert sorted(seen) == [(k, int((draws == k).sum())) for k in range(4) if (draws == k).any()]


def test_saliency_similarity_is_eq_7_of_eq_8():
    a, b = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        a[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        b[1].weight.copy_(torch.tensor([[1.0, 1.0, 0, 0], [0, 0, 0, 1.0]]))
    x, y = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])
    torch.testing.assert_close(saliency(a, x, y).flatten(1), torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    table = saliency_similarity([a, b, a], x, y)
    assert list(table.columns) == ["1,2", "1,3", "2,3"]
    # image 0: (1,0,0,0) vs (1,1,0,0) -> 1/sqrt(2); image 1: (0,1,0,0) vs (0,0,0,1) -> 0
    assert table["1,2"].tolist() == pytest.approx([2 ** -0.5, 0.0])
    assert table["1,3"].tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="at least two"):
        saliency_similarity([a], x, y)
