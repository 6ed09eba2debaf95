"""The runner and the `ensembles run|book|list` commands, on small throw-away chapters.

The chapters here are declared for the test only and live in a temporary notebooks folder; their
pages go to a temporary book folder, so nothing under the real book/ is touched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from ensembles_lib import cli, profiles, runner
from ensembles_lib.paths import checkout_root
from ensembles_lib.profiles import Param

PROBE = """
import json, os, sys
print(json.dumps({"executable": sys.executable, "cwd": os.getcwd(), "book": os.environ.get("ENSEMBLES_BOOK_DIR"),
                  "profile": profile, "scale": scale, "grid": list(grid)}))
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
    monkeypatch.setitem(profiles._registry(), "probe", declared)
    monkeypatch.setitem(profiles._registry(), "boom", declared)
    source = tmp_path / "notebooks"
    source.mkdir()
    _notebook(source / "probe.ipynb", PROBE)
    _notebook(source / "boom.ipynb", "x = 41", "raise RuntimeError(f'exploded at {x + 1}')", "print('never')")
    book = tmp_path / "book"
    book.mkdir()
    failed = tmp_path / "failed"
    for name, default in (("notebooks_dir", source), ("failed_dir", failed)):
        monkeypatch.setattr(runner, name, lambda default=default: default)
    monkeypatch.setenv("ENSEMBLES_BOOK_DIR", str(book))
    return {"source": source, "book": book, "failed": failed}


def _probe_output(page: Path) -> dict:
    nb = nbformat.read(page, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout" and output["text"].startswith("{"):
                return json.loads(output["text"])
    raise AssertionError("the probe printed nothing")


def test_run_injects_typed_parameters_into_the_venv_kernel(chapters):
    result = runner.run("probe", "smoke", {"grid": (0.25, 0.75)})
    assert result.output == chapters["book"] / "probe.ipynb" and result.wall_time_s > 0
    seen = _probe_output(result.output)
    # the kernel is this interpreter (the venv's), working in the checkout, writing to the test's book
    assert Path(seen["executable"]).resolve() == Path(sys.executable).resolve()
    assert Path(seen["cwd"]).resolve() == checkout_root().resolve()
    assert Path(seen["book"]).resolve() == chapters["book"].resolve()
    # the concrete profile and the overrides reach the notebook; unset ones stay None (profile default)
    assert seen == {**seen, "profile": "smoke", "scale": None, "grid": [0.25, 0.75]}
    assert [p.name for p in chapters["book"].iterdir()] == ["probe.ipynb"]  # no temporary file left
    recorded = nbformat.read(result.output, as_version=4).metadata.papermill
    assert recorded.output_path == str(result.output) and recorded.parameters == {"profile": "smoke", "grid": [0.25, 0.75]}


def test_bad_parameters_fail_before_a_kernel_starts(chapters, monkeypatch):
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("papermill must not start"))
    with pytest.raises(ValueError, match=r"parameter grid must be numbers.*\[0.0, 1.0\]"):
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
    cells = nbformat.read(kept, as_version=4).cells
    assert any(o.get("ename") == "RuntimeError" for c in cells for o in c.get("outputs", []))
    assert not any("never" in o.get("text", "") for c in cells for o in c.get("outputs", []))


def test_cli_run_converts_strings_and_reports_success(chapters, capsys):
    assert cli.main(["run", "probe", "--profile", "cpu", "-p", "scale", "0.5", "-p", "grid", "0.1,0.2"]) == 0
    assert "wrote" in capsys.readouterr().out
    seen = _probe_output(chapters["book"] / "probe.ipynb")
    assert (seen["profile"], seen["scale"], seen["grid"]) == ("cpu", 0.5, [0.1, 0.2])


def test_cli_run_rejects_bad_parameters_with_exit_2(chapters, capsys, monkeypatch):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run"))
    assert cli.main(["run", "probe", "-p", "scale", "-1"]) == 2
    assert "parameter scale must be a number >= 0.0, got -1.0" in capsys.readouterr().err
    assert cli.main(["run", "probe", "-p", "scale", "big"]) == 2
    assert "parameter scale must be a number >= 0.0, got 'big'" in capsys.readouterr().err
    assert cli.main(["run", "tuor"]) == 2
    assert "chapter must be one of" in capsys.readouterr().err
    assert cli.main(["run", "probe", "--profile", "fast"]) == 2
    assert "profile must be one of 'auto', 'smoke'" in capsys.readouterr().err


def test_cli_run_failure_exits_1_and_prints_the_cell(chapters, capsys):
    assert cli.main(["run", "boom", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert "failing cell" in err and "raise RuntimeError" in err and "exploded at 42" in err
    assert not (chapters["book"] / "boom.ipynb").exists()


def test_cli_list_shows_parameters_defaults_and_meaning(chapters, capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "probe" in out and "tour" in out
    assert "scale" in out and "a factor; a number >= 0.0" in out
    assert "smoke=1.0  cpu=2.0  gpu=3.0  paper=4.0" in out and "grid" in out and "smoke=0.0,0.5" in out


def test_cli_book_runs_chapters_then_builds(chapters, capsys, monkeypatch):
    import ensembles_lib.book as book

    calls = []
    monkeypatch.setattr(cli, "run_chapter", lambda c, p, o: calls.append(("run", c, p)) or (1 if c == "boom" else 0))
    monkeypatch.setattr(book, "build_html", lambda *a, **k: calls.append(("build",)) or Path("/tmp/index.html"))
    assert cli.main(["book", "--profile", "smoke", "--chapters", "probe"]) == 0
    assert calls == [("run", "probe", "smoke"), ("build",)]
    calls.clear()
    # a failed chapter keeps its old page: the book is still built, the exit status says it failed
    assert cli.main(["book", "--profile", "smoke", "--chapters", "probe", "boom"]) == 1
    assert calls == [("run", "probe", "smoke"), ("run", "boom", "smoke"), ("build",)]
    assert "boom" in capsys.readouterr().err
    calls.clear()
    assert cli.main(["book", "--chapters", "nope"]) == 2 and calls == []


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
