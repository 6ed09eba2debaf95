"""Sweeps: a grid of chapter runs (parameter values x seeds) spread over a Dask cluster, and the
claims decided over seeds.

`sweep("dverge", "cpu", {"sizes": [(3,), (5,)]}, seeds=[0, 1, 2])` runs every combination as one
papermill run (`runner.run`, each into its own run folder under the data root) on a Dask cluster:
a `LocalCluster` sized to the machine when no scheduler address is given (one worker process a run,
the cores split between them so two runs do not fight over the same cores), or any scheduler a
researcher already has (`scheduler="tcp://host:8786"`: SLURM or PBS through dask-jobqueue,
Kubernetes through dask-kubernetes) with no change to the code. Every worker needs the same checkout
and virtual environment, and the data root (`ENSEMBLES_DATA_DIR`) on storage all of them share: the
artifact store is the only shared state, and its per-key lock makes two workers that need one model
train it once.

A finished run is one whose folder holds its run record (written last, atomically), so rerunning a
sweep runs only what failed or is missing, and the trained-model cache makes finished training free.
A failed run is reported with its partial notebook and does not stop the others; a worker that dies
(killed, out of memory) has its task rescheduled by Dask, or reported as failed after Dask's retries.

After the runs, `combine` writes one record a sweep (`sweep.json` in the runs folder): for every
combination of the swept parameters, each claim's verdict in each seed, "holds in k of n seeds",
the effect (the statistic's difference) per seed with its mean and a t-interval across seeds, and
a verdict over seeds: holds when it holds in every seed, does not hold when it fails in every seed,
undecided otherwise. `plot_effects` draws each claim's effect with its interval across seeds.
Used by `ensembles sweep` and `ensembles book --scheduler`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import chapters, runner
from .claims import FAILS, HOLDS, UNDECIDED, VERDICT_HOLDS
from .paths import atomic_path

SWEEP_RECORD = "sweep.json"


@dataclass(frozen=True)
class Task:
    """One run of a sweep: a chapter, a profile and its parameter overrides (name -> typed value)."""
    chapter: str
    profile: str
    overrides: tuple[tuple[str, Any], ...]

    def parameters(self) -> dict[str, Any]:
        return dict(self.overrides)

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.overrides) or "defaults"


@dataclass
class SweepReport:
    """What a sweep did: the tasks it found finished, those it ran, those that failed (label ->
    message, which names the partial notebook), each task's run folder, and the combined record."""
    tasks: list[Task]
    skipped: list[Task] = field(default_factory=list)
    ran: list[Task] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    folders: dict[Task, Path] = field(default_factory=dict)
    record: Path | None = None


def plan_sweep(chapter: str, profile: str, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None = None,
               ) -> list[Task]:
    """Every combination of `grid` (parameter name -> the values to try) and `seeds` (the chapter's
    `seed` parameter) as Tasks, each validated (`chapters.resolve`) before anything runs: ValueError
    naming the chapter, profile, parameter or value that is wrong, or an empty grid."""
    declared = chapters.chapter(chapter)
    grid = {name: list(values) for name, values in grid.items()}
    if seeds is not None:
        if "seed" in grid:
            raise ValueError("give the seeds with seeds=..., not as a parameter of the grid")
        declared.param("seed")
        grid["seed"] = list(seeds)
    for name, values in grid.items():
        declared.param(name)
        if not values:
            raise ValueError(f"parameter {name}: the sweep needs at least one value")
    names = sorted(grid)
    tasks = []
    for values in itertools.product(*(grid[n] for n in names)):
        overrides = {n: declared.param(n).check(v) for n, v in zip(names, values)}
        chapters.resolve(chapter, profile, **overrides)  # every value checked before any run starts
        tasks.append(Task(chapter, profile, tuple(overrides.items())))
    return tasks


def task_folder(task: Task, runs: Path | None = None) -> Path:
    """The run folder `runner.run` writes `task` into (a sweep never replaces a book page)."""
    return runner.plan(task.chapter, task.profile, task.parameters(), to_book=False, runs=runs).folder


def is_finished(folder: Path, chapter: str) -> bool:
    """True when `folder` holds a completed run of `chapter`: its run record (written last) and the
    executed notebook."""
    record = runner.read_run_record(folder)
    return record is not None and record["chapter"] == chapter and (folder / f"{chapter}.ipynb").is_file()


def run_task(task: Task, runs: str | None, failed: str | None, threads: int | None) -> dict:
    """Execute one task on a worker: {"status": "done", "folder", "wall_time_s"} or {"status": "failed",
    "message"} (the message names the partial notebook). The kernel gets `threads` cores (None: the
    worker's environment decides, as on a cluster whose workers were sized by their job scripts)."""
    _use_threads(threads)
    try:
        result = runner.run(task.chapter, task.profile, task.parameters(), to_book=False,
                            runs=runs and Path(runs), failed=failed and Path(failed))
    except runner.ChapterFailed as err:
        return {"status": "failed", "message": str(err)}
    return {"status": "done", "folder": str(result.folder), "wall_time_s": result.wall_time_s}


def _use_threads(threads: int | None) -> None:
    """Give the kernels this worker starts `threads` cores (None: leave the worker's environment)."""
    # a worker runs one task at a time (threads_per_worker=1), so its environment is the task's
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)


def _outcomes(futures: Mapping) -> Iterator[tuple[Any, dict]]:
    """(the future's item, its outcome dict) as each finishes; a dead worker (KilledWorker) or a task
    that could not run becomes {"status": "failed", "message"} instead of stopping the others."""
    from dask.distributed import as_completed

    for future in as_completed(futures):
        try:
            outcome = future.result()
        except Exception as err:
            outcome = {"status": "failed", "message": f"{type(err).__name__}: {err}"}
        yield futures[future], outcome


def _failure(label: str, message: str) -> str:
    return f"  {label}: FAILED\n    " + message.replace("\n", "\n    ")


def cluster_size(tasks: int, cores: int | None = None) -> tuple[int, int]:
    """(workers, threads a run) for `tasks` runs on a machine with `cores` cores (default: this one):
    a worker a run up to one a core, the cores split evenly between them."""
    cores = max(1, cores or os.cpu_count() or 1)
    workers = max(1, min(tasks, cores))
    return workers, max(1, cores // workers)


def sweep(chapter: str, profile: str, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None = None, *,
          scheduler: str | None = None, workers: int | None = None, runs: Path | str | None = None,
          failed: Path | str | None = None, to_book: bool = False, book: Path | str | None = None,
          progress: Callable[[str], None] | None = print) -> SweepReport:
    """Run the grid on Dask (a LocalCluster, or the scheduler at `scheduler`) and combine the runs
    over seeds; see the module docstring. Finished runs are skipped; failures are reported, not raised.
    to_book (seeds only, no other parameter): also write the claims over seeds beside the chapter's
    page (`<book>/results/seeds/<chapter>.json`), which its claims table then shows."""
    if to_book and (grid or not seeds):
        raise ValueError("to_book writes a chapter's claims over seeds: give seeds and no other parameter")
    say = progress or (lambda _line: None)
    tasks = plan_sweep(chapter, profile, grid, seeds)
    runs_root = Path(runs or runner.runs_dir())
    report = SweepReport(tasks, folders={t: task_folder(t, runs_root) for t in tasks})
    todo = [t for t in tasks if not is_finished(report.folders[t], chapter)]
    report.skipped = [t for t in tasks if t not in todo]
    for t in report.skipped:
        say(f"  {chapter} [{t.label()}]: finished earlier, kept ({report.folders[t]})")
    if todo:
        client, cluster, threads = _clients(scheduler, len(todo), workers)
        try:
            say(f"sweep {chapter}: {len(todo)} run(s) on {len(client.scheduler_info()['workers'])} worker(s)")
            futures = {client.submit(run_task, t, str(runs_root), failed and str(failed), threads, pure=False,
                                     key=f"{chapter}-{t.label()}-{i}"): t for i, t in enumerate(todo)}
            for task, outcome in _outcomes(futures):
                if outcome["status"] == "done":
                    report.ran.append(task)
                    say(f"  {chapter} [{task.label()}]: done in {outcome['wall_time_s']:.0f} s ({outcome['folder']})")
                else:
                    report.failed[task.label()] = outcome["message"]
                    say(_failure(f"{chapter} [{task.label()}]", outcome["message"]))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finished = [t for t in tasks if is_finished(report.folders[t], chapter)]
    if finished:
        report.record = write_sweep_record(chapter, profile, finished, report.folders, runs_root, grid, seeds)
        combined = json.loads(report.record.read_text())
        figure = plot_effects(combined)
        with atomic_path(report.record.with_name("effects.png"), suffix=".png") as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        import matplotlib.pyplot as plt

        plt.close(figure)
        say(f"sweep {chapter}: {len(finished)} of {len(tasks)} run(s) combined in {report.record} (figure: effects.png)")
        if to_book:
            (group,) = combined["groups"]
            target = Path(book or runner.book_folder()) / "results" / "seeds" / f"{chapter}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                tmp.write_text(json.dumps({"chapter": chapter, "profile": profile, "seeds": combined["seeds"],
                                           "runs": group["runs"], "claims": group["claims"]}, indent=2) + "\n")
            say(f"sweep {chapter}: the claims over seeds are beside the page ({target})")
    return report


def _clients(scheduler: str | None, tasks: int, workers: int | None):
    """(client, cluster or None, threads a run or None) for `tasks` runs: the scheduler at the address,
    or a LocalCluster sized by `cluster_size` (or `workers`)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        return Client(scheduler), None, None
    count, threads = cluster_size(tasks)
    if workers is not None:
        count, threads = workers, max(1, (os.cpu_count() or 1) // workers)
    cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster, threads


def run_page(chapter: str, profile: str, threads: int | None) -> dict:
    """On a worker: the profile's own run of `chapter` into a temporary folder; returns the page and
    its results record as bytes ({"status": "done", "page", "results", "wall_time_s"}), so the book is
    written where the command runs even when the workers do not share its checkout."""
    import tempfile

    _use_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        try:
            result = runner.run(chapter, profile, {}, to_book=True, output_dir=folder)
        except runner.ChapterFailed as err:
            return {"status": "failed", "message": str(err)}
        results = Path(folder) / "results" / f"{chapter}.json"
        return {"status": "done", "page": result.output.read_bytes(), "wall_time_s": result.wall_time_s,
                "results": results.read_bytes() if results.is_file() else None}


def run_book(names: Sequence[str], profile: str, *, scheduler: str | None = None, workers: int | None = None,
             book: Path | str | None = None, progress: Callable[[str], None] | None = print) -> dict[str, str]:
    """Run the chapters' pages as Dask tasks and write each finished page (and its results record)
    into `book` (default the book folder), atomically; returns {chapter: failure message} for those
    that failed, whose last good pages stay."""
    say = progress or (lambda _line: None)
    target = Path(book or runner.book_folder())
    client, cluster, threads = _clients(scheduler, len(names), workers)
    failures = {}
    try:
        futures = {client.submit(run_page, name, profile, threads, pure=False, key=f"page-{name}"): name
                   for name in names}
        for name, outcome in _outcomes(futures):
            if outcome["status"] != "done":
                failures[name] = outcome["message"]
                say(_failure(name, outcome["message"]))
                continue
            for path, data in ((target / f"{name}.ipynb", outcome["page"]),
                               (target / "results" / f"{name}.json", outcome["results"])):
                if data is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(path, suffix=path.suffix) as tmp:
                        tmp.write_bytes(data)
            say(f"  {name}: page written in {outcome['wall_time_s']:.0f} s")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failures


# ----------------------------------------------------------------------------- claims over seeds


def _effect(claim: dict) -> float | None:
    statistic = claim.get("statistic") or {}
    value = statistic.get("difference")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _verdict(holds: bool | None) -> str:
    return {v: k for k, v in VERDICT_HOLDS.items()}[holds]


def combine(records: Sequence[dict]) -> list[dict]:
    """Each claim over the results records of one parameter combination in several seeds (each a
    chapter's results JSON): per seed its verdict and effect; "holds_in" of "seeds"; the effect's
    mean and 95% t-interval across seeds (None with fewer than two effects); and the verdict over
    seeds (holds in every seed: holds; fails in every seed: does not hold; else undecided)."""
    from scipy import stats

    ids = list(dict.fromkeys(c["id"] for r in records for c in r["claims"]))
    combined = []
    for claim_id in ids:
        per_seed = [(r.get("seed"), next((c for c in r["claims"] if c["id"] == claim_id), None)) for r in records]
        rows = [{"seed": seed, "verdict": _verdict(c["holds"]), "effect": _effect(c)} for seed, c in per_seed if c]
        effects = [r["effect"] for r in rows if r["effect"] is not None]
        mean = sum(effects) / len(effects) if effects else None
        interval = None
        if len(effects) >= 2:
            half = stats.t.ppf(0.975, len(effects) - 1) * float(np.std(effects, ddof=1)) / math.sqrt(len(effects))
            interval = [mean - half, mean + half]
        verdicts = [r["verdict"] for r in rows]
        over = HOLDS if verdicts and all(v == HOLDS for v in verdicts) else \
            FAILS if verdicts and all(v == FAILS for v in verdicts) else UNDECIDED
        first = next(c for _, c in per_seed if c)
        combined.append({"id": claim_id, "claim": first["claim"], "rule": first.get("rule"),
                         "holds_in": verdicts.count(HOLDS), "fails_in": verdicts.count(FAILS), "seeds": len(rows),
                         "verdict": over, "holds": VERDICT_HOLDS[over], "effect_mean": mean,
                         "effect_interval": interval, "per_seed": rows})
    return combined


def write_sweep_record(chapter: str, profile: str, tasks: Sequence[Task], folders: Mapping[Task, Path],
                       runs_root: Path, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None) -> Path:
    """The sweep's combined record (atomic): one group a combination of the swept parameters other
    than the seed, its runs' claims combined over seeds (`combine`)."""
    groups: dict[tuple, list[dict]] = {}
    runs: dict[tuple, list[str]] = {}
    for task in tasks:
        results = folders[task] / "results" / f"{chapter}.json"
        record = json.loads(results.read_text()) if results.is_file() else {"claims": []}
        parameters = task.parameters()
        record["seed"] = parameters.pop("seed", None)
        key = tuple(sorted(parameters.items()))
        groups.setdefault(key, []).append(record)
        runs.setdefault(key, []).append(str(folders[task]))
    body = {"chapter": chapter, "profile": profile,
            "grid": {k: list(v) for k, v in grid.items()}, "seeds": None if seeds is None else list(seeds),
            "groups": [{"parameters": dict(key), "runs": runs[key], "claims": combine(records)}
                       for key, records in groups.items()]}
    tag = runner.run_name(chapters.resolve(chapter, profile)).rsplit("-", 1)[0]
    target = runs_root / f"{tag}-sweep-{_grid_tag(body['grid'], body['seeds'])}" / SWEEP_RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(body, indent=2, default=list) + "\n")
    return target


def _grid_tag(grid: Mapping[str, list], seeds: list | None) -> str:
    import hashlib

    text = json.dumps({"grid": grid, "seeds": seeds}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def plot_effects(record: Mapping):
    """A figure of each claim's effect (its statistic's difference) in every seed and the mean with
    its 95% interval across seeds, one row a claim, one colour a parameter combination."""
    import matplotlib.pyplot as plt

    groups = record["groups"]
    ids = list(dict.fromkeys(c["id"] for g in groups for c in g["claims"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ids) + 1.2), layout="constrained")
    for k, group in enumerate(groups):
        offset = (k - (len(groups) - 1) / 2) * 0.25
        label = ", ".join(f"{n}={v}" for n, v in group["parameters"].items()) or "defaults"
        for claim in group["claims"]:
            y = ids.index(claim["id"]) + offset
            seeds = [r["effect"] for r in claim["per_seed"] if r["effect"] is not None]
            ax.scatter(seeds, [y] * len(seeds), s=12, color=f"C{k}", alpha=0.6,
                       label=label if claim is group["claims"][0] else None)
            if claim["effect_interval"] is not None:
                low, high = claim["effect_interval"]
                ax.errorbar(claim["effect_mean"], y, xerr=[[claim["effect_mean"] - low], [high - claim["effect_mean"]]],
                            fmt="o", color=f"C{k}", capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(ids)), ids, fontsize=8)
    ax.set_xlabel("effect: one dot a seed, bar: 95% interval across seeds")
    if any(c["per_seed"] for g in groups for c in g["claims"]):
        ax.legend(fontsize="small")
    return fig
