"""The gpu-shaped dry run on CPU (issue 12, item 4): every chapter under its `gpu` and `paper`
profiles, with overrides that only shrink sizes, so the code paths a GPU user takes run here.

Kept from each profile: the dataset (CIFAR-10, read from the JPEG copy), the architectures
(ResNet-20 members, VGG-11-BN and WRN surrogates, SGM black-box attacks through residual
surrogates), ensemble sizes (3, 5, 8), combine rules, schedules (SiN's multistep at paper),
augmentation, budgets and methods. Shrunk: training images, epochs, test and history images,
attack, restart and curve steps, the white-box suite's iterations, targets and queries, DVERGE's accuracy-vs-eps grid (3 of its 8 budgets, the
largest kept: each budget costs 24 black-box attacks), TREND's transfer curves (6 budgets) and ensemble budgets (2
of 4, the largest and the transfer budget kept), the counter-linked populations (2 submodels of the 10), and the SQ
networks' members (2 SQ samples of 16; the sample curve keeps 1 and the largest) and ablation grids (the smallest and
largest alpha, the mu and beta grids without one point each). One exception, because it cannot run on
CPU at all: SiN's `paper` networks (WRN-28-10, and WRN-28-15 for DoubleAdv) keep their depth 28
but are narrowed to widen factors 2 and 3 (the paper's 2:3 ratio); a WRN-28-10 adversarial step
costs seconds an image on two cores.

The members barely learn at these sizes, so some measurements have no image to work on (no test
image that every member classifies correctly): the chapters then report those claims undecided,
and this run exercises that path too.

Runs go through `runner.run` into temporary book, run and failed folders, with one temporary data
root for the whole module (CIFAR-10 is decoded once, and models shared between profiles, such as
DVERGE's Baseline members, are trained once). Slow: `make test-slow`.
"""

from __future__ import annotations

import nbformat
import pytest

from ensembles_lib import chapters, runner
from ensembles_lib.results import load_results

from .conftest import needs_cifar10

pytestmark = [pytest.mark.slow, needs_cifar10]

# name -> value for every profile; a per-profile dict where the profiles need different ones
SHRINK = {
    "tour": {"train_size": 512, "epochs": 2, "pgd_steps": 2, "n_eval": 64},
    "strength_in_numbers": {"train_size": 32, "epochs": 2, "train_steps": 1, "curve_steps": 20,
                            "appendix_steps": 2, "n_eval": 16, "n_epoch_eval": 10, "suite_steps": 2, "suite_targets": 1,
                            "square_queries": 10},
    "dverge": {"train_size": 128, "epochs": 1, "dverge_epochs": 1, "distill_steps": 1, "advt_steps": 1,
               "transfer_steps": 1, "transfer_restarts": 1, "whitebox_steps": 1, "whitebox_restarts": 1,
               "blackbox_steps": 1, "blackbox_restarts": 1, "n_eval": 32, "n_history": 32, "suite_steps": 2,
               "suite_targets": 1, "square_queries": 10, "convergence_max": 20,
               "eps_grid": (0.0, 0.03, 0.07)},
    "trend": {"train_size": 256, "epochs": 1, "transfer_steps": 1, "n_eval": 16, "tm_points": 6, "ensemble_steps": 1,
              "n_ensemble": 16, "tie_draws": 2, "square_queries": 10, "ensemble_eps": (0.0314, 0.0627)},
    "counter_linked": {"population": 2, "train_size": 256, "epochs": 1, "clm_epochs": 1, "adv_train_size": 128,
                       "adv_steps": 1, "attack_steps": 1, "eot_samples": 1, "autoattack_steps": 1,
                       "autoattack_targets": 1, "square_queries": 5, "n_eval": 16, "n_saliency": 10},
    "sq_ensembles": {"train_size": 256, "epochs": 1, "ft_size": 256, "ft_epochs": 1, "train_samples": 2, "samples": 2,
                     "sample_grid": (1, 32), "alphas": (1.0, 16.0), "mus": (0.0, 1.0, 5.0), "betas": (0.0, 10.0, 100.0),
                     "fgm_eps": (0.1,), "pgd_eps": (0.0392,), "aip_eps": (0.1,), "attack_steps": 1, "square_queries": 5,
                     "eot_draws": 1, "eval_draws": 1, "restarts": 1, "convergence_max": 2, "n_eval": 16, "n_small": 10},
}
# the only non-size overrides: SiN's paper WRN-28-10 / WRN-28-15 narrowed (depth kept; see above)
NARROWED = {("strength_in_numbers", "paper"): {"widen": 2, "double_widen": 3}}

# the sizes a dry run may change; anything else must stay as the profile has it (a curve's grid
# may only lose points: each value kept must be one of the profile's)
SIZE_PARAMETERS = {"train_size", "epochs", "dverge_epochs", "n_eval", "n_epoch_eval", "n_history", "pgd_steps",
                   "train_steps", "curve_steps", "appendix_steps", "distill_steps", "advt_steps", "transfer_steps",
                   "transfer_restarts", "whitebox_steps", "whitebox_restarts", "blackbox_steps", "blackbox_restarts",
                   "eps_grid", "suite_steps", "suite_targets", "square_queries", "convergence_max", "tm_points",
                   "ensemble_steps", "n_ensemble", "tie_draws", "ensemble_eps", "population", "clm_epochs",
                   "adv_train_size", "adv_steps", "attack_steps", "eot_samples", "autoattack_steps",
                   "autoattack_targets", "n_saliency", "ft_size", "ft_epochs", "train_samples", "samples", "sample_grid",
                   "alphas", "mus", "betas", "fgm_eps", "pgd_eps", "aip_eps", "eot_draws", "eval_draws", "restarts",
                   "n_small"}

CASES = [(chapter, profile) for chapter in sorted(SHRINK) for profile in ("gpu", "paper")]


def overrides(chapter: str, profile: str) -> dict:
    return {**SHRINK[chapter], **NARROWED.get((chapter, profile), {})}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One data root for the module: CIFAR-10 decoded once, shared models trained once."""
    root = tmp_path_factory.mktemp("dry_run_data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENSEMBLES_DATA_DIR", str(root))
        patch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch on one thread, as in tests/test_notebooks.py
        yield root


@pytest.mark.parametrize(("chapter", "profile"), CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_overrides_only_shrink_sizes(chapter, profile):
    """The overrides change sizes only (or the declared narrowing) and never grow one."""
    config = chapters.resolve(chapter, profile)
    for name, value in overrides(chapter, profile).items():
        assert name in SIZE_PARAMETERS or name in NARROWED.get((chapter, profile), {}), name
        default = config[name]
        if isinstance(default, tuple):  # a grid: fewer points, each one of the profile's, the largest kept
            assert set(value) < set(default) and max(value) == max(default), f"{name}: {value} vs {default}"
        else:
            assert value <= default or default == 0, f"{name}: {value} is not smaller than {profile}'s {default}"
    assert chapters.resolve(chapter, profile).dataset == "cifar10"


@pytest.mark.timeout(1800)  # TREND's gpu members (ResNet-18/34/50, VGGs at full width) take minutes on 2 cores
@pytest.mark.parametrize(("chapter", "profile"), CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_chapter_runs_gpu_shaped(chapter, profile, data_root, tmp_path):
    book = tmp_path / "book"
    result = runner.run(chapter, profile, overrides(chapter, profile), to_book=True, output_dir=book,
                        runs=tmp_path / "runs", failed=tmp_path / "failed")
    assert result.output == book / f"{chapter}.ipynb" and result.config.profile == profile
    nb = nbformat.read(result.output, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert any(key.endswith("image/png") for c in code for o in c.outputs for key in o.get("data", {}))
    (record,) = load_results(book / "results")
    assert (record["chapter"], record["profile"], record["dataset"]) == (chapter, profile, "cifar10")
    assert record["claims"] and all(c["holds"] in (True, False, None) for c in record["claims"])
