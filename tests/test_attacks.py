"""Attacks (ensembles_lib.attacks): agreement with torchattacks, budgets, strength, the attack
contract (eval mode, parameters' grads, seeds, argument errors) and TREND's ensemble rules.

A small residual CNN trained for a few seconds on scikit-learn digits is the "trained model";
its one residual block (with a `shortcut`) lets SGM run on it too.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks

from ensembles_lib import Ensemble, attacks
from ensembles_lib.attacks import (autoattack, build_autoattack, cw_margin, cross_entropy, di2fgsm, ensemble_direction,
                                   ensemble_pgd, fgsm, gradient, ifgsm, mifgsm, pgd, sgm, square)
from ensembles_lib.data import get

EPS = 0.1  # digits are coarse (17 grey levels); 0.1 takes a trained model to roughly 30-60% accuracy


def as_batch(ds):
    return torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(ds.labels)


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus an identity shortcut, then ReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                    nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.shortcut = nn.Identity()

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


def small_resnet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), Block(16),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = as_batch(get("digits", "train"))
    x_test, y_test = as_batch(get("digits", "test"))
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def trained(digits):
    """(model, x_test, y_test): the small residual CNN after 6 epochs of Adam (a few seconds)."""
    x_train, y_train, x_test, y_test = digits
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = small_resnet()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(6):
            for idx in torch.randperm(len(x_train)).split(64):
                opt.zero_grad()
                F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    assert accuracy(model, x_test, y_test) > 0.9
    return model, x_test, y_test


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# Every attack at a common budget, as (name, call(model, x, y, seed) -> x_adv).
ATTACKS = {
    "fgsm": lambda m, x, y, s: fgsm(m, x, y, eps=EPS, seed=s),
    "ifgsm": lambda m, x, y, s: ifgsm(m, x, y, eps=EPS, steps=5, seed=s),
    "pgd": lambda m, x, y, s: pgd(m, x, y, eps=EPS, steps=5, step=EPS / 4, seed=s),
    "pgd_cw": lambda m, x, y, s: pgd(m, x, y, eps=EPS, steps=5, step=EPS / 4, loss="cw", seed=s),
    "pgd_adam": lambda m, x, y, s: pgd(m, x, y, eps=EPS, steps=5, step=EPS / 4, step_rule="adam", seed=s),
    "pgd_restarts": lambda m, x, y, s: pgd(m, x, y, eps=EPS, steps=3, restarts=3, seed=s),
    "pgd_eot": lambda m, x, y, s: pgd(m, x, y, eps=EPS, steps=3, eot_samples=2, seed=s),
    "mifgsm": lambda m, x, y, s: mifgsm(m, x, y, eps=EPS, steps=5, seed=s),
    "mifgsm_random_start": lambda m, x, y, s: mifgsm(m, x, y, eps=EPS, steps=5, random_start=True, seed=s),
    "di2fgsm": lambda m, x, y, s: di2fgsm(m, x, y, eps=EPS, steps=5, p=0.7, seed=s),
    "m_di2fgsm": lambda m, x, y, s: di2fgsm(m, x, y, eps=EPS, steps=5, mu=1.0, seed=s),
    "sgm": lambda m, x, y, s: sgm(m, x, y, eps=EPS, steps=5, gamma=0.5, seed=s),
    "ensemble_sign_average": lambda m, x, y, s: ensemble_pgd([m, m], x, y, eps=EPS, steps=5, seed=s),
    "ensemble_sign_all": lambda m, x, y, s: ensemble_pgd([m, m], x, y, eps=EPS, steps=5, rule="sign_all", seed=s),
    "ensemble_gradient_average": lambda m, x, y, s: ensemble_pgd([m, m], x, y, eps=EPS, steps=5,
                                                                 rule="gradient_average", seed=s),
    "square": lambda m, x, y, s: square(m, x, y, eps=EPS, n_queries=100, seed=s),
}
RANDOM_ATTACKS = ["pgd", "pgd_restarts", "mifgsm_random_start", "di2fgsm", "ensemble_sign_average", "square"]


@pytest.fixture(scope="module")
def adversarial(trained):
    """x_adv of every attack on the first 200 test images (computed once, shared by the tests)."""
    model, x, y = trained
    x, y = x[:200], y[:200]
    return {name: attack(model, x, y, 0) for name, attack in ATTACKS.items()}


# ---- agreement with torchattacks -------------------------------------------------------------

def test_fgsm_equals_torchattacks(trained):
    model, x, y = trained
    ours = fgsm(model, x, y, eps=EPS)
    theirs = torchattacks.FGSM(model, eps=EPS)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_pgd_robust_accuracy_within_one_point_of_torchattacks(trained, digits):
    model, _, _ = trained
    x_train, y_train, x_test, y_test = digits
    # train and test images together (1,797) so that the random starts' noise stays well under a point
    x, y = torch.cat([x_train, x_test]), torch.cat([y_train, y_test])
    settings = dict(eps=EPS, steps=10)
    ours = accuracy(model, pgd(model, x, y, step=EPS / 4, seed=1, **settings), y)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        theirs = accuracy(model, torchattacks.PGD(model, alpha=EPS / 4, random_start=True, **settings)(x, y), y)
    assert 0.05 < theirs < accuracy(model, x, y) - 0.2  # a regime where the comparison means something
    assert abs(ours - theirs) <= 0.01


# ---- budget and strength ---------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ATTACKS))
def test_budget_respected(name, trained, adversarial):
    _, x, _ = trained
    x_adv = adversarial[name]
    assert x_adv.shape == x[:200].shape and not x_adv.requires_grad
    assert (x_adv - x[:200]).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_lowers_accuracy(name, trained, adversarial):
    model, x, y = trained
    clean = accuracy(model, x[:200], y[:200])
    assert accuracy(model, adversarial[name], y[:200]) < clean - 0.1


def test_more_pgd_steps_never_help_the_defender(trained):
    model, x, y = trained
    accs = [accuracy(model, pgd(model, x, y, eps=EPS, steps=k, step=EPS / 8, seed=3), y) for k in (1, 5, 20)]
    assert accs[0] >= accs[1] >= accs[2]
    assert accs[0] > accs[2]


def test_restarts_keep_every_sample_the_first_restart_fooled(trained):
    model, x, y = trained
    one = pgd(model, x, y, eps=EPS, steps=2, seed=5)
    three = pgd(model, x, y, eps=EPS, steps=2, restarts=3, seed=5)
    with torch.no_grad():
        fooled_by_first = model(one).argmax(1) != y
    # the first restart is the single run (same generator draws), and its successes are kept as they are
    torch.testing.assert_close(three[fooled_by_first], one[fooled_by_first], atol=0, rtol=0)
    assert accuracy(model, three, y) < accuracy(model, one, y)


def test_pgd_loss_and_step_rule_change_the_attack(trained, adversarial):
    assert not torch.equal(adversarial["pgd"], adversarial["pgd_cw"])
    assert not torch.equal(adversarial["pgd"], adversarial["pgd_adam"])


# ---- special cases that pin the definitions ---------------------------------------------------

def test_attacks_reduce_to_ifgsm_in_their_neutral_settings(trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    base = ifgsm(model, x, y, eps=EPS, steps=4, step=EPS / 2)
    for x_adv in (mifgsm(model, x, y, eps=EPS, steps=4, step=EPS / 2, mu=0.0),
                  di2fgsm(model, x, y, eps=EPS, steps=4, step=EPS / 2, p=0.0),
                  sgm(model, x, y, eps=EPS, steps=4, step=EPS / 2, gamma=1.0),
                  pgd(model, x, y, eps=EPS, steps=4, step=EPS / 2, random_start=False),
                  *(ensemble_pgd([model] * 3, x, y, eps=EPS, steps=4, step=EPS / 2, rule=r, random_start=False)
                    for r in attacks.RULES)):
        torch.testing.assert_close(x_adv, base, atol=1e-6, rtol=0)


def test_momentum_and_sgm_differ_from_ifgsm(trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    base = ifgsm(model, x, y, eps=EPS, steps=4, step=EPS / 2)
    assert not torch.equal(mifgsm(model, x, y, eps=EPS, steps=4, step=EPS / 2, mu=1.0), base)
    assert not torch.equal(sgm(model, x, y, eps=EPS, steps=4, step=EPS / 2, gamma=0.2), base)


def test_losses_on_hand_computed_logits():
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 3.0, 5.0]])
    y = torch.tensor([0, 1])
    torch.testing.assert_close(cw_margin(logits, y), torch.tensor([1.0 - 2.0, 5.0 - 3.0]))
    torch.testing.assert_close(cross_entropy(logits, y), F.cross_entropy(logits, y, reduction="none"))


class Linear4(nn.Module):
    """Logits [0, w.x + b] on a 1x1x4 image: the CE gradient for label 0 is sigmoid(w.x + b) * w."""

    def __init__(self, w, b=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = b

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_adam_step_rule_is_sign_step_for_a_constant_gradient():
    model = Linear4([1.0, -2.0, 0.5, -0.25])
    x, y = torch.full((1, 1, 1, 4), 0.5), torch.tensor([0])
    linear_loss = lambda logits, y: logits[:, 1]  # noqa: E731 - its gradient is w at every step
    kw = dict(eps=0.3, steps=4, step=0.05, loss=linear_loss, random_start=False)
    torch.testing.assert_close(pgd(model, x, y, step_rule="adam", **kw), pgd(model, x, y, **kw), atol=1e-6, rtol=0)
    torch.testing.assert_close(pgd(model, x, y, **kw), x + 0.2 * torch.tensor([1.0, -1.0, 1.0, -1.0]).view(1, 1, 1, 4))


# ---- TREND's ensemble rules (TREND Section V-A, Eq. 6 and 7) -----------------------------------

W = [[1.0, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 0.5], [0.1, -1.0, -5.0, 1.0]]
EXPECTED = {
    "gradient_average": [1.0, -1.0, -1.0, 1.0],  # sign of the mean (1.03, -0.67, -1, 0.67)
    "sign_all": [1.0, 0.0, 0.0, 1.0],  # Eq. 6: only where all three signs agree
    "sign_average": [1.0, -1 / 3, -1 / 3, 1.0],  # Eq. 7: mean of the signs
}


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_ensemble_direction_on_hand_built_gradients(rule):
    grads = [torch.tensor(w).view(1, 1, 1, 4) for w in W]
    torch.testing.assert_close(ensemble_direction(grads, rule), torch.tensor(EXPECTED[rule]).view(1, 1, 1, 4))


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_ensemble_pgd_steps_along_the_rule_on_linear_members(rule):
    # at x = 0.5 every member sits at w.x + b = 0, so its CE gradient is exactly w / 2
    members = [Linear4(w, b=-0.5 * sum(w)) for w in W]
    x, y = torch.full((1, 1, 1, 4), 0.5), torch.tensor([0])
    x_adv = ensemble_pgd(members, x, y, eps=0.2, steps=1, step=0.15, rule=rule, random_start=False)
    torch.testing.assert_close(x_adv, x + 0.15 * torch.tensor(EXPECTED[rule]).view(1, 1, 1, 4))


# ---- EOT and random models -------------------------------------------------------------------

class RandomMember(nn.Module):
    """Answers each query with one of its members drawn from the global RNG (like combine="random")."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        return self.members[int(torch.randint(len(self.members), ()))](x)


def test_eot_gradient_averages_over_random_draws():
    a, b = Linear4([1.0, 0.0, 0.0, 0.0], b=-0.5), Linear4([0.0, 0.0, 0.0, 1.0], b=-0.5)
    x, y = torch.full((1, 1, 1, 4), 0.5), torch.tensor([0])
    torch.manual_seed(0)
    g = gradient(RandomMember([a, b]), x, y, eot_samples=400).flatten()
    # each draw gives w / 2 of the drawn member; 400 fair draws put both shares near 1/4
    assert g[1] == 0 and g[2] == 0
    assert abs(g[0].item() - 0.25) < 0.05 and abs(g[3].item() - 0.25) < 0.05
    torch.testing.assert_close(g[0] + g[3], torch.tensor(0.5))


def test_eot_gradient_over_a_random_ensemble():
    a, b = Linear4([1.0, 0.0, 0.0, 0.0], b=-0.5), Linear4([0.0, 0.0, 0.0, 1.0], b=-0.5)
    x, y = torch.full((1, 1, 1, 4), 0.5), torch.tensor([0])
    g = gradient(Ensemble([a, b], combine="random", seed=0), x, y, eot_samples=400).flatten()
    assert abs(g[0].item() - 0.25) < 0.05 and abs(g[3].item() - 0.25) < 0.05


@pytest.mark.parametrize("kind", ["global_rng", "ensemble_generator"])
def test_attack_on_random_model_is_seeded_and_leaves_rng_streams_alone(kind, trained):
    model, x, y = trained
    members = [model, small_resnet().eval()]
    rand_model = RandomMember(members) if kind == "global_rng" else Ensemble(members, combine="random", seed=0)
    states = torch.get_rng_state(), rand_model.generator.get_state() if kind != "global_rng" else None
    first = pgd(rand_model, x[:50], y[:50], eps=EPS, steps=3, eot_samples=2, seed=11)
    assert torch.equal(torch.get_rng_state(), states[0])
    if kind != "global_rng":
        assert torch.equal(rand_model.generator.get_state(), states[1])
    assert torch.equal(first, pgd(rand_model, x[:50], y[:50], eps=EPS, steps=3, eot_samples=2, seed=11))
    assert not torch.equal(first, pgd(rand_model, x[:50], y[:50], eps=EPS, steps=3, eot_samples=2, seed=12))


# ---- the attack contract ---------------------------------------------------------------------

@pytest.mark.parametrize("name", RANDOM_ATTACKS)
def test_same_seed_same_x_adv_other_seed_other_x_adv(name, trained, adversarial):
    model, x, y = trained
    assert torch.equal(ATTACKS[name](model, x[:200], y[:200], 0), adversarial[name])
    assert not torch.equal(ATTACKS[name](model, x[:200], y[:200], 1), adversarial[name])


class ModeProbe(nn.Module):
    """Records the training flag of every forward call."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


@pytest.mark.parametrize("name", list(ATTACKS))
def test_eval_mode_during_attack_and_params_grads_untouched(name, trained):
    model, x, y = trained
    probe = ModeProbe()
    net = nn.Sequential(probe, model)
    net.train()
    params = list(model.parameters())
    preset = [torch.full_like(p, 0.125) for p in params[::2]]
    for p, g in zip(params[::2], preset):
        p.grad = g.clone()
    running = model[2].branch[1].running_mean.clone()
    try:
        ATTACKS[name](net, x[:20], y[:20], 0)
        assert probe.seen and not any(probe.seen)
        assert net.training and model.training and all(m.training for m in net.modules())
        assert torch.equal(model[2].branch[1].running_mean, running)  # BN statistics not updated
        for p, g in zip(params[::2], preset):
            assert torch.equal(p.grad, g)
        assert all(p.grad is None for p in params[1::2])
        assert all(p.requires_grad for p in params)
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)


def test_sgm_runs_on_the_library_resnet20():
    from ensembles_lib.models import build

    model = build("resnet20", num_classes=10, in_channels=1).eval()
    x, y = as_batch(get("digits", "test"))
    x, y = x[:32], y[:32]
    assert len(attacks.residual_blocks(model)) == 9
    plain = ifgsm(model, x, y, eps=EPS, steps=2)
    assert torch.equal(sgm(model, x, y, eps=EPS, steps=2, gamma=1.0), plain)
    skipped = sgm(model, x, y, eps=EPS, steps=2, gamma=0.2)
    assert (skipped - x).abs().max() <= EPS + 1e-6 and not torch.equal(skipped, plain)


def test_colour_inputs_come_back_contiguous_nchw_and_unchanged():
    # 3-channel CPU inputs are iterated in channels-last layout; callers still get plain NCHW
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    before = x.clone()
    for x_adv in (pgd(model, x, y, eps=EPS, steps=3), ifgsm(model, x, y, eps=EPS, steps=3),
                  ensemble_pgd([model, model], x, y, eps=EPS, steps=3)):
        assert x_adv.is_contiguous() and x_adv.shape == x.shape
        assert (x_adv - x).abs().max() <= EPS + 1e-6 and not torch.equal(x_adv, x)
    assert torch.equal(x, before)


BAD_ARGS = [
    (fgsm, dict(eps=-0.1), "eps"),
    (fgsm, dict(eps=2.0), "eps"),
    (fgsm, dict(eps=0.1, loss="hinge"), "loss"),
    (ifgsm, dict(eps=0.1, steps=0), "steps"),
    (ifgsm, dict(eps=0.1, steps=2.5), "steps"),
    (pgd, dict(eps=0.1, step=0.0), "step"),
    (pgd, dict(eps=0.1, step_rule="sgd"), "step_rule"),
    (pgd, dict(eps=0.1, restarts=0), "restarts"),
    (pgd, dict(eps=0.1, eot_samples=0), "eot_samples"),
    (mifgsm, dict(eps=0.1, mu=-1.0), "mu"),
    (di2fgsm, dict(eps=0.1, p=1.5), "p"),
    (di2fgsm, dict(eps=0.1, resize_rate=0.5), "resize_rate"),
    (sgm, dict(eps=0.1, gamma=0.0), "gamma"),
    (square, dict(eps=0.1, n_queries=0), "n_queries"),
    (autoattack, dict(eps=0.1, version="fast"), "version"),
]


@pytest.mark.parametrize("attack, kwargs, name", BAD_ARGS, ids=[f"{a.__name__}-{n}" for a, _, n in BAD_ARGS])
def test_bad_arguments_raise_value_error_naming_the_parameter(attack, kwargs, name, trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=rf"^{name} must"):
        attack(model, x[:4], y[:4], **kwargs)


def test_bad_inputs_and_members_raise_value_error(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="x must lie in"):
        pgd(model, x[:4] * 2 - 0.5, y[:4], eps=0.1)
    with pytest.raises(ValueError, match="y must be"):
        pgd(model, x[:4], y[:3], eps=0.1)
    with pytest.raises(ValueError, match="rule must"):
        ensemble_pgd([model], x[:4], y[:4], eps=0.1, rule="vote")
    with pytest.raises(ValueError, match="members must"):
        ensemble_pgd([], x[:4], y[:4], eps=0.1)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ValueError, match="residual blocks"):
        sgm(plain, x[:4], y[:4], eps=0.1)


# ---- AutoAttack adapter ----------------------------------------------------------------------

def test_autoattack_uses_the_official_iteration_counts(trained):
    model, _, _ = trained
    components = build_autoattack(model, eps=EPS)._autoattack.attacks
    assert [type(c).__name__ for c in components] == ["APGD", "APGDT", "FAB", "Square"]
    assert [getattr(c, "steps", None) for c in components[:3]] == [100, 100, 100]
    assert components[1].n_target_classes == 9 and components[3].n_queries == 5000


def test_autoattack_can_be_reduced_for_a_cpu_run(trained):
    model, _, _ = trained
    components = build_autoattack(model, eps=EPS, steps=7, n_queries=11, n_targets=2)._autoattack.attacks
    assert [getattr(c, "steps", None) for c in components[:3]] == [7, 7, 7]
    assert components[1].n_target_classes == 2 and components[2].n_target_classes == 2
    assert components[3].n_queries == 11


@pytest.mark.slow
def test_autoattack_is_at_least_as_strong_as_pgd_and_keeps_the_contract(trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    model.train()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    try:
        x_adv = autoattack(model, x, y, eps=EPS)  # FAB calls .backward(): the frozen parameters keep .grad at 0
        assert model.training and all(p.grad.abs().max() == 0 for p in model.parameters())
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) <= accuracy(model, pgd(model, x, y, eps=EPS, steps=20), y)
