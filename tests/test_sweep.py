"""Sweeps on Dask (issue 18): the grid is checked before anything runs, claims combine over seeds,
and on a real LocalCluster (two worker processes) a smoke sweep of two values x two seeds writes four
run folders and one combined record, a worker killed mid-run leaves a sweep that finishes on rerun with
an intact store, and two workers asked for one model train it once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ensembles_lib import sweep
from ensembles_lib.book_ext import ClaimsSummary, load_seeds, seeds_line
from ensembles_lib.claims import FAILS, HOLDS, UNDECIDED

distributed = pytest.importorskip("distributed")


def test_plan_checks_every_value_before_anything_runs():
    tasks = sweep.plan_sweep("tour", "smoke", {"combine": ["prob", "logit"]}, seeds=[0, 1])
    assert len(tasks) == 4 and {t.parameters()["seed"] for t in tasks} == {0, 1}
    assert {t.parameters()["combine"] for t in tasks} == {"prob", "logit"}
    with pytest.raises(ValueError, match="combine"):
        sweep.plan_sweep("tour", "smoke", {"combine": ["prob", "median"]})
    with pytest.raises(ValueError, match="widht"):
        sweep.plan_sweep("tour", "smoke", {"widht": [8]})
    with pytest.raises(ValueError, match="seed"):
        sweep.plan_sweep("tour", "smoke", {"seed": [1]}, seeds=[0])
    with pytest.raises(ValueError, match="at least one value"):
        sweep.plan_sweep("tour", "smoke", {"combine": []})
    with pytest.raises(ValueError, match="chapter must be one of"):
        sweep.plan_sweep("tuor", "smoke", {})


def test_cluster_size_splits_the_cores():
    assert sweep.cluster_size(4, cores=2) == (2, 1)
    assert sweep.cluster_size(1, cores=16) == (1, 16)
    assert sweep.cluster_size(3, cores=16) == (3, 5)


def _claim(holds, difference):
    return {"id": "c", "claim": "a claim", "rule": "a - b > 0", "holds": holds,
            "statistic": {"difference": difference}}


def test_claims_combine_over_seeds():
    records = [{"seed": s, "claims": [_claim(h, d)]} for s, h, d in ((0, True, 0.10), (1, True, 0.20), (2, True, 0.30))]
    (claim,) = sweep.combine(records)
    assert (claim["holds_in"], claim["seeds"], claim["verdict"], claim["holds"]) == (3, 3, HOLDS, True)
    assert claim["effect_mean"] == pytest.approx(0.2)
    low, high = claim["effect_interval"]  # t(0.975, 2) = 4.303, sd 0.1, n 3
    assert low == pytest.approx(0.2 - 4.303 * 0.1 / 3 ** 0.5, abs=1e-3) and high > 0.2
    mixed = sweep.combine([{"seed": 0, "claims": [_claim(True, 0.1)]}, {"seed": 1, "claims": [_claim(None, 0.0)]}])
    assert (mixed[0]["holds_in"], mixed[0]["verdict"], mixed[0]["holds"]) == (1, UNDECIDED, None)
    failing = sweep.combine([{"seed": s, "claims": [_claim(False, -0.1)]} for s in (0, 1)])
    assert (failing[0]["fails_in"], failing[0]["verdict"]) == (2, FAILS)
    lone = sweep.combine([{"seed": 0, "claims": [_claim(True, 0.1)]}])
    assert lone[0]["effect_interval"] is None


def test_a_chapter_shows_its_claims_over_seeds():
    (claim,) = sweep.combine([{"seed": s, "claims": [_claim(h, d)]} for s, h, d in ((0, True, 0.1), (1, None, 0.02))])
    line = seeds_line(claim)
    assert line.startswith("holds in 1 of 2 seeds (over seeds: undecided); effect +0.06") and "across seeds" in line
    record = {"chapter": "tour", "profile": "cpu", "dataset": "digits", "wall_time_s": 1.0,
              "claims": [{**_claim(True, 0.1), "paper": "p", "ours": "o", "note": ""}]}
    shown = "".join(node.astext() for node in ClaimsSummary._chapter(None, record, {"c": claim}))
    assert "Across seeds: holds in 1 of 2 seeds" in shown
    assert "Across seeds" not in "".join(node.astext() for node in ClaimsSummary._chapter(None, record, {}))
    with pytest.raises(ValueError, match="to_book"):
        sweep.sweep("tour", "smoke", {"combine": ["prob"]}, seeds=[0], to_book=True, progress=None)


@pytest.fixture
def shared_root(tmp_path, monkeypatch):
    """A data root every worker shares (workers inherit the environment they are started in)."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(root))
    return root


def _store_intact(root: Path) -> None:
    from ensembles_lib.store import Store

    store = Store(root / "artifacts")
    keys = [p.name for p in store.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert keys
    for key in keys:
        store.load(key)  # CorruptArtifact if any committed file differs from its recorded hash


def test_local_cluster_sweep_two_values_two_seeds(shared_root, tmp_path):
    runs, lines = tmp_path / "runs", []
    report = sweep.sweep("tour", "smoke", {"combine": ["prob", "logit"]}, seeds=[0, 1], runs=runs,
                         failed=tmp_path / "failed", progress=lines.append)
    assert not report.failed and len(report.ran) == 4
    folders = {report.folders[t] for t in report.tasks}
    assert len(folders) == 4 and all(sweep.is_finished(f, "tour") for f in folders)
    record = json.loads(report.record.read_text())
    assert [g["parameters"] for g in record["groups"]] in ([{"combine": "prob"}, {"combine": "logit"}],
                                                           [{"combine": "logit"}, {"combine": "prob"}])
    for group in record["groups"]:
        assert len(group["runs"]) == 2
        for claim in group["claims"]:
            assert claim["seeds"] == 2 and 0 <= claim["holds_in"] <= 2
            assert claim["verdict"] in (HOLDS, FAILS, UNDECIDED) and len(claim["per_seed"]) == 2
    assert sum("done" in line for line in lines) == 4
    again = sweep.sweep("tour", "smoke", {"combine": ["prob", "logit"]}, seeds=[0, 1], runs=runs,
                        failed=tmp_path / "failed", progress=None)
    assert len(again.skipped) == 4 and not again.ran  # rerunning runs only what is missing
    fig = sweep.plot_effects(record)
    assert fig.axes and len(fig.axes[0].get_yticklabels()) == len(record["groups"][0]["claims"])
    _store_intact(shared_root)


def _descends_from_us(pid: int) -> bool:
    """True when this test process is an ancestor of `pid` (our cluster's workers and their kernels,
    never another job's kernels on the same machine)."""
    me = os.getpid()
    while pid > 1:
        try:
            pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
    return False


def _kernels() -> list[int]:
    """PIDs of the running papermill kernels that this test's cluster started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ipykernel_launcher" in cmd and _descends_from_us(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _parent(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_worker_killed_mid_run_leaves_a_sweep_that_finishes(shared_root, tmp_path):
    runs, failed = tmp_path / "runs", tmp_path / "failed"
    before = set(_kernels())
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("report", sweep.sweep(
        "tour", "smoke", {}, seeds=[0, 1], runs=runs, failed=failed, progress=None)))
    thread.start()
    deadline = time.monotonic() + 120
    while not (started := set(_kernels()) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started, "no kernel started"
    time.sleep(3)  # mid-run: the kernel is importing, training or writing
    victim = sorted(started)[0]
    worker = _parent(victim)
    for pid in (worker, victim):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    thread.join(600)
    assert not thread.is_alive()
    first = outcome["report"]
    rerun = sweep.sweep("tour", "smoke", {}, seeds=[0, 1], runs=runs, failed=failed, progress=None, to_book=True,
                        book=tmp_path / "book")
    assert not rerun.failed and len(rerun.skipped) + len(rerun.ran) == 2
    seeds = load_seeds(tmp_path / "book" / "results", "tour")  # the claims over seeds, beside the page
    assert seeds and all(c["seeds"] == 2 for c in seeds.values())
    assert set(rerun.skipped) >= set(first.ran)  # what finished the first time is not run again
    assert all(sweep.is_finished(rerun.folders[t], "tour") for t in rerun.tasks)
    _store_intact(shared_root)


def _train_counted(spec: dict, counter: str) -> str:
    """On a worker: cache.trained(spec), counting the trainings (not the loads) in `counter`."""
    from ensembles_lib import cache

    original = cache._train

    def counted(*args, **kwargs):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        return original(*args, **kwargs)

    cache._train = counted
    try:
        cache.trained(spec, progress=False, device="cpu", backend="tensor")
    finally:
        cache._train = original
    return str(os.getpid())


def test_two_workers_asking_for_one_model_train_it_once(shared_root, tmp_path):
    spec = {"model": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 8}},
            "data": {"name": "digits", "split": "train", "batch_size": 64}, "optim": {"lr": 0.05},
            "epochs": 3, "seed": 0}
    counter = tmp_path / "trainings.txt"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        workers = list(client.scheduler_info()["workers"])
        futures = [client.submit(_train_counted, spec, str(counter), workers=[w], pure=False) for w in workers]
        pids = client.gather(futures)
    assert len(set(pids)) == 2  # two processes asked
    assert len(counter.read_text().split()) == 1  # one trained; the other waited on the lock and loaded
    _store_intact(shared_root)


def test_command_line_checks_then_sweeps(shared_root, tmp_path, capsys, monkeypatch):
    from ensembles_lib import cli

    assert cli.main(["sweep", "tour", "--profile", "smoke", "-p", "combine", "prob,median"]) == 2
    assert "combine must be one of" in capsys.readouterr().err
    assert cli.main(["sweep", "tour", "--profile", "smoke", "--seeds", "0,x"]) == 2
    assert "--seeds must be integers" in capsys.readouterr().err
    assert cli.parse_grid("tour", [["eps_grid", "0,0.1;0,0.2"], ["combine", "prob,logit"]]) == \
        {"eps_grid": [(0.0, 0.1), (0.0, 0.2)], "combine": ["prob", "logit"]}
    assert cli.parse_grid("tour", [["eps_grid", "0,0.1"]]) == {"eps_grid": [(0.0, 0.1)]}
    assert cli.parse_grid("dverge", [["sizes", "3;3,5"]]) == {"sizes": ["3", "3,5"]}
    assert cli.main(["sweep", "tour", "--profile", "smoke", "-p", "combine", "logit", "--seeds", "3",
                     "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "done in" in out and "combined in" in out
    (record,) = (shared_root / "runs").glob("*-sweep-*/sweep.json")
    assert (record.parent / "effects.png").stat().st_size > 0
    assert json.loads(record.read_text())["groups"][0]["parameters"] == {"combine": "logit"}


def test_book_pages_run_as_tasks_land_in_the_book(shared_root, tmp_path):
    book = tmp_path / "book"
    failures = sweep.run_book(["tour"], "smoke", workers=1, book=book, progress=None)
    assert failures == {}
    assert (book / "tour.ipynb").is_file()
    assert json.loads((book / "results" / "tour.json").read_text())["profile"] == "smoke"
