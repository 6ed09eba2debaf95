"""Execute a chapter: `notebooks/<chapter>.ipynb` -> `book/<chapter>.ipynb` with papermill.

Parameters are resolved and validated (`chapters.resolve`) before papermill starts, since
papermill only warns about names the notebook does not have. The notebook runs in the venv's
"python3" kernel (jupyter_client starts it with this interpreter), with the checkout as working
directory, into `data_root()/failed/<chapter>-<profile>-<time>.ipynb`; only a successful run moves
it over the book page (atomically), so a failing cell leaves the last good page in place, the
partial notebook stays where it ran, and `ChapterFailed` carries the failing cell and its error.
Ctrl-C stops the kernel and raises `ChapterInterrupted`, which names the partial notebook.
`write_parameters_cell` writes a notebook's papermill cell from the chapter's declaration.
Used by `ensembles run`, `ensembles book` and `ensembles params --write`.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from . import chapters, profiles
from .paths import atomic_path, checkout_root, data_root
from .results import BOOK_DIR_ENV, book_dir

KERNEL = "python3"


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
    """What one successful run produced: the page written, the config, the wall time in seconds."""

    chapter: str
    config: profiles.Config
    output: Path
    wall_time_s: float


def notebooks_dir() -> Path:
    """`<checkout>/notebooks`: the clean chapter sources."""
    return checkout_root() / "notebooks"


def failed_dir() -> Path:
    """`data_root()/failed`: partial notebooks of failed runs, kept for inspection."""
    return data_root() / "failed"


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


def _failure_message(chapter: str, err: Exception, partial: Path) -> str:
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


def run(chapter: str, profile: str = "auto", overrides: dict | None = None, *, source_dir: Path | str | None = None,
        output_dir: Path | str | None = None, failed: Path | str | None = None,
        progress: bool = False) -> RunResult:
    """Execute `chapter` under `profile` with `overrides` (name -> typed value; the CLI converts its
    strings with `Chapter.parse`) and return a RunResult. ChapterFailed if a cell raises:
    the previous page stays, the partial notebook stays in the failed folder.

    source_dir (default notebooks/), output_dir (default book/, also where the notebook's results
    JSON goes) and failed (default data_root()/failed) are overridable so tests never touch the
    book. progress shows papermill's per-cell progress bar. ValueError for an unknown chapter or
    bad parameters, before anything executes.
    """
    import papermill

    config = chapters.resolve(chapter, profile, **(overrides or {}))
    source = Path(source_dir or notebooks_dir()) / f"{chapter}.ipynb"
    if not source.is_file():
        raise ValueError(f"chapter {chapter!r} is declared but its notebook {source} does not exist")
    out_dir = Path(output_dir or book_dir()).resolve()
    target = out_dir / f"{chapter}.ipynb"
    # papermill saves the notebook after every cell, so it runs outside the book folder: under the
    # name it keeps if it fails, moved into the book only when every cell succeeded
    kept = Path(failed or failed_dir())
    kept.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    partial = kept / f"{chapter}-{config.profile}-{stamp}.ipynb"
    kernel_log = partial.with_suffix(".kernel.log")
    began = time.perf_counter()
    try:
        with _environment(BOOK_DIR_ENV, str(out_dir)):
            papermill.execute_notebook(str(source), str(partial), parameters=_papermill_parameters(config),
                                       kernel_name=KERNEL, cwd=str(checkout_root()), progress_bar=progress,
                                       kernel_manager_class=_kernel_manager(kernel_log))
    except KeyboardInterrupt:
        # papermill saved the cells run so far and nbclient shut the kernel down on the way out
        raise ChapterInterrupted(chapter, partial if partial.exists() else None) from None
    except Exception as err:
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
    return RunResult(chapter, config, target, wall)


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
