"""The SQ ensembles chapter's declarations: its claims name quantities the notebook measures, the
quantities the claims compare exist at every profile, and bad parameters are refused by name."""

import json
from pathlib import Path

import pytest

from ensembles_lib.chapters import resolve, sq_ensembles

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "sq_ensembles.ipynb"


def test_every_claimed_quantity_is_measured_by_the_notebook():
    source = "".join("".join(cell["source"]) for cell in json.loads(NOTEBOOK.read_text())["cells"])
    looped = {"PGD mu 0", "PGD mu 1"}  # built in a loop as f"PGD mu {v:g}"
    for claim in sq_ensembles.CLAIMS:
        for quantity in claim.test.quantities():
            assert (f'"{quantity}"' in source) or (quantity in looped and 'f"PGD mu {v:g}"' in source), quantity


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_each_profile_measures_what_the_claims_compare(profile):
    config = resolve("sq_ensembles", profile)
    assert {0.0, 1.0} <= set(config.mus)  # mu_helps compares mu 1 with mu 0
    assert len(config.alphas) >= 2 and config.alpha in config.alphas  # diversity grows with alpha; Ours is one of them
    assert config.mu in config.mus and config.beta in config.betas  # Ours is one point of each ablation
    assert min(config.sample_grid) == 1 and config.n_small <= config.n_eval


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="alpha"):
        resolve("sq_ensembles", "cpu", alpha=0.5)
    with pytest.raises(ValueError, match="samples"):
        resolve("sq_ensembles", "cpu", samples=0)
