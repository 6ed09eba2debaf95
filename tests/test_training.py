"""fit, the strategies, the schedules and checkpoint/resume (ensembles_lib.training)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ensembles_lib import models
from ensembles_lib.attacks import pgd
from ensembles_lib.data import loader
from ensembles_lib.evaluation import accuracy
from ensembles_lib.training import Adversarial, Standard, fit, lr_at, strategy_from_spec


def digits_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("small_cnn", num_classes=10, in_channels=1, width=8)


def digits_loader(batch_size: int = 64):
    return loader("digits", "train", batch_size=batch_size, seed=0, backend="tensor")


@pytest.fixture(scope="module")
def digits_test():
    return next(iter(loader("digits", "test", batch_size=450, backend="tensor")))


class DropoutNet(nn.Module):
    """A tiny digits classifier with dropout, so resuming must restore the global RNG exactly."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(x)


class Killed(Exception):
    pass


# --------------------------------------------------------------------------- learning


def test_fit_learns_digits(digits_test):
    x, y = digits_test
    model = digits_cnn()
    history = fit(model, digits_loader(), epochs=4, lr=0.05, schedule="cosine", progress=False,
                  eval_fn=lambda m: {"test_acc": accuracy(m, x, y)})
    assert accuracy(model, x, y) > 0.90
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert {"loss", "train_acc", "lr", "time_s", "test_acc"} <= set(history[0])
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["test_acc"] == pytest.approx(accuracy(model, x, y))
    assert not model.training  # fit leaves the model in eval mode


def test_eval_fn_sees_eval_mode_and_cannot_change_training(digits_test):
    modes = []

    def eval_fn(model):
        modes.append(model.training)
        torch.rand(1000)  # would shift dropout masks if fit did not fork the RNG around eval_fn
        return {"probe": torch.tensor(1.5)}

    torch.manual_seed(3)
    with_eval = DropoutNet()
    history = fit(with_eval, digits_loader(), epochs=2, lr=0.1, progress=False, eval_fn=eval_fn)
    torch.manual_seed(3)
    without = DropoutNet()
    fit(without, digits_loader(), epochs=2, lr=0.1, progress=False)
    assert modes == [False, False]
    assert history[0]["probe"] == 1.5 and isinstance(history[0]["probe"], float)
    for a, b in zip(with_eval.state_dict().values(), without.state_dict().values()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- checkpoints and resume


def _adversarial():
    return Adversarial(lambda model, x, y, seed: pgd(model, x, y, eps=0.1, steps=2, seed=seed), rho=1.0)


def _run(checkpoint, kill_at=None):
    """Two epochs of adversarial Adam/one-cycle training of DropoutNet; raise Killed in eval_fn at `kill_at`."""
    def eval_fn(model):
        if len(calls) + 1 == kill_at:
            raise Killed
        calls.append(1)
        return {}

    calls: list = []
    torch.manual_seed(0)
    model = DropoutNet()
    history = fit(model, digits_loader(batch_size=128), epochs=2, strategy=_adversarial(), optimizer="adam",
                  lr=0.01, schedule="onecycle", checkpoint=checkpoint, eval_fn=eval_fn, progress=False)
    return model, history


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    reference, ref_history = _run(None)
    path = tmp_path / "run.pt"
    with pytest.raises(Killed):
        _run(path, kill_at=2)  # dies during epoch 2, after epoch 1's checkpoint was written
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    torch.manual_seed(123)  # the resumed process starts from an unrelated random state
    resumed, history = _run(path)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert [r["loss"] for r in history] == [r["loss"] for r in ref_history]
    assert torch.load(path, weights_only=True)["epoch"] == 2


def test_finished_checkpoint_is_loaded_without_training(tmp_path):
    path = tmp_path / "done.pt"
    trained, history = _run(path)
    fresh = DropoutNet()
    again = fit(fresh, digits_loader(batch_size=128), epochs=2, strategy=_adversarial(), optimizer="adam",
                lr=0.01, schedule="onecycle", checkpoint=path, progress=False,
                eval_fn=lambda m: pytest.fail("no epoch should run"))
    assert again == history
    for name, tensor in trained.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name])


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    fit(DropoutNet(), digits_loader(), epochs=1, lr=0.1, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(DropoutNet(), digits_loader(), epochs=1, lr=0.2, checkpoint=path, progress=False)


def test_set_epoch_is_called_when_present():
    class Batches:
        def __init__(self):
            self.epochs = []

        def __len__(self):
            return 1

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __iter__(self):
            yield torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])

    batches = Batches()
    fit(DropoutNet(), batches, epochs=3, lr=0.1, progress=False)
    assert batches.epochs == [0, 1, 2]
    # A plain list of batches (no set_epoch) works too.
    fit(DropoutNet(), [(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))], epochs=1, lr=0.1, progress=False)


@pytest.mark.parametrize("kwargs, name", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"schedule": "step"}, "schedule"), ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"), ({"milestones": (0,)}, "milestones"), ({"nesterov": "yes"}, "nesterov"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    args = {"epochs": 1, "lr": 0.1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=name):
        fit(DropoutNet(), [(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))], **args)


# --------------------------------------------------------------------------- schedules


def test_schedules():
    common = {"steps_per_epoch": 10, "total_steps": 100}
    assert lr_at("constant", 0.1, 57, **common) == 0.1
    steps = [lr_at("multistep", 1.0, s, milestones=(3, 6), gamma=0.2, **common) for s in (0, 29, 30, 59, 60, 99)]
    assert steps == pytest.approx([1.0, 1.0, 0.2, 0.2, 0.04, 0.04])
    assert lr_at("cosine", 1.0, 0, **common) == 1.0
    assert lr_at("cosine", 1.0, 50, **common) == pytest.approx(0.5)
    assert lr_at("cosine", 1.0, 99, **common) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))
    cycle = [lr_at("onecycle", 1.0, s, **common) for s in range(100)]
    assert max(cycle) == pytest.approx(1.0) and cycle.index(max(cycle)) == 24
    assert cycle[0] < cycle[10] < cycle[24] > cycle[60] > cycle[99] > 0
    with pytest.raises(ValueError, match="schedule"):
        lr_at("exponential", 1.0, 0, **common)


def test_multistep_milestones_reach_the_optimizer():
    batches = [(torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))] * 2
    history = fit(DropoutNet(), batches, epochs=3, lr=1.0, schedule="multistep", milestones=(1, 2), gamma=0.5,
                  progress=False)
    assert [r["lr"] for r in history] == pytest.approx([1.0, 0.5, 0.25])


# --------------------------------------------------------------------------- strategies


class LogProbModel(nn.Module):
    """Claims to output log-probabilities (as an Ensemble with combine="prob" does)."""

    outputs_log_probs = True

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, -2.0, 0.5]]))

    def forward(self, x):
        return x.flatten(1)[:, :1] * self.w  # deliberately not normalised, so nll != cross-entropy


def test_standard_uses_nll_for_log_prob_models():
    x, y = torch.rand(5, 1, 1, 1), torch.tensor([0, 1, 2, 0, 1])
    model = LogProbModel()
    loss, scores = Standard().loss(model, x, y)
    assert loss.item() == pytest.approx(F.nll_loss(model(x), y).item())
    assert loss.item() != pytest.approx(F.cross_entropy(model(x), y).item())
    plain = nn.Sequential(nn.Flatten(), nn.Linear(1, 3))
    loss, scores = Standard().loss(plain, x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(plain(x), y).item())
    assert scores.shape == (5, 3)
    assert Standard().spec() == {"name": "standard"}


def test_adversarial_loss_is_sin_eq3_averaged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    x_adv = (x + 0.1).clamp(0, 1)
    seen = {}

    def attack(m, xb, yb):
        seen["model"], seen["grads"], seen["training"] = m, [p.grad for p in m.parameters()], m.training
        return x_adv

    model.train()
    loss, scores = Adversarial(attack, rho=3.0).loss(model, x, y)
    expected = (F.cross_entropy(model(x), y) + 3.0 * F.cross_entropy(model(x_adv), y)) / 4.0
    assert loss.item() == pytest.approx(expected.item())
    assert torch.allclose(scores, model(x))
    assert seen["model"] is model and seen["grads"] == [None, None]
    zero = Adversarial(attack, rho=0.0).loss(model, x, y)[0]
    assert zero.item() == pytest.approx(F.cross_entropy(model(x), y).item())
    with pytest.raises(ValueError, match="rho"):
        Adversarial(attack, rho=-1.0)


def test_adversarial_training_with_library_pgd_leaves_no_parameter_grads_from_the_attack():
    model = DropoutNet()
    x, y = next(iter(digits_loader(batch_size=16)))
    strategy = _adversarial()
    model.train()
    loss, _ = strategy.loss(model, x, y)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_strategy_from_spec():
    assert isinstance(strategy_from_spec({"name": "standard"}), Standard)
    adv = strategy_from_spec({"name": "adversarial", "rho": 0.5, "attack": {"name": "ifgsm", "eps": 0.3, "steps": 7}})
    assert isinstance(adv, Adversarial) and adv.rho == 0.5
    # spec() is complete (defaults filled in: it is the cache key's strategy) and round-trips
    assert adv.spec() == {"name": "adversarial", "rho": 0.5, "attack": adv.attack_spec.canonical()}
    assert adv.spec()["attack"]["loss"] == "ce" and adv.spec()["attack"]["steps"] == 7
    assert strategy_from_spec(adv.spec()).spec() == adv.spec()
    with pytest.raises(ValueError, match=r"strategy.attack.epsilon is not a parameter of pgd"):
        strategy_from_spec({"name": "adversarial", "attack": {"name": "pgd", "epsilon": 0.3}})
    with pytest.raises(ValueError, match=r"strategy.attack.eps is required: a number in \[0, 1\]"):
        strategy_from_spec({"name": "adversarial", "attack": {"name": "pgd", "steps": 3}})
    with pytest.raises(ValueError, match="'cw'.*'pgd'"):  # the message lists the attacks there are
        strategy_from_spec({"name": "adversarial", "attack": {"name": "cw", "eps": 0.3}})
    with pytest.raises(ValueError, match="'standard'"):
        strategy_from_spec({"name": "trades"})
    with pytest.raises(ValueError, match="beta"):
        strategy_from_spec({"name": "standard", "beta": 1})


def test_start_epoch_is_called_before_each_epoch_and_again_on_resume(tmp_path):
    class Recording(Standard):
        def __init__(self):
            self.epochs = []

        def start_epoch(self, epoch):
            self.epochs.append(epoch)

    strategy = Recording()
    fit(DropoutNet(), digits_loader(), epochs=3, lr=0.1, strategy=strategy, progress=False)
    assert strategy.epochs == [0, 1, 2]
    path = tmp_path / "ckpt.pt"

    def die_after_first(model):
        if len(torch.load(path, weights_only=True)["history"]) if path.exists() else False:
            raise Killed
        return {}

    with pytest.raises(Killed):
        fit(DropoutNet(), digits_loader(), epochs=3, lr=0.1, strategy=Recording(), checkpoint=path,
            eval_fn=die_after_first, progress=False)
    resumed = Recording()
    fit(DropoutNet(), digits_loader(), epochs=3, lr=0.1, strategy=resumed, checkpoint=path, progress=False)
    assert resumed.epochs == [1, 2]


def test_fit_trains_channels_last_unless_the_strategy_declines():
    from ensembles_lib import Ensemble
    from ensembles_lib.models import build
    from ensembles_lib.training import GAL

    x, y = torch.rand(16, 1, 12, 12), torch.randint(10, (16,))
    for strategy, expected in ((None, True), (GAL(), False)):
        model = Ensemble([build("small_cnn", 10, 1, width=4) for _ in range(2)], combine="prob")
        fit(model, [(x, y)], epochs=1, lr=0.01, strategy=strategy, progress=False)
        weight = model.members[0].features.conv2.conv.weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == expected
        assert weight.is_contiguous() != expected  # 4-d weights with C > 1 are one layout or the other
