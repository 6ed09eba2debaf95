"""The runner and the `ensembles run|runs|book|list` commands, on small throw-away chapters.

The chapters here are declared for the test only and live in a temporary notebooks folder; their
pages go to a temporary book folder and their run folders to a temporary runs folder, so nothing
under the real book/ is touched. The test that real chapters leave `git status book/` clean runs
in a copy of the checkout.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from ensembles_lib import cli, profiles, runner
from ensembles_lib.chapters import CHAPTERS
from ensembles_lib.paths import DATA_DIR_ENV, checkout_root
from ensembles_lib.profiles import Chapter, Param

PROBE = """
import json, os, sys
print(json.dumps({"executable": sys.executable, "cwd": os.getcwd(), "book": os.environ.get("ENSEMBLES_BOOK_DIR"),
                  "profile": profile, "scale": scale, "grid": grid and list(grid)}))
"""


def _notebook(path: Path, *cells: str) -> Path:
    """A chapter notebook: a `parameters` cell, then `cells` as code cells."""
    params = new_code_cell('profile = "auto"\nscale = None\ngrid = None', metadata={"tags": ["parameters"]})
    nb = new_notebook(cells=[params] + [new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


@pytest.fixture
def chapters(tmp_path, monkeypatch):
    """Declare the chapters `probe` and `boom`, with notebooks in tmp/notebooks and pages in tmp/book."""
    declared = (Param("scale", "float", {"smoke": 1.0, "cpu": 2.0, "gpu": 3.0, "paper": 4.0}, "a factor", minimum=0.0),
                Param("grid", "floats", (0.0, 0.5), "a grid", minimum=0.0, maximum=1.0))
    monkeypatch.setitem(CHAPTERS, "probe", Chapter("probe", declared))
    monkeypatch.setitem(CHAPTERS, "boom", Chapter("boom", declared))
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "probe.ipynb", PROBE)
    _notebook(source / "boom.ipynb", "x = 41", "raise RuntimeError(f'exploded at {x + 1}')", "print('never')")
    book = tmp_path / "book"
    book.mkdir()
    failed, runs = tmp_path / "failed", tmp_path / "runs"
    for name, default in (("notebooks_dir", source), ("failed_dir", failed), ("runs_dir", runs)):
        monkeypatch.setattr(runner, name, lambda default=default: default)
    monkeypatch.setenv("ENSEMBLES_BOOK_DIR", str(book))
    return {"source": source, "book": book, "failed": failed, "runs": runs}


def _probe_output(page: Path) -> dict:
    nb = nbformat.read(page, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout" and output["text"].startswith("{"):
                return json.loads(output["text"])
    raise AssertionError("the probe printed nothing")


def test_run_injects_typed_parameters_into_the_venv_kernel(chapters):
    result = runner.run("probe", "smoke", {"grid": (0.25, 0.75)})
    # a changed parameter: its own run folder, named by chapter, profile and the changed values
    folder = chapters["runs"].resolve() / runner.run_name(result.config)
    assert result.folder == folder and not result.to_book
    assert result.output == folder / "probe.ipynb" and result.wall_time_s > 0
    assert folder.name.startswith("probe-smoke-") and folder.name != "probe-smoke-defaults"
    seen = _probe_output(result.output)
    # the kernel is this interpreter (the venv's), working in the checkout, writing to the run folder
    assert Path(seen["executable"]).resolve() == Path(sys.executable).resolve()
    assert Path(seen["cwd"]).resolve() == checkout_root().resolve()
    assert Path(seen["book"]).resolve() == folder
    # the concrete profile and the overrides reach the notebook; unset ones stay None (profile default)
    assert seen == {**seen, "profile": "smoke", "scale": None, "grid": [0.25, 0.75]}
    assert sorted(p.name for p in folder.iterdir()) == ["probe.ipynb", "run.json"]  # no temporary file left
    assert not list(chapters["book"].iterdir())  # the book is left alone
    assert not list(chapters["failed"].iterdir())  # nor a partial notebook or a kernel log
    recorded = nbformat.read(result.output, as_version=4).metadata.papermill
    assert recorded.output_path == str(result.output) and recorded.parameters == {"profile": "smoke", "grid": [0.25, 0.75]}
    record = json.loads((folder / "run.json").read_text())
    assert record == {**record, "chapter": "probe", "profile": "smoke", "parameters": {"grid": [0.25, 0.75]},
                      "notebook": "probe.ipynb", "results": None}
    assert record["wall_time_s"] == round(result.wall_time_s, 1) and record["started"].startswith("20")


def test_only_the_profiles_own_default_run_replaces_the_book_page(chapters):
    book, runs = chapters["book"], chapters["runs"].resolve()
    first = runner.run("probe", "smoke")  # no page yet: the profile's own run with default values
    assert first.to_book and first.output == book.resolve() / "probe.ipynb"
    assert runner.page_profile(first.output) == "smoke"
    page = first.output.read_bytes()
    # the same changes land in the same folder; other changes in another; the page stays as it was
    again = runner.run("probe", "smoke", {"scale": 0.5})
    assert runner.run("probe", "smoke", {"scale": 0.5}).folder == again.folder
    assert runner.run("probe", "smoke", {"scale": 0.25}).folder != again.folder
    # a default run of another profile than the page's does not replace it either
    other = runner.plan("probe", "cpu")
    assert not other.to_book and other.folder == runs / "probe-cpu-defaults"
    assert "the book's page is a smoke run" in other.reason
    assert first.output.read_bytes() == page and [p.name for p in book.iterdir()] == ["probe.ipynb"]
    # unless asked: --to-book replaces the page with a changed run, --no-book keeps a default one out
    forced = runner.run("probe", "cpu", {"scale": 0.5}, to_book=True)
    assert forced.to_book and runner.page_profile(forced.output) == "cpu"
    assert not runner.plan("probe", "cpu", to_book=False).to_book
    assert runner.plan("probe", "cpu").to_book  # the page is now cpu's: its own default run replaces it
    listed = runner.list_runs()
    assert sorted(r["parameters"]["scale"] for r in listed) == [0.25, 0.5]  # one folder per set of changes
    assert all(r["complete"] and r["chapter"] == "probe" for r in listed)


def test_cli_runs_lists_run_folders_in_aligned_columns(chapters, capsys):
    assert cli.main(["runs"]) == 0
    assert "no run folders under" in capsys.readouterr().out
    runner.run("probe", "smoke", {"scale": 0.5})
    runner.run("probe", "cpu", {"grid": (0.1, 0.2)})
    (chapters["runs"] / "probe-gpu-deadbeef").mkdir()  # a run that never completed
    (chapters["runs"] / "unfiled" / "results").mkdir(parents=True)  # where plain papermill runs write: no run
    assert cli.main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows, unfinished = lines[0], lines[1:3], lines[3]
    assert header.split() == ["chapter", "profile", "parameters", "when", "(UTC)", "wall", "path"]
    assert [r.split()[:3] for r in rows] == [["probe", "smoke", "scale=0.5"], ["probe", "cpu", "grid=0.1,0.2"]]
    for column in ("profile", "parameters", "when", "wall", "path"):
        at = header.index(column)
        assert all(r[at - 2:at] == "  " and r[at] != " " for r in rows), column
    assert rows[0].endswith(str(chapters["runs"].resolve() / runner.run_name(resolve_probe("smoke", scale=0.5))))
    assert "1 folder(s) with no completed run" in unfinished and "probe-gpu-deadbeef" in unfinished
    assert cli.main(["runs", "tour"]) == 0 and "no run folders" in capsys.readouterr().out
    assert cli.main(["runs", "tuor"]) == 2 and "chapter must be one of" in capsys.readouterr().err


def resolve_probe(profile: str, **overrides):
    return CHAPTERS["probe"].resolve(profile, **overrides)


def test_progress_names_the_chapter_cell_section_and_times(chapters):
    nb = nbformat.read(chapters["source"] / "probe.ipynb", as_version=4)
    nb.cells[1:1] = [new_markdown_cell("# Probe\n\nprose"), new_markdown_cell("## The `second` part")]
    nb.cells.append(new_code_cell("import sys; print('a bar', file=sys.stderr)"))
    nbformat.write(nb, chapters["source"] / "probe.ipynb")
    stream = io.StringIO()
    runner.run("probe", "smoke", progress=stream)
    lines = stream.getvalue().splitlines()
    # the parameters cell, papermill's injected cell, the two code cells: each names its section
    assert [line.split("  ")[-1] for line in lines] == ["parameters", "parameters given to this run",
                                                          "The second part", "The second part"]
    assert all(line.startswith("  probe ") and " of no estimate  cell " in line for line in lines)
    assert [line.split("cell ")[1].split()[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert "a bar" not in stream.getvalue()  # stderr is forwarded to a terminal only


def test_progress_shows_the_declared_expected_time(chapters, monkeypatch):
    monkeypatch.setitem(CHAPTERS, "probe", Chapter("probe", CHAPTERS["probe"].params, minutes={"smoke": 2}))
    stream = io.StringIO()
    runner.run("probe", "smoke", progress=stream)
    assert " of ~2 min  cell 1/3" in stream.getvalue()
    assert runner.expected_minutes("tour", "cpu") == 3  # the real chapters' MINUTES


def test_bad_parameters_fail_before_a_kernel_starts(chapters, monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("papermill must not start"))
    with pytest.raises(ValueError, match=r"parameter grid must be a list of numbers in \[0.0, 1.0\]"):
        runner.run("probe", "smoke", {"grid": [2.0]})
    with pytest.raises(ValueError, match=r"no parameter 'scal' \(did you mean scale\?\)"):
        runner.run("probe", "smoke", {"scal": 1.0})
    with pytest.raises(ValueError, match="chapter must be one of .*probe"):
        runner.run("nope", "smoke")


def test_failing_cell_keeps_the_previous_page_and_the_partial_notebook(chapters):
    previous = chapters["book"] / "boom.ipynb"
    previous.write_text("the last good page")
    with pytest.raises(runner.ChapterFailed) as failure:
        runner.run("boom", "smoke")
    message = str(failure.value)
    assert "raise RuntimeError(f'exploded at {x + 1}')" in message and "RuntimeError: exploded at 42" in message
    assert previous.read_text() == "the last good page"
    assert [p.name for p in chapters["book"].iterdir()] == ["boom.ipynb"]
    kept = failure.value.partial
    assert kept.parent == chapters["failed"] and kept.name.startswith("boom-smoke-")
    # the kernel's own stderr went beside the partial notebook, not to the terminal
    assert kept.with_suffix(".kernel.log").is_file() and str(kept) in message
    # without ipykernel's warning about local TCP, which says nothing about the failure
    assert "without encryption" not in kept.with_suffix(".kernel.log").read_text()
    cells = nbformat.read(kept, as_version=4).cells
    assert any(o.get("ename") == "RuntimeError" for c in cells for o in c.get("outputs", []))
    assert not any("never" in o.get("text", "") for c in cells for o in c.get("outputs", []))


def test_cli_run_converts_strings_and_reports_success(chapters, capfd):
    assert cli.main(["run", "probe", "--profile", "cpu", "-p", "scale", "0.5", "-p", "grid", "0.1,0.2"]) == 0
    out, err = capfd.readouterr()
    (folder,) = chapters["runs"].iterdir()
    assert f"-> {folder.resolve()}/ (parameters changed: scale, grid; the book is left alone" in out
    assert f"wrote {folder.resolve() / 'probe.ipynb'}" in out
    assert "  probe   0:0" in err and "cell 3/3" in err  # progress, on stderr
    assert "without encryption" not in out + err  # the kernel's own warning stays out of the terminal
    seen = _probe_output(folder / "probe.ipynb")
    assert (seen["profile"], seen["scale"], seen["grid"]) == ("cpu", 0.5, [0.1, 0.2])
    assert not list(chapters["book"].iterdir())
    assert cli.main(["run", "probe", "--profile", "cpu", "-p", "scale", "0.5", "--to-book"]) == 0
    assert "asked for the book" in capfd.readouterr().out and (chapters["book"] / "probe.ipynb").is_file()


def test_cli_run_rejects_bad_parameters_with_exit_2(chapters, capsys, monkeypatch):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    assert cli.main(["run", "probe", "-p", "scale", "-1"]) == 2
    assert "parameter scale must be a number, at least 0.0, got -1.0" in capsys.readouterr().err
    assert cli.main(["run", "probe", "-p", "scale", "big"]) == 2
    assert "parameter scale must be a number, at least 0.0, got 'big'" in capsys.readouterr().err
    assert cli.main(["run", "tuor"]) == 2
    assert "chapter must be one of" in capsys.readouterr().err
    assert cli.main(["run", "probe", "--profile", "fast"]) == 2
    assert "profile must be one of 'auto', 'smoke'" in capsys.readouterr().err


def test_cli_run_of_a_chapter_without_a_notebook_is_one_line(chapters, capsys):
    (chapters["source"] / "probe.ipynb").unlink()
    assert cli.main(["run", "probe", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ensembles run: chapter 'probe' is declared but its notebook") and len(err.splitlines()) == 1


def test_cli_run_failure_exits_1_and_prints_the_cell(chapters, capsys):
    assert cli.main(["run", "boom", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "failing cell" in err and "raise RuntimeError" in err and "exploded at 42" in err
    assert not (chapters["book"] / "boom.ipynb").exists()


def test_cli_list_shows_parameters_defaults_retraining_and_run_times_in_aligned_columns(chapters, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    blocks = {block.splitlines()[0].split()[0]: block.splitlines()[1:] for block in out.strip().split("\n\n")}
    probe = blocks["probe"]
    header, times, rows = probe[0], probe[1], probe[2:]
    assert header.split() == ["parameter", "retrains", "smoke", "cpu", "gpu", "paper", "meaning;", "accepts"]
    assert times.split() == ["(run", "time)"] + ["not", "measured"] * 4  # the test chapter declares none
    assert rows[0].split()[:6] == ["scale", "no", "1.0", "2.0", "3.0", "4.0"]
    assert rows[0].endswith("a factor; a number, at least 0.0") and rows[1].split()[2] == "0,0.5"
    for column in ("retrains", "smoke", "cpu", "gpu", "paper", "meaning"):
        at = header.index(column)
        filled = rows + ([times] if column in profiles.PROFILES else [])
        assert all(line[at - 2:at] == "  " and line[at] != " " for line in filled), column
    tour = {line.split()[0]: line for line in blocks["tour"][2:]}
    assert tour["epochs"].split()[1] == "yes" and tour["eps"].split()[1] == "no"
    assert blocks["tour"][1].split()[2:6] == ["~1", "min", "~3", "min"]  # smoke and cpu measured
    # a grid of more than four budgets is shortened, keeping its ends and its length
    assert "0,0.01,…,0.1 (6)" in tour["eps_grid"]
    assert "retrains yes: changing it trains the models anew" in out


def test_cli_book_runs_chapters_then_builds(chapters, capsys, monkeypatch):
    import ensembles_lib.book as book

    calls = []
    monkeypatch.setattr(cli, "run_chapter",
                        lambda c, p, o, to_book=None: calls.append(("run", c, p, to_book)) or (1 if c == "boom" else 0))
    monkeypatch.setattr(book, "build_html", lambda *a, **k: calls.append(("build",)) or Path("/tmp/index.html"))
    assert cli.main(["book", "--profile", "smoke", "--chapters", "probe"]) == 0
    assert calls == [("run", "probe", "smoke", True), ("build",)]  # the book's own runs replace its pages
    calls.clear()
    # a failed chapter keeps its old page: the book is still built, the exit status says it failed
    assert cli.main(["book", "--profile", "smoke", "--chapters", "probe", "boom"]) == 1
    assert calls == [("run", "probe", "smoke", True), ("run", "boom", "smoke", True), ("build",)]
    assert "boom" in capsys.readouterr().err
    calls.clear()
    assert cli.main(["book", "--chapters", "nope"]) == 2 and calls == []


# --------------------------------------------------------------------------- failing fast and clearly at the edge

# runs one `ensembles` command in a fresh interpreter, then says whether torch had been imported
TORCH_PROBE = ("import sys\nfrom ensembles_lib.cli import main\nstatus = main(sys.argv[1:])\n"
               "print('torch imported:', 'torch' in sys.modules)\nsys.exit(status)")


@pytest.mark.parametrize("argv, message", [
    (["run", "tour", "-p", "epochs", "-3"], r"parameter epochs must be an int in [1, 1000], got -3"),
    (["run", "tour", "-p", "epsilon", "0.1"], r"tour has no parameter 'epsilon' (did you mean eps?)"),
    (["run", "tour", "-p", "seed", "99999999999999999999999"], r"parameter seed must be an int in [0, 4294957295]"),
    (["run", "tuor"], r"chapter must be one of 'counter_linked', 'dverge', 'sq_ensembles', 'strength_in_numbers', 'tour', 'trend', got 'tuor'"),
    (["run", "tour", "--profile", "fast"], r"profile must be one of 'auto', 'smoke', 'cpu', 'gpu', 'paper'"),
])
def test_usage_errors_are_one_line_with_exit_2_before_torch_is_imported(argv, message):
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TORCH_PROBE, *argv], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - began
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("ensembles run: ")
    assert message in done.stderr
    assert "torch imported: False" in done.stdout, f"torch was imported before the error ({seconds:.2f} s)"


def test_the_package_imports_torch_only_when_ensemble_is_first_used():
    probe = ("import sys, ensembles_lib\nprint('torch' in sys.modules)\nfrom ensembles_lib import Ensemble\n"
             "print('torch' in sys.modules, Ensemble.__module__)\nensembles_lib.Missing")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["False", "True ensembles_lib.ensembles"]
    assert "AttributeError: module 'ensembles_lib' has no attribute 'Missing'" in done.stderr


def test_the_installed_command_reports_a_bad_parameter_in_one_line():
    command = Path(sys.executable).with_name("ensembles")
    done = subprocess.run([str(command), "run", "tour", "-p", "epochs", "-3"], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "ensembles run: parameter epochs must be an int in [1, 1000], got -3\n"


@pytest.mark.parametrize("argv", [["run", "tour", "--profile", "smoke"], ["data", "digits"],
                                  ["book", "--profile", "smoke", "--chapters", "tour"]])
def test_an_unusable_data_root_is_one_line_naming_it(argv, tmp_path, monkeypatch, capsys):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data root should be")
    monkeypatch.setenv(DATA_DIR_ENV, str(not_a_folder))
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"ensembles {argv[0]}: ") and str(not_a_folder) in captured.err
    assert DATA_DIR_ENV in captured.err


NAP = """
import signal, sys
from pathlib import Path

signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal (a background job ignores it)
from ensembles_lib import cli, runner
from ensembles_lib.chapters import CHAPTERS
from ensembles_lib.profiles import Chapter

CHAPTERS["nap"] = Chapter("nap", ())
runner.notebooks_dir = lambda: Path(sys.argv[1])
runner.failed_dir = lambda: Path(sys.argv[2])
sys.exit(cli.main(["run", "nap", "--profile", "smoke"]))
"""


def test_ctrl_c_keeps_the_partial_notebook_says_where_and_exits_130(tmp_path):
    source, failed, pid_file = tmp_path / "notebooks", tmp_path / "failed", tmp_path / "kernel.pid"
    source.mkdir()
    nb = new_notebook(cells=[new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
                             new_code_cell(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                           "print('started')"),
                             new_code_cell("time.sleep(120)\nprint('never')")],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, source / "nap.ipynb")
    env = {**os.environ, "ENSEMBLES_BOOK_DIR": str(tmp_path / "book")}
    process = subprocess.Popen([sys.executable, "-c", NAP, str(source), str(failed)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while not (pid_file.exists() and pid_file.read_text()) and process.poll() is None:
            assert time.monotonic() < deadline, "the kernel never ran the first cell"
            time.sleep(0.2)
        time.sleep(0.5)  # into the sleeping cell
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    (partial,) = failed.glob("nap-smoke-*.ipynb")
    # progress lines, then one line saying where the partial notebook is
    assert err.splitlines()[-1] == f"ensembles run: chapter 'nap' interrupted; the partial notebook is kept at {partial}"
    assert all(line.startswith("  nap ") for line in err.splitlines()[:-1])
    cells = nbformat.read(partial, as_version=4).cells
    (first,) = [c for c in cells if "print('started')" in c.source]
    assert any("started" in o.get("text", "") for o in first.outputs)
    assert not any("never" in o.get("text", "") for c in cells for o in c.get("outputs", []))
    assert not (tmp_path / "book").exists()
    kernel = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the kernel was shut down, not left running the cell
        os.kill(kernel, 0)


def test_cli_params_prints_the_cell_and_writes_it_into_the_notebook(chapters, capsys, monkeypatch):
    assert cli.main(["params", "probe"]) == 0
    cell = CHAPTERS["probe"].parameters_cell()
    assert capsys.readouterr().out == cell + "\n"
    assert "scale = None  # a factor; a number, at least 0.0" in cell
    path = chapters["source"] / "probe.ipynb"
    before = nbformat.read(path, as_version=4)
    assert cli.main(["params", "probe", "--write"]) == 0
    after = nbformat.read(path, as_version=4)
    assert after.cells[0].source == cell and after.cells[0].metadata.tags == ["parameters"]
    assert [c.source for c in after.cells[1:]] == [c.source for c in before.cells[1:]]
    assert cli.main(["params", "tuor"]) == 2
    assert "chapter must be one of" in capsys.readouterr().err


# --------------------------------------------------------------------------- results records


def _claim(**changes) -> dict:
    return {"id": "c1", "claim": "PGD is at least as strong as FGSM", "paper": "—", "ours": 0.25,
            "holds": True, "note": "", **changes}


def test_write_then_load_results_round_trip(tmp_path, monkeypatch):
    import numpy as np

    from ensembles_lib.results import load_results, results_dir, write_results

    monkeypatch.setenv("ENSEMBLES_BOOK_DIR", str(tmp_path / "book"))
    assert results_dir() == tmp_path / "book" / "results"
    path = write_results("tour", "smoke", "digits", np.float64(12.345),
                         [_claim(ours=np.float32(0.5), holds=np.bool_(False)),
                          _claim(id="c2", paper=0.97, ours="0.14 (196 images)", holds=None, note="too few images")])
    assert path == tmp_path / "book" / "results" / "tour.json"
    write_results("abc", "cpu", "fashion_mnist", 3, [_claim()])
    records = load_results()
    assert [r["chapter"] for r in records] == ["abc", "tour"]
    tour = records[1]
    assert tour["wall_time_s"] == 12.3 and tour["claims"][0]["ours"] == 0.5 and tour["claims"][0]["holds"] is False
    assert tour["claims"][1] == _claim(id="c2", paper=0.97, ours="0.14 (196 images)", holds=None, note="too few images")
    assert json.loads(path.read_text()) == tour
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.json", "tour.json"]  # no temporary files


@pytest.mark.parametrize("claims, message", [
    ([], "claims must be a non-empty list"),
    ([_claim(holds="yes")], r"claims\[0\]\['holds'\] must be True, False or None"),
    ([_claim(holds=None)], r"claims\[0\]: holds is None, so 'note' must say why"),
    ([_claim(), _claim()], "ids must be distinct"),
    ([{"id": "c1", "claim": "x"}], r"claims\[0\] must have exactly the keys id, claim, paper, ours, holds, note"),
    ([_claim(ours=float("nan"))], r"claims\[0\]\['ours'\] must be a string or a finite number"),
    ([_claim(claim=" ")], r"claims\[0\]\['claim'\] must be a non-empty string"),
])
def test_write_results_rejects_malformed_claims(tmp_path, claims, message):
    from ensembles_lib.results import write_results

    with pytest.raises(ValueError, match=message):
        write_results("tour", "smoke", "digits", 1.0, claims, folder=tmp_path)
    assert not list(tmp_path.iterdir())


def test_write_results_rejects_bad_record_fields(tmp_path):
    from ensembles_lib.results import write_results

    with pytest.raises(ValueError, match=r"wall_time_s \(seconds\) must be a number >= 0, got -1"):
        write_results("tour", "smoke", "digits", -1, [_claim()], folder=tmp_path)
    with pytest.raises(ValueError, match="profile must be a non-empty string"):
        write_results("tour", "", "digits", 1, [_claim()], folder=tmp_path)


def test_load_results_names_a_malformed_file(tmp_path):
    from ensembles_lib.results import load_results

    assert load_results(tmp_path / "absent") == []
    (tmp_path / "bad.json").write_text(json.dumps({"chapter": "bad", "claims": []}))
    with pytest.raises(ValueError, match=r"bad.json: a results record must have exactly the keys"):
        load_results(tmp_path)


# --------------------------------------------------------------------------- the book stays as committed


def _copy_of_the_checkout(root: Path) -> Path:
    """The checkout's files (tracked, and untracked but not ignored) in `root`, committed into a
    repository of its own, so `git status` there says what a run changed."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=checkout_root(),
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = checkout_root() / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run(git + command, cwd=root, check=True, capture_output=True)
    return root


def test_a_papermill_run_and_a_changed_run_leave_the_book_as_committed(tmp_path):
    """The issue's check: `git status book/` stays clean after a plain papermill run of a chapter
    and after `ensembles run` with a changed parameter; both results land under the data root."""
    copy, data = _copy_of_the_checkout(tmp_path / "checkout"), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k != "ENSEMBLES_BOOK_DIR"}
    # the copy's package (ahead of the editable install) in this process's children and the kernel
    env.update(PYTHONPATH=str(copy), ENSEMBLES_DATA_DIR=str(data), OMP_NUM_THREADS="1")
    which = subprocess.run([sys.executable, "-c", "from ensembles_lib.paths import checkout_root; print(checkout_root())"],
                           cwd=copy, env=env, capture_output=True, text=True, check=True)
    assert Path(which.stdout.strip()) == copy
    papermill_run = [sys.executable, "-m", "papermill", "notebooks/tour.ipynb", str(tmp_path / "tour.ipynb"),
                     "-p", "profile", "smoke", "-k", "python3", "--no-progress-bar"]
    changed_run = [sys.executable, "-m", "ensembles_lib.cli", "run", "tour", "--profile", "smoke", "-p", "eps", "0.05"]
    for command in (papermill_run, changed_run):
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        status = subprocess.run(["git", "status", "--porcelain", "book/"], cwd=copy, capture_output=True, text=True)
        assert status.stdout == "", f"{command[2:4]} changed the book:\n{status.stdout}"
    assert (data / "runs" / "unfiled" / "results" / "tour.json").is_file()  # the plain papermill run's results
    (folder,) = [p for p in (data / "runs").iterdir() if p.name.startswith("tour-smoke-")]
    assert (folder / "tour.ipynb").is_file() and json.loads((folder / "results" / "tour.json").read_text())["profile"] == "smoke"
    assert json.loads((folder / "run.json").read_text())["parameters"] == {"eps": 0.05}
    assert "without encryption" not in done.stderr and f"-> {folder}/" in done.stdout


def test_make_book_does_not_reinstall_once_installed():
    if not (checkout_root() / ".venv" / ".installed").exists():
        pytest.skip("not installed with `make install`: the first `make book` installs")
    planned = subprocess.run(["make", "-n", "book"], cwd=checkout_root(), capture_output=True, text=True, timeout=60)
    assert planned.returncode == 0, planned.stderr
    assert "pip install" not in planned.stdout and "ensembles book --profile auto" in planned.stdout
