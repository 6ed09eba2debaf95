"""Execute a chapter with papermill: `notebooks/<chapter>.ipynb` -> the book page or a run folder.

Where a run goes (`plan`): the profile's own run with default parameters replaces the book page
`book/<chapter>.ipynb` (and the notebook writes `book/results/<chapter>.json`); a run with any
parameter changed goes to its own run folder, `data_root()/runs/<chapter>-<profile>-<hash of the
changed values>/`, holding the executed notebook, its `results/` and `run.json` (chapter, profile,
parameters, start, wall time), and leaves the book alone. So does a default run of another
profile than the page's (a smoke run never replaces a cpu page); `to_book` says otherwise
explicitly (`ensembles book` passes True). `list_runs` reads the run folders (`ensembles runs`).
The notebook learns its folder from $ENSEMBLES_BOOK_DIR (`results.book_dir`).

Parameters are resolved and validated (`chapters.resolve`) before papermill starts, since
papermill only warns about names the notebook does not have. The notebook runs in the venv's
"python3" kernel (jupyter_client starts it with this interpreter), with the checkout as working
directory, into `data_root()/failed/<chapter>-<profile>-<time>.ipynb`; only a successful run moves
it to its page (atomically), so a failing cell leaves the last good page in place, the partial
notebook stays where it ran, and `ChapterFailed` carries the failing cell and its error.
Ctrl-C stops the kernel and raises `ChapterInterrupted`, which names the partial notebook.
While it runs, `CellProgress` prints a line per code cell (chapter, cell, section, elapsed and
expected time) and, on a terminal, the training bars the kernel writes to stderr; the kernel's
own stderr goes to a log beside the partial notebook, without its harmless TCP warning.
`write_parameters_cell` writes a notebook's papermill cell from the chapter's declaration.
Used by `ensembles run`, `ensembles runs`, `ensembles book` and `ensembles params --write`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, TextIO

import nbformat

from . import chapters, profiles
from .paths import atomic_path, checkout_root, data_root
from .results import BOOK_DIR_ENV, UNFILED

KERNEL = "python3"
RUN_RECORD = "run.json"  # in every run folder, written last: the run completed
# What ipykernel logs at every start on a local TCP connection; nothing a reader can act on.
HARMLESS_KERNEL_LINES = ("Kernel is running over TCP without encryption",)


class ChapterFailed(RuntimeError):
    """A chapter's notebook raised; the message holds the failing cell and its error."""

    def __init__(self, message: str, partial: Path | None):
        super().__init__(message)
        self.partial = partial


class ChapterInterrupted(KeyboardInterrupt):
    """Ctrl-C while a chapter ran; the message names the partial notebook (`partial`, or None
    when papermill had not written it yet)."""

    def __init__(self, chapter: str, partial: Path | None):
        where = f"the partial notebook is kept at {partial}" if partial else "no partial notebook was written"
        super().__init__(f"chapter {chapter!r} interrupted; {where}")
        self.partial = partial


@dataclass(frozen=True)
class RunResult:
    """What one successful run produced: the page written (`output`, inside `folder`: the book or
    the run folder), the config, whether it went to the book, the wall time in seconds."""

    chapter: str
    config: profiles.Config
    output: Path
    wall_time_s: float
    folder: Path
    to_book: bool


@dataclass(frozen=True)
class Plan:
    """Where a run will go, decided before it starts: `folder` (the book or a run folder) and
    `reason`, a few words saying why (the CLI prints them)."""

    config: profiles.Config
    folder: Path
    to_book: bool
    reason: str


def notebooks_dir() -> Path:
    """`<checkout>/notebooks`: the clean chapter sources."""
    return checkout_root() / "notebooks"


def failed_dir() -> Path:
    """`data_root()/failed`: partial notebooks of failed runs, kept for inspection."""
    return data_root() / "failed"


def runs_dir() -> Path:
    """`data_root()/runs`: one folder per chapter, profile and set of changed parameters."""
    return data_root() / "runs"


def book_folder() -> Path:
    """The book whose pages chapters replace: $ENSEMBLES_BOOK_DIR when set (tests point it at a
    temporary folder), else `<checkout>/book`."""
    override = os.environ.get(BOOK_DIR_ENV)
    return Path(override).expanduser() if override else checkout_root() / "book"


def changed_parameters(config: profiles.Config) -> dict:
    """The parameters that differ from the profile's defaults, JSON-able (tuples as lists)."""
    values = config.as_dict()
    return {name: values[name] for name in config.overridden}


def run_name(config: profiles.Config) -> str:
    """`<chapter>-<profile>-<tag>`: the tag is "defaults", or the first 8 hex digits of the SHA-256
    of the changed parameters' canonical JSON, so the same changes always land in one folder."""
    changed = changed_parameters(config)
    tag = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8] if changed else "defaults"
    return f"{config.chapter}-{config.profile}-{tag}"


def page_profile(page: Path) -> str | None:
    """The profile an executed page ran under (papermill's record of its parameters), or None
    when there is no page or it does not say."""
    try:
        recorded = nbformat.read(page, as_version=4).metadata.get("papermill", {}).get("parameters", {})
    except (OSError, ValueError):
        return None
    profile = recorded.get("profile") if isinstance(recorded, Mapping) else None
    return profile if isinstance(profile, str) else None


def plan(chapter: str, profile: str = "auto", overrides: Mapping | None = None, *, to_book: bool | None = None,
         book: Path | str | None = None, runs: Path | str | None = None) -> Plan:
    """Resolve the parameters (ValueError naming a bad one) and decide where the run goes.

    to_book None: the book when no parameter is changed and the page is absent or of the same
    profile, else the run folder `<runs>/<run_name>`; True or False decide it explicitly. book
    defaults to `book_folder()`, runs to `runs_dir()`.
    """
    config = chapters.resolve(chapter, profile, **dict(overrides or {}))
    book = Path(book or book_folder()).resolve()
    existing = page_profile(book / f"{chapter}.ipynb")
    if to_book is not None:
        into_book, reason = to_book, "asked for the book" if to_book else "asked for a run folder"
    elif config.overridden:
        into_book, reason = False, "parameters changed: " + ", ".join(config.overridden)
    elif existing not in (None, config.profile):
        into_book, reason = False, f"the book's page is a {existing} run"
    else:
        into_book, reason = True, f"the {config.profile} profile's own run with default parameters"
    folder = book if into_book else Path(runs or runs_dir()).resolve() / run_name(config)
    return Plan(config, folder, into_book, reason)


def expected_minutes(chapter: str, profile: str) -> float | None:
    """The declared wall time of one run of `chapter` under the concrete `profile`, in minutes
    (the chapter module's MINUTES), or None when not measured."""
    return chapters.chapter(chapter).minutes.get(profile)


def _run_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = ("chapter", "profile", "parameters", "started", "wall_time_s")
    return record if isinstance(record, dict) and all(k in record for k in keys) else None


def read_run_record(folder: Path | str) -> dict | None:
    """The run record of a run folder (chapter, profile, parameters, started, wall_time_s), or None
    when the run never completed there (no readable record). Sweeps skip the folders that have one."""
    return _run_record(Path(folder) / RUN_RECORD)


def list_runs(folder: Path | str | None = None, chapter: str | None = None) -> list[dict]:
    """The run folders under `folder` (default runs_dir()), oldest first: each `run.json` record
    (chapter, profile, parameters, started, wall_time_s) with `path` added. A folder whose run
    never completed (no readable run.json) is listed with `complete` False and only its path.
    The folder where runs outside the runner put their results (`results.UNFILED`) is no run."""
    root = Path(folder or runs_dir())
    runs = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or path.name == UNFILED[-1]:
            continue
        record = _run_record(path / RUN_RECORD)
        if record is None:
            runs.append({"path": path, "complete": False, "started": ""})
        elif chapter in (None, record["chapter"]):
            runs.append({**record, "path": path, "complete": True})
    return sorted(runs, key=lambda r: (str(r["started"]), str(r["path"])))


def _write_run_record(folder: Path, config: profiles.Config, started: datetime, wall: float) -> Path:
    results = folder / "results" / f"{config.chapter}.json"
    record = {"chapter": config.chapter, "profile": config.profile, "parameters": changed_parameters(config),
              "started": started.isoformat(timespec="milliseconds"), "wall_time_s": round(wall, 1),
              "notebook": f"{config.chapter}.ipynb",
              "results": str(results.relative_to(folder)) if results.is_file() else None}
    target = folder / RUN_RECORD
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return target


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class CellProgress:
    """One line on `stream` as each code cell of a chapter starts, e.g.

        dverge   1:42 of ~3 min  cell 12/24  Fig. 3: how often an attack on one member fools another

    (chapter, elapsed and expected time, the cell among the code cells, the section heading it
    sits under). `cell_started` is nbclient's `on_cell_start` hook; `cells` are the source
    notebook's, to count its code cells (papermill adds one, the injected parameters).
    """

    def __init__(self, chapter: str, cells, expected: float | None, stream: TextIO, clock=time.monotonic):
        self.chapter, self.stream, self.clock = chapter, stream, clock
        self.total = sum(c.cell_type == "code" for c in cells) + 1
        self.expected = "no estimate" if expected is None else f"~{expected:g} min"
        self.began = clock()
        self.count, self.section = 0, ""

    def cell_started(self, cell, cell_index: int | None = None, **_) -> None:
        if cell.cell_type == "markdown":
            heading = next((line for line in cell.source.splitlines() if line.startswith("#")), None)
            if heading is not None:
                self.section = heading.lstrip("#").strip().replace("`", "")
            return
        if cell.cell_type != "code":
            return
        self.count += 1
        tags = cell.metadata.get("tags", [])
        where = ("parameters given to this run" if "injected-parameters" in tags
                 else "parameters" if "parameters" in tags else self.section)
        where = where if len(where) <= 70 else where[:69] + "…"
        line = (f"  {self.chapter}  {_clock(self.clock() - self.began):>5} of {self.expected}"
                f"  cell {self.count:>{len(str(self.total))}}/{self.total}  {where}").rstrip()
        print(line, file=self.stream, flush=True)


def _drop_harmless_lines(log: Path) -> None:
    """Remove HARMLESS_KERNEL_LINES from the kernel's log, so what is left there is worth reading."""
    try:
        lines = log.read_text(errors="replace").splitlines(keepends=True)
    except OSError:
        return
    kept = [line for line in lines if not any(text in line for text in HARMLESS_KERNEL_LINES)]
    if len(kept) != len(lines):
        log.write_text("".join(kept))


@contextlib.contextmanager
def _environment(name: str, value: str):
    """Set one environment variable for the kernel papermill starts (it inherits ours)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _papermill_parameters(config: profiles.Config) -> dict:
    """The values injected after the `parameters` cell: the concrete profile and every override
    (lists, not tuples, so papermill writes them as Python literals)."""
    values = {"profile": config.profile}
    for name in config.overridden:
        value = config[name]
        values[name] = list(value) if isinstance(value, tuple) else value
    return values


def _kernel_manager(log: Path) -> type:
    """A kernel manager class for one run: the kernel's own stderr goes to `log`, not the terminal.

    Cell output reaches the notebook either way; what the kernel process itself prints is its
    start-up warnings and, when Ctrl-C shuts it down in the middle of a cell, a traceback of
    its closed sockets -- neither belongs on the user's terminal, both belong beside the partial
    notebook when something went wrong.
    """
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kwargs):
            with open(log, "ab") as stream:  # the kernel holds its own copy of the descriptor
                return await super().start_kernel(stderr=stream, **kwargs)

    return LoggedKernelManager


def _failure_message(chapter: str, err: Exception, partial: Path | None) -> str:
    source = getattr(err, "source", None)
    if source is not None:  # papermill's PapermillExecutionError
        cell = f"cell {getattr(err, 'exec_count', '?')}"
        error = f"{err.ename}: {err.evalue}"
        trace = "\n".join(getattr(err, "traceback", []) or [])
        body = f"--- failing {cell} ---\n{source}\n--- error ---\n{error}\n{_strip_ansi(trace)}"
    else:
        body = f"--- error ---\n{type(err).__name__}: {err}"
    return f"chapter {chapter!r} failed; partial notebook (and its .kernel.log) kept at {partial}\n{body}"


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _shown_path(path: Path) -> str:
    """`path` relative to the checkout when it lies inside it (no machine's folders in the book)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(checkout_root().resolve()))
    except ValueError:
        return str(path)


def run(chapter: str, profile: str = "auto", overrides: dict | None = None, *, to_book: bool | None = None,
        source_dir: Path | str | None = None, output_dir: Path | str | None = None,
        runs: Path | str | None = None, failed: Path | str | None = None,
        progress: TextIO | None = None) -> RunResult:
    """Execute `chapter` under `profile` with `overrides` (name -> typed value; the CLI converts its
    strings with `Chapter.parse`) into the folder `plan` picks, and return a RunResult.
    ChapterFailed if a cell raises: the previous page stays, the partial notebook stays in the
    failed folder.

    to_book: None decides by the parameters (see `plan`), True replaces the book page, False
    writes a run folder. source_dir (default notebooks/), output_dir (the book, default
    `book_folder()`), runs (default runs_dir()) and failed (default data_root()/failed) are
    overridable so tests never touch the book. progress: a stream for `CellProgress` lines (and,
    when it is a terminal, the kernel's stderr: training bars), or None for silence. ValueError
    for an unknown chapter or bad parameters, before anything executes.
    """
    import papermill

    where = plan(chapter, profile, overrides, to_book=to_book, book=output_dir, runs=runs)
    config = where.config
    source = Path(source_dir or notebooks_dir()) / f"{chapter}.ipynb"
    if not source.is_file():
        raise ValueError(f"chapter {chapter!r} is declared but its notebook {source} does not exist")
    target = where.folder / f"{chapter}.ipynb"
    # papermill saves the notebook after every cell, so it runs outside its page's folder: under the
    # name it keeps if it fails, moved to its page only when every cell succeeded
    kept = Path(failed or failed_dir())
    kept.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    partial = kept / f"{chapter}-{config.profile}-{started.strftime('%Y%m%dT%H%M%S%fZ')}.ipynb"
    kernel_log = partial.with_suffix(".kernel.log")
    shown = {}
    if progress is not None:
        cells = nbformat.read(source, as_version=4).cells
        reporter = CellProgress(chapter, cells, expected_minutes(chapter, config.profile), progress)
        shown["on_cell_start"] = reporter.cell_started
        if progress.isatty():  # training bars redraw a line in place: only on a terminal
            shown["stderr_file"] = progress
    began = time.perf_counter()
    try:
        with _environment(BOOK_DIR_ENV, str(where.folder)):
            papermill.execute_notebook(str(source), str(partial), parameters=_papermill_parameters(config),
                                       kernel_name=KERNEL, cwd=str(checkout_root()), progress_bar=False,
                                       kernel_manager_class=_kernel_manager(kernel_log), **shown)
    except KeyboardInterrupt:
        # papermill saved the cells run so far and nbclient shut the kernel down on the way out
        _drop_harmless_lines(kernel_log)
        raise ChapterInterrupted(chapter, partial if partial.exists() else None) from None
    except Exception as err:
        _drop_harmless_lines(kernel_log)
        partial = partial if partial.exists() else None
        raise ChapterFailed(_failure_message(chapter, err, partial), partial) from err
    wall = time.perf_counter() - began
    kernel_log.unlink(missing_ok=True)
    executed = nbformat.read(partial, as_version=4)
    # papermill recorded where it ran; the page records where it came from and where it lives
    executed.metadata.setdefault("papermill", {}).update(input_path=_shown_path(source), output_path=_shown_path(target))
    with atomic_path(target, suffix=".ipynb") as tmp:
        nbformat.write(executed, tmp)
    partial.unlink()
    if not where.to_book:
        _write_run_record(where.folder, config, started, wall)
    return RunResult(chapter, config, target, wall, where.folder, where.to_book)


def write_parameters_cell(chapter: str, source_dir: Path | str | None = None) -> Path:
    """Write the chapter's papermill `parameters` cell, generated from its declaration, into
    `<source_dir>/<chapter>.ipynb` (default notebooks/) in place of the old one; every other cell
    stays as it is. Returns the notebook's path; ValueError unless it has exactly one such cell."""
    cell_source = chapters.chapter(chapter).parameters_cell()
    path = Path(source_dir or notebooks_dir()) / f"{chapter}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path} must have exactly one cell tagged 'parameters', found {len(cells)}")
    cells[0].source = cell_source
    with atomic_path(path, suffix=".ipynb") as tmp:
        nbformat.write(nb, tmp)
    return path
