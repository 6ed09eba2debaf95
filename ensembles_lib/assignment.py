"""nbgrader assignments from the chapter notebooks: the classroom edition (README, "Teaching").

Every chapter notebook carries its classroom cells, each marked by the cell metadata key
`classroom`: "objectives" (the learning objectives under the title), "exercises" (the section's
opening), "exercise" (a prompt, a solution cell and an autograded test cell with nbgrader's
metadata, `### BEGIN SOLUTION` regions and hidden tests) and "try-it" (the reruns that settle the
page's open questions). `build_assignment` turns a chapter into an nbgrader assignment:

    course/nbgrader_config.py                 written when missing (a teacher's own is kept)
    course/source/<chapter>/<chapter>.ipynb   the instructor's version: the notebook with the profile
                                              injected by papermill, unexecuted, solutions in place
    course/release/<chapter>/<chapter>.ipynb  the student version, made by nbgrader's own
                                              `generate_assignment`: solutions replaced by
                                              `raise NotImplementedError()`, hidden tests removed

The rest of the teacher's round trip is nbgrader's, unchanged: submissions in
course/submitted/<student>/<chapter>/, `nbgrader autograde <chapter>`, scores in the gradebook
(course/gradebook.db, nbgrader's sqlite database).

nbgrader cannot live in the project's environment: torchattacks pins requests~=2.25.1, and nbgrader
0.9 needs requests>=2.26 (and jupyterlab_server, >=2.31), so pip refuses the pair. `make classroom`
installs nbgrader into its own venv, `.venv-classroom`. `find_nbgrader` looks at
$ENSEMBLES_NBGRADER, then that venv, then PATH. The assignment notebooks name the kernel KERNEL, which
`install_kernel` registers in nbgrader's environment to start this project's interpreter, so
autograding runs them with torch and ensembles_lib. With `exercises_only`, an assignment holds the
title, objectives and exercises alone: no data, no training, graded in seconds.
Used by `ensembles assignment` and tests/test_assignment.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nbformat

from . import chapters
from .paths import atomic_path, checkout_root
from .runner import notebooks_dir

ASSIGNMENT_PROFILES = ("smoke", "cpu")  # the profiles a classroom machine can run
NBGRADER_ENV = "ENSEMBLES_NBGRADER"
CLASSROOM_VENV = ".venv-classroom"
KERNEL = "robust-ensembles"
COURSE_ID = "robust-ensembles"
CELL_TIMEOUT_S = 3600  # nbgrader's default of 30 s per cell is shorter than a cpu chapter's training cell
EXERCISE_ROLES = ("objectives", "exercises", "exercise")
CONFIG = f'''\
# nbgrader's configuration for a course built by `ensembles assignment` (edit freely: it is kept).
c = get_config()  # noqa: F821 (nbgrader defines it)
c.CourseDirectory.course_id = "{COURSE_ID}"
# a cpu chapter trains for minutes in one cell
c.Execute.timeout = {CELL_TIMEOUT_S}
'''


class ClassroomError(RuntimeError):
    """nbgrader is missing or one of its commands failed; the message says which and what to do."""


def find_nbgrader() -> Path:
    """The nbgrader executable: $ENSEMBLES_NBGRADER, else .venv-classroom/bin/nbgrader in the
    checkout (`make classroom`), else `nbgrader` on PATH. ClassroomError when none exists."""
    given = os.environ.get(NBGRADER_ENV)
    if given:
        if not Path(given).is_file():
            raise ClassroomError(f"{NBGRADER_ENV}={given} is not a file; point it at an nbgrader executable")
        return Path(given)
    local = checkout_root() / CLASSROOM_VENV / "bin" / "nbgrader"
    if local.is_file():
        return local
    found = shutil.which("nbgrader")
    if found:
        return Path(found)
    raise ClassroomError(f"nbgrader not found: run `make classroom` (nbgrader in {CLASSROOM_VENV}/), or set "
                         f"{NBGRADER_ENV} to an nbgrader executable")


def install_kernel(nbgrader: Path) -> Path:
    """Register KERNEL, which starts this interpreter (sys.executable), in nbgrader's environment;
    returns the kernelspec's folder. Rewritten each time, so it follows a moved checkout."""
    from ipykernel.kernelspec import install

    # <prefix>/bin/nbgrader in a venv, conda env, ~/.local or /usr/local alike; Jupyter looks for kernels
    # in <prefix>/share/jupyter/kernels in each of them
    prefix = Path(nbgrader).absolute().parent.parent
    try:
        return Path(install(kernel_name=KERNEL, display_name=f"Python ({KERNEL})", prefix=str(prefix)))
    except OSError as err:
        raise ClassroomError(f"cannot register the kernel {KERNEL!r} under {prefix}: {err}") from err


def instructor_notebook(chapter: str, profile: str, exercises_only: bool = False) -> nbformat.NotebookNode:
    """notebooks/<chapter>.ipynb with `profile` injected as papermill would (unexecuted) and the
    kernel set to KERNEL; with exercises_only, only its title and classroom exercise cells."""
    from papermill.iorw import load_notebook_node  # gives every cell the `tags` papermill looks for
    from papermill.parameterize import parameterize_notebook

    path = notebooks_dir() / f"{chapter}.ipynb"
    if not path.is_file():
        raise ValueError(f"chapter {chapter!r} is declared but its notebook {path} does not exist")
    nb = load_notebook_node(str(path))
    if exercises_only:
        nb.cells = nb.cells[:1] + [c for c in nb.cells[1:] if c.metadata.get("classroom") in EXERCISE_ROLES]
    else:
        nb = parameterize_notebook(nb, {"profile": profile}, kernel_name="python3", language="python")
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": f"Python ({KERNEL})", "language": "python"}
    return nb


def build_assignment(chapter: str, course: Path | str, profile: str = "smoke", *, exercises_only: bool = False,
                     name: str | None = None) -> Path:
    """Lay out `course` for chapter's assignment (named `name`, default the chapter) at `profile`
    (smoke or cpu) and run nbgrader's `generate_assignment`; returns the student version's path,
    course/release/<name>/<chapter>.ipynb. ValueError naming the parameter for an unknown chapter
    or profile, before anything is written; ClassroomError when nbgrader is missing or fails."""
    chapters.chapter(chapter)
    if profile not in ASSIGNMENT_PROFILES:
        raise ValueError(f"profile must be one of {', '.join(ASSIGNMENT_PROFILES)} for an assignment, got {profile!r}")
    name = name or chapter
    if not name.isidentifier():
        raise ValueError(f"name must be a Python identifier (nbgrader's assignment id), got {name!r}")
    notebook = instructor_notebook(chapter, profile, exercises_only)
    nbgrader = find_nbgrader()
    install_kernel(nbgrader)
    course = Path(course).expanduser().resolve()
    source = course / "source" / name / f"{chapter}.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    config = course / "nbgrader_config.py"
    if not config.exists():
        with atomic_path(config, suffix=".py") as tmp:
            tmp.write_text(CONFIG)
    with atomic_path(source, suffix=".ipynb") as tmp:
        nbformat.write(notebook, tmp)
    run_nbgrader(nbgrader, course, "generate_assignment", name, "--force")
    return course / "release" / name / f"{chapter}.ipynb"


def run_nbgrader(nbgrader: Path, course: Path, *args: str) -> str:
    """Run `nbgrader ARGS` in `course`; its output, or ClassroomError with its last lines. nbgrader's
    folder leads PATH, since nbgrader starts tools of its environment (alembic) by name."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(nbgrader).parent), os.environ.get("PATH", "")])}
    done = subprocess.run([str(nbgrader), *args], cwd=course, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ClassroomError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}) in {course}:\n{tail}")
    return done.stdout + done.stderr

