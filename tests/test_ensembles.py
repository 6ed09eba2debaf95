"""Ensemble combine rules on members with known outputs."""

import math

import pytest
import torch
from torch import nn

from ensembles_lib import Ensemble
from ensembles_lib.models import build


class Fixed(nn.Module):
    """Returns the given logits for every input row (plus 0 * x so gradients exist)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits + 0 * x.flatten(1).sum(1, keepdim=True)


def linear_members(count=3, features=6, classes=4, seed=0):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Flatten(), nn.Linear(features, classes)) for _ in range(count)]


LOGITS = [
    [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
    [[1.0, 3.0, 0.0], [0.5, 0.2, 0.1]],
    [[0.0, 0.0, 4.0], [1.0, 2.0, 3.0]],
]


def fixed_ensemble(combine, logits=LOGITS, seed=0):
    return Ensemble([Fixed(l) for l in logits], combine=combine, seed=seed)


def test_prob_is_log_of_mean_softmax():
    out = fixed_ensemble("prob")(torch.zeros(2, 1))
    expected = torch.log(torch.stack([torch.softmax(torch.tensor(l), -1) for l in LOGITS]).mean(0))
    assert out.shape == (2, 3)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(2), atol=1e-6)


def test_prob_is_stable_for_huge_logits():
    out = fixed_ensemble("prob", logits=[[[1000.0, 0.0]], [[0.0, 1000.0]]])(torch.zeros(1, 1))
    assert torch.allclose(out, torch.full((1, 2), math.log(0.5)), atol=1e-5)


def test_logit_is_mean_of_logits():
    out = fixed_ensemble("logit")(torch.zeros(2, 1))
    assert torch.allclose(out, torch.tensor(LOGITS).mean(0))


def test_vote_returns_shares_without_ties():
    logits = LOGITS + [[[0.0, 5.0, 0.0], [0.0, 0.0, 9.0]]]
    out = fixed_ensemble("vote", logits)(torch.zeros(2, 1))
    # Row 0 votes 0, 1, 2, 1 -> [0.25, 0.5, 0.25]; row 1 votes 1, 0, 2, 2 -> [0.25, 0.25, 0.5].
    assert torch.equal(out, torch.tensor([[0.25, 0.5, 0.25], [0.25, 0.25, 0.5]]))


def test_vote_ties_are_broken_both_ways_about_evenly():
    # Two members: one votes class 0, the other class 2; class 1 gets no vote.
    ensemble = fixed_ensemble("vote", logits=[[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]], seed=123)
    wins = torch.zeros(3)
    for _ in range(400):
        out = ensemble(torch.zeros(1, 1))
        assert torch.allclose(out, torch.tensor([[0.5, 0.0, 0.5]]), atol=1e-3)
        wins[out.argmax(1)] += 1
    assert wins[1] == 0
    assert 150 <= wins[0] <= 250 and 150 <= wins[2] <= 250


def test_vote_ties_are_broken_per_row_within_a_batch():
    ensemble = fixed_ensemble("vote", logits=[[[1.0, 0.0]] * 1, [[0.0, 1.0]] * 1], seed=0)
    out = ensemble(torch.zeros(1000, 1))  # Fixed broadcasts its one row to the batch
    share = out.argmax(1).float().mean().item()
    assert 0.4 < share < 0.6


def test_seed_makes_random_choices_repeatable_and_global_rng_untouched():
    logits = [[[1.0, 0.0]], [[0.0, 1.0]]]
    runs = []
    for _ in range(2):
        ensemble = fixed_ensemble("vote", logits, seed=7)
        runs.append([int(ensemble(torch.zeros(1, 1)).argmax()) for _ in range(50)])
    assert runs[0] == runs[1] and 0 < sum(runs[0]) < 50
    state = torch.get_rng_state()
    ensemble = fixed_ensemble("random", seed=7)
    draws = []
    for _ in range(2):
        ensemble.manual_seed(3)
        draws.append([])
        for _ in range(20):
            ensemble(torch.zeros(2, 1))
            draws[-1].append(ensemble.last_member)
    assert draws[0] == draws[1] and len(set(draws[0])) > 1
    assert torch.equal(torch.get_rng_state(), state)


def test_vote_gradient_is_the_mean_logits_gradient():
    members = linear_members()
    ensemble = Ensemble(members, combine="vote", seed=0)
    x = torch.rand(5, 6, requires_grad=True)
    weights = torch.randn(5, 4)
    (grad_vote,) = torch.autograd.grad((ensemble(x) * weights).sum(), x)
    mean_logits = torch.stack([m(x) for m in members]).mean(0)
    (grad_mean,) = torch.autograd.grad((mean_logits * weights).sum(), x)
    assert torch.allclose(grad_vote, grad_mean, atol=1e-6)
    assert grad_vote.abs().sum() > 0
    votes = torch.stack([m(x) for m in members]).argmax(-1)
    out = ensemble(x).detach()
    for row in range(5):
        counts = torch.bincount(votes[:, row], minlength=4).float() / 3
        assert torch.allclose(out[row], counts, atol=1e-3)


def test_random_returns_one_members_logits_drawn_uniformly():
    ensemble = fixed_ensemble("random", seed=11)
    counts = [0, 0, 0]
    for _ in range(300):
        out = ensemble(torch.zeros(2, 1))
        assert torch.equal(out, torch.tensor(LOGITS[ensemble.last_member]))
        counts[ensemble.last_member] += 1
    assert all(70 <= c <= 130 for c in counts)


def test_random_runs_only_the_drawn_member():
    calls = []
    members = linear_members()
    for index, member in enumerate(members):
        member.register_forward_hook(lambda *args, index=index: calls.append(index))
    ensemble = Ensemble(members, combine="random", seed=0)
    ensemble(torch.rand(2, 6))
    assert calls == [ensemble.last_member]


def test_ensemble_is_a_module_over_its_members():
    members = [build("small_cnn", width=4, in_channels=1) for _ in range(2)]
    ensemble = Ensemble(members, combine="logit")
    assert isinstance(ensemble.members, nn.ModuleList) and len(ensemble.members) == 2
    assert ensemble.combine == "logit"
    assert len(list(ensemble.parameters())) == 2 * len(list(members[0].parameters()))
    ensemble.eval()
    assert not any(m.training for m in ensemble.modules())
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(ensemble(x), (members[0](x) + members[1](x)) / 2)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"combine.*'prob', 'logit', 'vote', 'random'"):
        fixed_ensemble("median")
    with pytest.raises(ValueError, match="members"):
        Ensemble([], combine="prob")
    with pytest.raises(ValueError, match=r"members\[1\]"):
        Ensemble([Fixed([[0.0]]), lambda x: x])
    mismatched = Ensemble([Fixed([[0.0, 1.0]]), Fixed([[0.0, 1.0, 2.0]])], combine="logit")
    with pytest.raises(ValueError, match="shape"):
        mismatched(torch.zeros(1, 1))


@pytest.mark.parametrize("combine", ["prob", "logit", "vote", "random"])
def test_combine_logits_is_what_forward_returns(combine):
    members = linear_members()
    x = torch.randn(16, 6)
    model = Ensemble(members, combine=combine, seed=3)
    direct = model(x)
    model.manual_seed(3)
    assert torch.allclose(model.combine_logits(model.member_logits(x)), direct)
