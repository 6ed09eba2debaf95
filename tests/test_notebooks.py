"""Every chapter notebook: clean source, one `parameters` cell, and a full run under `smoke`.

Runs go through the runner into a temporary book folder (pages and results JSON), so the
committed book/ is never touched; datasets and trained members use the normal data root, so
repeated runs reuse the cache.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

from ensembles_lib import chapters, runner
from ensembles_lib.results import load_results

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def _parameter_cells(nb) -> list:
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_source_is_clean_with_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"
    cells = _parameter_cells(nb)
    assert len(cells) == 1
    # the parameters cell is the one written from the chapter's declaration: `profile = "auto"`
    # and one `name = None  # meaning; allowed` line a declared parameter
    declared = chapters.chapter(path.stem)
    assert cells[0].source == declared.parameters_cell(), f"run `ensembles params {path.stem} --write`"
    # papermill reads the same names from it (`papermill -p NAME VALUE`, `--help-notebook`)
    assert list(papermill.inspect_notebook(str(path))) == ["profile", *declared.names]
    # the first code cell after it resolves them without listing them again
    following = code[code.index(cells[0]) + 1].source
    assert f'config = resolve_notebook("{path.stem}", globals())' in following
    assert not any(f"{name}={name}" in following for name in declared.names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_end_to_end_under_smoke(path, tmp_path, monkeypatch):
    book = tmp_path / "book"
    monkeypatch.setenv("ENSEMBLES_BOOK_DIR", str(book))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch on one thread, as in conftest.py
    result = runner.run(path.stem, "smoke", failed=tmp_path / "failed")
    assert result.output == book / f"{path.stem}.ipynb"
    nb = nbformat.read(result.output, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # figures are shown directly or glued for a captioned {glue:figure} (papermill.record/image/png)
    assert any(key.endswith("image/png") for c in nb.cells if c.cell_type == "code" for o in c.outputs
               for key in o.get("data", {}))
    # its last cell wrote a valid results record for this chapter and profile
    (record,) = load_results(book / "results")
    assert (record["chapter"], record["profile"]) == (path.stem, "smoke")
    assert record["wall_time_s"] > 0 and all(c["holds"] in (True, False, None) for c in record["claims"])


def test_bad_parameter_fails_in_the_config_cell_before_data(tmp_path):
    """The notebook path: papermill alone (no CLI check) with eps out of range stops at resolve()."""
    from papermill.exceptions import PapermillExecutionError

    source = Path(__file__).resolve().parents[1] / "notebooks" / "tour.ipynb"
    out = tmp_path / "tour.ipynb"
    with pytest.raises(PapermillExecutionError) as failure:
        papermill.execute_notebook(str(source), str(out), parameters={"profile": "smoke", "eps": 5.0},
                                   kernel_name="python3", progress_bar=False)
    assert failure.value.ename == "ValueError"
    assert "parameter eps must be a number in [0.0, 1.0], got 5.0" in failure.value.evalue
    assert 'resolve_notebook("tour"' in failure.value.source
    executed = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    failing = next(i for i, c in enumerate(executed) if 'resolve_notebook("tour"' in c.source)
    assert all(c.execution_count is None for c in executed[failing + 1:])  # no data loaded, nothing trained
