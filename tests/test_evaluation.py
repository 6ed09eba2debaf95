"""accuracy, robust_accuracy (all-or-nothing), transfer_matrix (the papers' protocol), the
decision grid and the plots, on hand-built models whose behaviour under each hand-built attack
is known exactly."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ensembles_lib.evaluation import (DecisionGrid, accuracy, correct_by_all, decision_grid, named_models, predict,  # noqa: E402
                                      robust_accuracy, transfer_matrix)
from ensembles_lib.plots import accuracy_vs_eps, decision_regions, transfer_heatmap  # noqa: E402


class Reader(nn.Module):
    """A two-class model that reads features of a (N, 1, 1, 3) image: class 1 iff w . x > 0.5.

    `attacked` lists the features an attack on this model flips (x -> 1 - x); normally the ones it
    reads, but a model can be given a misleading list to make its own white-box attack fail.
    """

    def __init__(self, weights, attacked=None):
        super().__init__()
        self.register_buffer("w", torch.tensor(weights + [0.0] * (3 - len(weights))))
        self.attacked = attacked if attacked is not None else [i for i, v in enumerate(weights) if v]

    def forward(self, x):
        score = x.flatten(1) @ self.w - 0.5
        return torch.stack([-score, score], dim=1)


def flip(model, x, y):
    """The 'white-box attack': flip the features this model is known to be attacked through."""
    x_adv = x.clone()
    x_adv[:, 0, 0, model.attacked] = 1 - x_adv[:, 0, 0, model.attacked]
    return x_adv


def images(n: int, disagree: int = 0):
    """n images, labels alternating 0/1, features 0 and 1 at 0.8 (label 1) or 0.2 (label 0), feature 2
    the index / n. The last `disagree` images have feature 1 contradicting the label."""
    y = torch.arange(n) % 2
    value = 0.2 + 0.6 * y.float()
    x = torch.stack([value, value, torch.arange(n).float() / n], dim=1).reshape(n, 1, 1, 3)
    if disagree:
        x[n - disagree:, 0, 0, 1] = 1 - x[n - disagree:, 0, 0, 1]
    return x, y


A = Reader([1.0])            # reads feature 0
B = Reader([0.0, 1.0])       # reads feature 1
C = Reader([0.7, 0.3])       # reads both, dominated by feature 0


def test_accuracy_and_predict_restore_mode():
    x, y = images(10, disagree=4)
    B.train()
    assert accuracy(B, x, y) == pytest.approx(0.6)
    assert B.training
    B.eval()
    assert accuracy(A, x, y, batch_size=3) == 1.0
    assert predict(C, x).tolist() == y.tolist()
    none = predict(C, x[:0])  # an empty subset (no image every model gets right) predicts nothing
    assert none.shape == (0,) and none.dtype == torch.long
    assert correct_by_all([A, B], x[:0], y[:0]).shape == (0,)
    with pytest.raises(ValueError, match="batch_size"):
        accuracy(A, x, y, batch_size=0)
    with pytest.raises(ValueError, match="y"):
        accuracy(A, x, y[:5])


def test_transfer_matrix_known_values():
    x, y = images(20, disagree=5)  # B gets the last 5 wrong: they are dropped
    df = transfer_matrix({"A": A, "B": B, "C": C}, x, y, flip, batch_size=4)
    expected = pd.DataFrame([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]],
                            index=["A", "B", "C"], columns=["A", "B", "C"])
    pd.testing.assert_frame_equal(df, expected, check_names=False)
    assert df.index.name == "source" and df.columns.name == "target"
    assert df.attrs == {"n_images": 15, "n_total": 20, "n_fooled": {"A": 15, "B": 15, "C": 15}}


def test_transfer_matrix_list_names_and_source_fooled_rule():
    x, y = images(12)
    decoy = Reader([1.0], attacked=[1])  # its own attack misses it but fools B
    plain = transfer_matrix([decoy, B], x, y, flip)
    assert list(plain.index) == ["model 0", "model 1"]
    assert plain.loc["model 0", "model 1"] == 1.0 and plain.loc["model 0", "model 0"] == 0.0
    trend = transfer_matrix([decoy, B], x, y, flip, require_source_fooled=True)
    assert trend.loc["model 0", "model 1"] == 0.0  # TREND counts only images that fool the source too
    assert trend.loc["model 1", "model 1"] == 1.0


def test_transfer_matrix_half_successful_attack():
    x, y = images(8)

    def label_one_only(model, xb, yb):
        x_adv = flip(model, xb, yb)
        return torch.where(yb.view(-1, 1, 1, 1) == 1, x_adv, xb)

    df = transfer_matrix({"A": A, "C": C}, x, y, label_one_only, batch_size=3)
    assert df.loc["A", "A"] == 0.5 and df.loc["A", "C"] == 0.5 and df.loc["C", "A"] == 0.5
    # DVERGE's reading: of the examples that fooled their source, every one fools the other model
    among = transfer_matrix({"A": A, "C": C}, x, y, label_one_only, among_source_fooled=True)
    assert among.loc["A", "C"] == 1.0 and among.loc["C", "A"] == 1.0
    assert among.loc["A", "A"] == 0.5 and among.attrs["n_fooled"] == {"A": 4, "C": 4}  # diagonal: success rate


def test_among_source_fooled_leaves_a_never_fooled_source_undefined():
    x, y = images(12)
    decoy = Reader([1.0], attacked=[1])  # its own attack never fools it
    among = transfer_matrix([decoy, B], x, y, flip, among_source_fooled=True)
    assert math.isnan(among.loc["model 0", "model 1"]) and among.attrs["n_fooled"]["model 0"] == 0
    assert among.loc["model 1", "model 0"] == 0.0 and among.loc["model 1", "model 1"] == 1.0
    with pytest.raises(ValueError, match="among_source_fooled"):
        transfer_matrix([decoy, B], x, y, flip, among_source_fooled="yes")


def test_transfer_matrix_errors():
    x, y = images(6)
    class Opposite(nn.Module):
        def forward(self, x):
            return -A(x)

    wrong = Opposite()  # gets every image wrong
    with pytest.raises(ValueError, match="classified correctly by every model"):
        transfer_matrix([A, wrong], x, y, flip)
    with pytest.raises(ValueError, match="models"):
        transfer_matrix([], x, y, flip)
    with pytest.raises(ValueError, match="models"):
        transfer_matrix({"A": "not a model"}, x, y, flip)


def test_robust_accuracy_all_or_nothing():
    x, y = images(12, disagree=1)  # A reads feature 0 only, so all 12 are clean-correct for A

    def every(k):
        def attack(model, xb, yb):
            index = (xb[:, 0, 0, 2] * 12).round().long()
            return torch.where((index % k == 0).view(-1, 1, 1, 1), flip(model, xb, yb), xb)
        return attack

    result = robust_accuracy(A, x, y, {"every2": every(2), "every3": every(3)}, batch_size=5)
    assert result["clean"] == 1.0
    assert result["every2"] == pytest.approx(6 / 12)
    assert result["every3"] == pytest.approx(8 / 12)
    # robust to both only if the index is divisible by neither 2 nor 3: 1, 5, 7, 11
    assert result["all"] == pytest.approx(4 / 12)
    assert list(result) == ["clean", "every2", "every3", "all"]
    on_b = robust_accuracy(B, x, y, {"none": lambda m, xb, yb: xb})
    assert on_b == {"clean": pytest.approx(11 / 12), "none": pytest.approx(11 / 12), "all": pytest.approx(11 / 12)}


def test_robust_accuracy_errors():
    x, y = images(4)
    with pytest.raises(ValueError, match="reserved"):
        robust_accuracy(A, x, y, {"all": flip})
    with pytest.raises(ValueError, match="attacks"):
        robust_accuracy(A, x, y, {})
    with pytest.raises(ValueError, match="callable"):
        robust_accuracy(A, x, y, {"pgd": 3})


def test_transfer_heatmap_axes():
    df = transfer_matrix({"A": A, "B": B, "C": C}, *images(10), flip)
    fig, ax = plt.subplots()
    out = transfer_heatmap(df, ax=ax)
    assert out is ax
    assert ax.get_xlabel() == "target" and ax.get_ylabel() == "source"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "B", "C"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in df.to_numpy().ravel())
    assert ax.collections[0].get_clim() == (0.0, 1.0)
    assert ax.get_title() == "transfer rate (10 images)"
    assert transfer_heatmap(df, title="mine").get_title() == "mine"
    plt.close("all")
    with pytest.raises(ValueError, match="df"):
        transfer_heatmap(pd.DataFrame())


def test_accuracy_vs_eps_axes():
    results = {"single": ([0, 2 / 255, 8 / 255], [0.9, 0.5, 0.1]), "ensemble": ([0, 8 / 255], [0.92, 0.3])}
    ax = accuracy_vs_eps(results)
    assert ax.get_ylabel() == "accuracy" and "eps" in ax.get_xlabel()
    assert [line.get_label() for line in ax.get_lines()] == ["single", "ensemble"]
    assert list(ax.get_lines()[0].get_ydata()) == [0.9, 0.5, 0.1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["single", "ensemble"]
    plt.close("all")
    with pytest.raises(ValueError, match="results"):
        accuracy_vs_eps({"bad": ([0, 1], [0.5])})


@pytest.mark.parametrize("step_rule", ["sign", "adam"])
def test_accuracy_by_steps_equals_separate_runs(step_rule):
    from functools import partial

    from ensembles_lib.attacks import ifgsm, pgd
    from ensembles_lib.evaluation import accuracy_by_steps

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.rand(64, 1, 1, 3)
    y = (x.flatten(1).sum(1) > 1.5).long()
    attack = partial(pgd, eps=0.1, step=0.02, step_rule=step_rule, seed=3)
    curve = accuracy_by_steps(model, x, y, attack, steps=6)
    assert len(curve) == 7 and curve[0] == accuracy(model, x, y)
    for k in (1, 3, 6):
        assert curve[k] == accuracy(model, attack(model, x, y, steps=k), y)
    assert curve[6] < curve[0]
    curve = accuracy_by_steps(model, x, y, partial(ifgsm, eps=0.1, step=0.03), steps=4)
    assert curve[2] == accuracy(model, ifgsm(model, x, y, eps=0.1, steps=2, step=0.03), y)
    with pytest.raises(ValueError, match="one query per step"):
        accuracy_by_steps(model, x, y, partial(pgd, eps=0.1, restarts=2, seed=3), steps=3)


def test_named_models_names_lists_and_refuses_non_modules():
    assert list(named_models([A, B])) == ["model 0", "model 1"]
    assert list(named_models(nn.ModuleList([A, B]))) == ["model 0", "model 1"]
    assert named_models({"a": A})["a"] is A
    for bad, match in (([], "empty"), ({"a": 3}, "models\\['a'\\]"), (A, "dict")):
        with pytest.raises(ValueError, match=match):
            named_models(bad)


# --------------------------------------------------------------------------- decision grid and its plot


class Pixel(nn.Module):
    """Class 1 iff pixel k of the (flattened) image exceeds 0.5 (two logits, no parameters)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        score = x.flatten(1)[:, self.k] - 0.5
        return torch.stack([-score, score], dim=1) * 10


# pixel 0 is 0.07 below the reader's threshold, pixel 3 far below: the image is class 0 for both
IMAGE = torch.tensor([0.43, 0.5, 0.5, 0.2]).view(1, 2, 2)


def test_decision_grid_predicts_every_point_of_the_slice():
    reads_0, reads_3 = Pixel(0), Pixel(3)
    grid = decision_grid({"reads 0": reads_0, "reads 3": reads_3}, IMAGE, 0, reads_0, eps=0.2, resolution=9, seed=4)
    assert isinstance(grid, DecisionGrid) and list(grid.regions) == ["reads 0", "reads 3"]
    assert grid.offsets == pytest.approx([-0.2 + 0.05 * k for k in range(9)], abs=1e-6)
    assert (grid.eps, grid.label, grid.num_classes) == (0.2, 0, 2)
    # the surrogate's direction u moves pixel 0 only (+1: towards class 1), the random one moves it by +-b:
    # pixel 0 at row i, column j is 0.43 + a_i + s * b_j for one sign s, class 1 iff that exceeds 0.5
    a, b = torch.meshgrid(torch.tensor(grid.offsets), torch.tensor(grid.offsets), indexing="ij")
    candidates = [(a + s * b > 0.07).long().numpy() for s in (1, -1)]
    assert grid.regions["reads 0"].shape == (9, 9)
    assert any((grid.regions["reads 0"] == c).all() for c in candidates)
    assert grid.regions["reads 0"][4].sum() == 3  # a = 0: the random direction alone, across at |b| >= 0.1
    assert grid.regions["reads 0"][:, 4].tolist() == [0] * 6 + [1] * 3  # b = 0: class 1 once a > 0.07
    assert (grid.regions["reads 3"] == 0).all()  # pixel 3 stays within 0.2 + 0.2 < 0.5
    again = decision_grid({"reads 0": reads_0}, IMAGE[None], 0, reads_0, eps=0.2, resolution=9, seed=4)
    assert (again.regions["reads 0"] == grid.regions["reads 0"]).all()  # seeded; (1, C, H, W) is one image too


@pytest.mark.parametrize("kwargs, match", [({"eps": 0.0}, "eps"), ({"eps": 1.5}, "eps"),
                                           ({"resolution": 2}, "resolution"), ({"resolution": True}, "resolution"),
                                           ({"seed": -1}, "seed"),
                                           ({"x": torch.rand(2, 1, 2, 2)}, "one image"), ({"y": 2}, "y"),
                                           ({"models": {}}, "models"), ({"models": {"m": 3}}, "models")])
def test_decision_grid_refuses_bad_arguments(kwargs, match):
    args = {"models": {"m": Pixel(0)}, "x": IMAGE, "y": 0, "surrogate": Pixel(0), "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        decision_grid(**args)


def test_bad_arguments_are_named_even_when_positional():
    with pytest.raises(ValueError, match=r"^y: Input should be greater than or equal to 0 \(got -1\)$"):
        decision_grid({"m": Pixel(0)}, IMAGE, -1, Pixel(0), eps=0.1)
    with pytest.raises(ValueError, match=r"^models.m: Input should be an instance of Module"):
        decision_grid({"m": "a model"}, IMAGE, 0, Pixel(0), eps=0.1)
    with pytest.raises(ValueError, match=r"^eps: Input should be a valid number \(got '0.1'\)$"):
        decision_grid({"m": Pixel(0)}, IMAGE, 0, Pixel(0), eps="0.1")
    with pytest.raises(TypeError, match="decision_grid.*epsilon"):  # a misspelt keyword stays a TypeError
        decision_grid({"m": Pixel(0)}, IMAGE, 0, Pixel(0), eps=0.1, epsilon=0.1)


def test_decision_regions_draws_a_computed_grid():
    grid = decision_grid({"reads 0": Pixel(0), "reads 3": Pixel(3)}, IMAGE, 0, Pixel(0), eps=0.2, resolution=9)
    axes = decision_regions(grid, classes=["low", "high"], title="around one image")
    assert [ax.get_title() for ax in axes] == ["reads 0", "reads 3"]
    for ax, region in zip(axes, grid.regions.values()):
        assert (ax.get_images()[0].get_array() == region).all()
        assert ax.get_images()[0].get_extent() == [-0.2, 0.2, -0.2, 0.2]
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == ["low (true)", "high"]
    assert axes[0].figure.get_suptitle() == "around one image"
    plt.close("all")
    _, given = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="axes"):
        decision_regions(grid, axes=given)
    with pytest.raises(ValueError, match="classes"):
        decision_regions(grid, classes=["only one"])
    with pytest.raises(ValueError, match="grid"):
        decision_regions({"reads 0": grid.regions["reads 0"]})
    plt.close("all")


def test_member_table_measures_only_when_enough_images_are_right_for_every_member():
    import pandas as pd
    from ensembles_lib.evaluation import member_table

    class Constant(torch.nn.Module):
        def __init__(self, label):
            super().__init__()
            self.label = label

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), self.label), 3).float()

    x, y = torch.rand(4, 1, 2, 2), torch.tensor([0, 0, 1, 2])
    measured = pd.DataFrame([[1.0]])
    assert member_table([Constant(0), Constant(0)], x, y, 2, lambda: measured) is measured  # two images right
    empty = member_table([Constant(0), Constant(1)], x, y, 1, lambda: measured)  # no image right for both
    assert empty.shape == (2, 2) and empty.isna().all().all()
    assert empty.attrs == {"n_images": 0, "n_total": 4}
