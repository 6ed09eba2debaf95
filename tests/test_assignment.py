"""The classroom edition: every chapter's objectives, nbgrader exercises and try-it box, and the
teacher's round trip with nbgrader's real CLI (generate_assignment, autograde, the gradebook).

The round trips need nbgrader, which `make test` installs into .venv-classroom (`make classroom`);
without it they fail and say so, rather than skip.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest

from ensembles_lib import chapters, cli
from ensembles_lib.assignment import (ClassroomError, EXERCISE_ROLES, KERNEL, build_assignment, find_nbgrader,
                                      run_nbgrader)
from ensembles_lib.paths import checkout_root

NAMES = chapters.names()
NOTEBOOKS = checkout_root() / "notebooks"
BOOK = checkout_root() / "book"
COMMAND = re.compile(r"`(ensembles (?:run|sweep) [^`]+)`: (reuses|retrains)")
SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def classroom_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if "classroom" in c.metadata]


def exercises(cells: list) -> list[tuple]:
    """(prompt, solution, tests) triples, in order."""
    body = [c for c in cells if c.metadata["classroom"] == "exercise"]
    assert len(body) % 3 == 0, "each exercise is a prompt, a solution cell and a test cell"
    return [tuple(body[i:i + 3]) for i in range(0, len(body), 3)]


@pytest.mark.parametrize("chapter", NAMES)
def test_every_chapter_opens_with_objectives_and_ends_with_try_it(chapter):
    cells = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4).cells
    assert cells[1].metadata.get("classroom") == "objectives"
    assert "Learning objectives" in cells[1].source and cells[1].source.count("\n- ") >= 3
    assert cells[-1].metadata.get("classroom") == "try-it"
    assert 2 <= len(COMMAND.findall(cells[-1].source)) <= 3


@pytest.mark.parametrize("chapter", NAMES)
def test_exercises_are_marked_the_nbgrader_way(chapter):
    triples = exercises(classroom_cells(NOTEBOOKS / f"{chapter}.ipynb"))
    assert 2 <= len(triples) <= 4
    for prompt, solution, tests in triples:
        assert prompt.cell_type == "markdown" and prompt.metadata.nbgrader["locked"]
        assert solution.cell_type == "code" and solution.metadata.nbgrader["solution"]
        assert not solution.metadata.nbgrader["grade"] and SOLUTION.search(solution.source)
        assert "hide-input" in solution.metadata.tags  # folded in the book, under a fold that says what it holds
        assert solution.metadata.mystnb["code_prompt_show"] == "Show the solution"
        assert tests.metadata.mystnb["code_prompt_show"] == "Show the tests"
        grade = tests.metadata.nbgrader
        assert tests.cell_type == "code" and grade["grade"] and grade["locked"] and grade["points"] > 0
        visible, _, rest = tests.source.partition("### BEGIN HIDDEN TESTS")
        assert "assert" in visible and "assert" in rest and "### END HIDDEN TESTS" in rest
        assert grade["grade_id"] == solution.metadata.nbgrader["grade_id"] + "-tests"


def test_grade_ids_are_unique_across_chapters():
    ids = [c.metadata.nbgrader["grade_id"] for name in NAMES for c in classroom_cells(NOTEBOOKS / f"{name}.ipynb")
           if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("chapter", NAMES)
def test_try_it_commands_parse_and_say_truly_whether_they_retrain(chapter):
    box = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4).cells[-1].source
    declared = chapters.chapter(chapter)
    for command, says in COMMAND.findall(box):
        argv = shlex.split(command)[1:]
        args = cli._parser().parse_args(argv)
        assert args.chapter == chapter and args.profile == "cpu"
        if args.command == "run":
            changed = declared.parse(args.parameter)
        else:
            changed = {**cli.parse_grid(chapter, args.parameter), **({"seed": args.seeds} if args.seeds else {})}
        assert changed, f"{command!r} changes nothing"
        retrains = any(declared.param(name).retrains for name in changed)
        assert says == ("retrains" if retrains else "reuses"), command


@pytest.mark.parametrize("chapter", NAMES)
def test_book_pages_hold_the_notebooks_classroom_cells_executed(chapter):
    page, source = classroom_cells(BOOK / f"{chapter}.ipynb"), classroom_cells(NOTEBOOKS / f"{chapter}.ipynb")
    assert [c.source for c in page] == [c.source for c in source], "rerun the chapter into the book"
    for cell in page:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
            assert not any(out.output_type == "error" for out in cell.outputs)


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path):
    course = tmp_path / "course"
    with pytest.raises(ValueError, match="chapter must be one of"):
        build_assignment("nope", course)
    with pytest.raises(ValueError, match="profile must be one of smoke, cpu"):
        build_assignment("tour", course, "gpu")
    with pytest.raises(ValueError, match="name must be a Python identifier"):
        build_assignment("tour", course, name="week 1")
    assert not course.exists()
    assert cli.main(["assignment", "tour", "--course", str(course), "--profile", "paper"]) == 2


def test_missing_nbgrader_is_one_error_that_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENSEMBLES_NBGRADER", str(tmp_path / "no-nbgrader"))
    with pytest.raises(ClassroomError, match="ENSEMBLES_NBGRADER"):
        find_nbgrader()
    assert cli.main(["assignment", "tour", "--course", str(tmp_path / "course")]) == 1
    assert "ENSEMBLES_NBGRADER" in capsys.readouterr().err
    assert not (tmp_path / "course").exists()


# ------------------------------------------------------------------------------- nbgrader round trips


@pytest.fixture(scope="module")
def nbgrader() -> Path:
    try:
        return find_nbgrader()
    except ClassroomError as err:
        pytest.fail(f"{err} (make test installs it)")


def submit(course: Path, student: str, notebook: Path, name: str) -> Path:
    target = course / "submitted" / student / name / notebook.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook, target)
    return target


def gradebook(course: Path) -> dict[tuple[str, str], dict[str, tuple[float, float]]]:
    """{(student, assignment): {grade cell: (auto score, max score)}}, read from nbgrader's sqlite database."""
    with sqlite3.connect(course / "gradebook.db") as db:
        rows = db.execute(
            "SELECT student.id, assignment.name, base_cell.name, grade.auto_score, grade_cells.max_score "
            "FROM grade JOIN grade_cells ON grade.cell_id = grade_cells.id "
            "JOIN base_cell ON base_cell.id = grade_cells.id "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN assignment ON submitted_assignment.assignment_id = assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id").fetchall()
    book: dict = {}
    for student, assignment, cell, score, most in rows:
        book.setdefault((student, assignment), {})[cell] = (score, most)
    return book


def graded_cells(chapter: str) -> set[str]:
    return {t.metadata.nbgrader["grade_id"] for _, _, t in exercises(classroom_cells(NOTEBOOKS / f"{chapter}.ipynb"))}


def wrong_answer(release: Path, target: Path) -> None:
    """The student version with its first solution filled in wrongly (the input handed back)."""
    nb = nbformat.read(release, as_version=4)
    first = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    first.source = first.source.replace("raise NotImplementedError()", "return x.detach().clone()")
    nbformat.write(nb, target)


def test_every_chapters_exercises_grade_full_for_the_solution_and_zero_for_the_blank(tmp_path, nbgrader, monkeypatch):
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "data"))
    course = tmp_path / "course"
    for chapter in NAMES:
        release = build_assignment(chapter, course, exercises_only=True, name=f"{chapter}_exercises")
        name = release.parent.name
        assert nbformat.read(release, as_version=4).metadata.kernelspec.name == KERNEL
        assert "### BEGIN SOLUTION" not in release.read_text() and "BEGIN HIDDEN TESTS" not in release.read_text()
        submit(course, "teacher", course / "source" / name / release.name, name)
        submit(course, "student", release, name)
        if chapter == "tour":
            wrong_answer(release, submit(course, "wrong", release, name))
        run_nbgrader(nbgrader, course, "autograde", name, "--create")
    book = gradebook(course)
    for chapter in NAMES:
        name, cells = f"{chapter}_exercises", graded_cells(chapter)
        teacher, student = book[("teacher", name)], book[("student", name)]
        assert set(teacher) == set(student) == cells
        assert all(score == most > 0 for score, most in teacher.values()), (chapter, teacher)
        assert all(score == 0 for score, _ in student.values()), (chapter, student)
    wrong = book[("wrong", "tour_exercises")]
    assert wrong["tour-fgsm-tests"][0] == 0 and wrong["tour-combine-tests"][0] == 0


@pytest.mark.parametrize("chapter", ["tour", "counter_linked"])
def test_a_whole_chapter_round_trips_at_smoke(tmp_path, nbgrader, monkeypatch, chapter):
    """The full notebook as handed out: the chapter runs in the student's kernel (a blank answer's
    error does not stop the cells after it) and only the exercises are graded."""
    monkeypatch.setenv("ENSEMBLES_DATA_DIR", str(tmp_path / "data"))
    course = tmp_path / "course"
    assert cli.main(["assignment", chapter, "--course", str(course)]) == 0
    release = course / "release" / chapter / f"{chapter}.ipynb"
    submit(course, "teacher", course / "source" / chapter / release.name, chapter)
    submit(course, "student", release, chapter)
    run_nbgrader(nbgrader, course, "autograde", chapter, "--create")
    book = gradebook(course)
    teacher, student = book[("teacher", chapter)], book[("student", chapter)]
    assert set(teacher) == set(student) == graded_cells(chapter)
    assert all(score == most > 0 for score, most in teacher.values())
    assert all(score == 0 for score, _ in student.values())
    # the chapter itself ran to its end for the student too: every cell but the exercises' without error
    graded = nbformat.read(course / "autograded" / "student" / chapter / release.name, as_version=4)
    chapter_cells = [c for c in graded.cells if c.cell_type == "code" and "nbgrader" not in c.metadata]
    assert chapter_cells and all(c.execution_count is not None for c in chapter_cells)
    assert not any(out.output_type == "error" for c in chapter_cells for out in c.outputs)
    assert (tmp_path / "data" / "runs" / "unfiled" / "results" / f"{chapter}.json").is_file()
