"""bench/train.py: its workloads build, and ours (the library's strategies) and the plain-PyTorch
baseline compute the same loss and the same gradients on one tiny batch, so the bench compares
the speed of one computation. No timing here."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ensembles_lib import Ensemble

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_every_workload_builds_and_runs_forward(bench):
    names = [w.name for w in bench.workloads()]
    assert len(names) == len(set(names)) == 15
    for m in (3, 5, 8):
        assert f"standard-small_cnn-m{m}" in names and f"standard-resnet20-m{m}" in names
    for workload in bench.workloads():
        members = workload.build_members()
        assert len(members) == workload.members
        ensemble = Ensemble(members, combine="prob")
        workload.strategy(members)  # the library accepts the workload's strategy spec
        x = torch.rand(2, *workload.shape)
        with torch.no_grad():
            assert ensemble.eval()(x).shape == (2, 10)


def test_same_initial_weights_on_both_sides(bench):
    workload = bench.Workload("standard", "small_cnn", 3)
    a, b = workload.build_members(), workload.build_members()
    for ma, mb in zip(a, b):
        for pa, pb in zip(ma.parameters(), mb.parameters()):
            assert torch.equal(pa, pb)
    # members differ from each other (seed + i)
    assert not torch.equal(next(a[0].parameters()), next(a[1].parameters()))


def one_batch(workload, n=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, *workload.shape, generator=gen), torch.randint(10, (n,), generator=gen)


@pytest.mark.parametrize("kind,arch", [("standard", "small_cnn"), ("standard", "wrn10_1"),
                                       ("standard", "resnet20"), ("adversarial", "small_cnn"),
                                       ("adversarial", "resnet20"), ("dverge", "small_cnn"),
                                       ("dverge", "wrn10_1")])
def test_ours_and_baseline_same_loss_and_gradients(bench, kind, arch):
    workload = bench.Workload(kind, arch, 3)
    ours_members = workload.build_members()
    plain = copy.deepcopy(ours_members)
    ensemble = Ensemble(ours_members, combine="prob").train()
    strategy = workload.strategy(ours_members)
    x, y = one_batch(workload)

    torch.manual_seed(5)  # DVERGE pairs images with torch's global generator: the same pairs on both sides
    loss, scores = strategy.loss(ensemble, x, y)
    loss.backward()
    torch.manual_seed(5)
    for m in plain:
        m.train()
    losses = bench.baseline_losses(workload, plain, x, y)
    for part in losses:
        part.backward()

    assert len(losses) == (3 if kind == "dverge" else 1)
    assert scores.shape == (len(x), 10)
    torch.testing.assert_close(sum(l.detach() for l in losses), loss.detach(), rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(ours_members, plain):
        pairs = [(name, p.grad, q.grad) for (name, p), q in zip(mine.named_parameters(), theirs.parameters())]
        assert all(a is not None and b is not None for _, a, b in pairs), [n for n, a, b in pairs if a is None or b is None]
        if kind == "adversarial":
            # ours attacks channels-last, the baseline NCHW: float rounding can flip the sign step of an
            # input pixel whose gradient is ~0, so the examples, and the gradients, differ slightly
            cosine = F.cosine_similarity(torch.cat([a.flatten() for _, a, _ in pairs]),
                                         torch.cat([b.flatten() for _, _, b in pairs]), dim=0)
            assert cosine > 0.99, f"{kind} {arch}: the members' gradients point apart (cosine {cosine:.4f})"
        else:
            for name, a, b in pairs:
                torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=f"{kind} {arch}: {name}")


def test_baseline_train_steps_every_member(bench):
    workload = bench.Workload("standard", "small_cnn", 3)
    members = workload.build_members()
    before = [copy.deepcopy(m.state_dict()) for m in members]
    total = bench.baseline_train(workload, members, [one_batch(workload)])
    assert total > 0
    for m, state in zip(members, before):
        assert any(not torch.equal(v, state[k]) for k, v in m.state_dict().items() if v.is_floating_point())


def test_only_filter_rejects_unknown_names(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "no-such-workload"])
    assert "matches no workload" in capsys.readouterr().err
    bench.main(["--list"])
    assert "dverge-resnet20-m3" in capsys.readouterr().out
