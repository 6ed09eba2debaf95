"""TREND's transferability metric (evaluation.transfer_metric): the Eq. 3-4 fit recovers known
parameters, counts follow TREND's definition, TM is Eq. 5, and bad inputs are named."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ensembles_lib.evaluation.transfer_metric import (ExpCDF, TransferCurves, fit_exp_cdf, mean_pairwise, rmse,
                                                      transfer_curves)

EPS4 = [0.02, 0.05, 0.1, 0.2]


@pytest.mark.parametrize("a, b", [(800.0, 25.0), (120.0, 4.0), (990.0, 300.0)])
def test_fit_recovers_known_parameters_from_four_exact_points(a, b):
    counts = ExpCDF(a, b)(EPS4)
    fit = fit_exp_cdf(EPS4, counts)
    assert fit.a == pytest.approx(a, rel=1e-3)
    assert fit.b == pytest.approx(b, rel=1e-3)
    assert rmse(fit, EPS4, counts) < 1e-2


def test_fit_from_noisy_counts_predicts_held_out_budgets():
    rng = np.random.default_rng(0)
    truth = ExpCDF(700.0, 18.0)
    grid = np.linspace(0.01, 0.3, 20)
    noisy = truth(grid) + rng.normal(0, 5, size=grid.shape)
    fit = fit_exp_cdf(grid[::5], noisy[::5])  # 4 of the 20 budgets
    assert fit.a == pytest.approx(700, rel=0.05) and fit.b == pytest.approx(18, rel=0.1)
    assert rmse(fit, grid, truth(grid)) < 15  # the held-out curve within a few images


def test_fit_of_nothing_transferring_is_zero_and_inputs_are_checked():
    assert fit_exp_cdf(EPS4, [0, 0, 0, 0])(0.3) == 0.0
    with pytest.raises(ValueError, match="one length"):
        fit_exp_cdf(EPS4, [1, 2, 3])
    with pytest.raises(ValueError, match=">= 0"):
        fit_exp_cdf(EPS4, [1, -2, 3, 4])
    with pytest.raises(ValueError, match="at least 2 budgets"):
        fit_exp_cdf([0.0, 0.1], [0, 5])


def test_curve_saturates_with_the_negative_exponent():
    f = ExpCDF(500.0, 10.0)
    values = f([0.0, 0.1, 1.0, 10.0])
    assert values[0] == 0.0 and np.all(np.diff(values) > 0) and values[-1] == pytest.approx(500.0)


def _curves() -> TransferCurves:
    # 2 budgets, sources A and B, 4 images
    fooled = torch.tensor([
        [[[1, 1, 0, 0], [1, 0, 1, 0]],    # eps 0.1, source A: fools A on 0,1; fools B on 0,2
         [[0, 0, 0, 1], [1, 1, 1, 1]]],   # source B: fools A on 3; fools B everywhere
        [[[1, 1, 1, 1], [1, 1, 1, 0]],
         [[1, 0, 0, 1], [1, 1, 1, 1]]],
    ], dtype=torch.bool)
    return TransferCurves(("A", "B"), (0.1, 0.2), fooled)


def test_counts_need_the_source_fooled_and_tm_is_eq_5():
    curves = _curves()
    counts = curves.counts()
    # A -> B at 0.1: B is fooled on 0 and 2, but A only on 0 and 1: one image transfers
    assert counts[0].tolist() == [[2, 1], [1, 4]]
    assert counts[1].tolist() == [[4, 3], [2, 4]]
    tm = curves.measured_tm(0.2)
    assert tm.loc["A", "B"] == pytest.approx(3 / 4) and tm.loc["B", "A"] == pytest.approx(2 / 4)
    assert curves.transferred(0.1)[0, 1].tolist() == [True, False, False, False]
    assert list(curves.frame().columns[1]) == ["A", "B"] and curves.n_images == 4
    with pytest.raises(ValueError, match="measured budgets"):
        curves.measured_tm(0.3)


def test_predicted_tm_divides_the_fitted_curves():
    curves = TransferCurves(("A", "B"), tuple(EPS4), torch.zeros(4, 2, 2, 1, dtype=torch.bool))
    fits = {("A", "A"): ExpCDF(100, 10), ("A", "B"): ExpCDF(50, 10), ("B", "B"): ExpCDF(80, 5),
            ("B", "A"): ExpCDF(0, 5)}
    tm = curves.predicted_tm(fits, 0.1)
    assert tm.loc["A", "B"] == pytest.approx(0.5) and tm.loc["B", "A"] == 0.0
    assert tm.loc["A", "A"] == pytest.approx(1.0)
    assert mean_pairwise(tm, ["A", "B"]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="at least two"):
        mean_pairwise(tm, ["A"])


class _Threshold(nn.Module):
    """Class 1 when the mean pixel exceeds `cut`, else class 0."""

    def __init__(self, cut):
        super().__init__()
        self.cut = cut

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([self.cut - m, m - self.cut], 1)


def test_transfer_curves_on_threshold_models():
    # every image has mean 0.4 and label 0; the attack adds eps to every pixel
    x, y = torch.full((6, 1, 2, 2), 0.4), torch.zeros(6, dtype=torch.long)
    models = {"near": _Threshold(0.45), "far": _Threshold(0.6)}

    def attack_at(eps):
        return lambda model, xb, yb: (xb + eps).clamp(0, 1)

    curves = transfer_curves(models, x, y, attack_at, [0.1, 0.3])
    counts = curves.counts()
    # 0.5 fools "near" only: "far"'s images fool "near" but not "far" itself, so nothing transfers from it
    assert counts[0].tolist() == [[6, 0], [0, 0]]
    assert counts[1].tolist() == [[6, 6], [6, 6]]  # 0.7: fools both
    assert curves.n_images == 6
    with pytest.raises(ValueError, match="distinct"):
        transfer_curves(models, x, y, attack_at, [0.1, 0.1])


def test_expected_correct_averages_a_voting_ensembles_tie_breaks():
    from ensembles_lib import Ensemble
    from ensembles_lib.evaluation import expected_correct

    class Fixed(nn.Module):
        def __init__(self, cls):
            super().__init__()
            self.cls = cls

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), self.cls), 3).float()

    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    tie = Ensemble([Fixed(0), Fixed(1)], combine="vote")  # every image a tie between classes 0 and 1
    share = expected_correct(tie, x, y, draws=400)
    assert share.shape == (4,) and torch.allclose(share, torch.full((4,), 0.5), atol=0.08)
    assert torch.equal(expected_correct(tie, x, y, draws=50, seed=3), expected_correct(tie, x, y, draws=50, seed=3))
    majority = Ensemble([Fixed(0), Fixed(0), Fixed(1)], combine="vote")
    assert expected_correct(majority, x, y, draws=5).tolist() == [1.0] * 4
    assert expected_correct(Fixed(1), x, y, draws=5).tolist() == [0.0] * 4  # no generator: one draw
    with pytest.raises(ValueError, match="draws"):
        expected_correct(tie, x, y, draws=0)


def test_matrix_and_pair_share_read_the_transferred_images():
    curves = _curves()
    m = curves.matrix(0.1)
    assert m.loc["A", "B"] == pytest.approx(1 / 4) and m.loc["B", "B"] == 1.0 and m.attrs["n_images"] == 4
    share = curves.pair_share(0.1, [("A", "B"), ("B", "A")])
    assert share.tolist() == [0.5, 0.0, 0.0, 0.5]  # A->B on image 0, B->A on image 3
    with pytest.raises(ValueError, match="not among"):
        curves.pair_share(0.1, [("A", "C")])
    with pytest.raises(ValueError, match="at least one"):
        curves.pair_share(0.1, [])


def test_curves_with_no_image_right_for_every_model_are_empty_not_an_error():
    x, y = torch.full((3, 1, 2, 2), 0.4), torch.zeros(3, dtype=torch.long)
    models = {"right": _Threshold(0.45), "wrong": _Threshold(0.1)}  # "wrong" calls every image class 1
    calls = []

    def attack_at(eps):
        return lambda model, xb, yb: calls.append(1) or xb

    curves = transfer_curves(models, x, y, attack_at, [0.1, 0.2])
    assert curves.n_images == 0 and not calls  # nothing attacked
    assert curves.counts().tolist() == [[[0, 0], [0, 0]]] * 2
    assert curves.matrix(0.1).isna().all().all() and curves.measured_tm(0.1).isna().all().all()
