"""The book's figures and tables (`ensembles_lib.plots`): layout defects the chapters had (a
suptitle over the panel titles, half-epoch ticks, a step axis with room for negative steps, four
colour bars for one scale) and the one table format (decimals, "—" for a missing value)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ensembles_lib.plots import (  # noqa: E402
    accuracy_vs_eps, accuracy_vs_steps, format_table, training_curves, transfer_heatmaps)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def visible_ticks(axis, low, high):
    return [t for t in axis.get_majorticklocs() if low <= t <= high]


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_training_curves_integer_epochs_and_a_suptitle_clear_of_the_panel_titles():
    history = [{"epoch": e, "clean_acc": 0.5 + 0.1 * e, "robust_acc": 0.1 * e} for e in (1, 2, 3)]
    axes = training_curves({"A": history, "B": history}, title="per-epoch evaluation on 100 images")
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        ticks = visible_ticks(ax.xaxis, *ax.get_xlim())
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    suptitle = fig._suptitle.get_window_extent(renderer)
    for ax in axes:
        assert not overlaps(suptitle, ax.title.get_window_extent(renderer))
    assert fig.get_size_inches()[0] <= 9.0


def test_step_curve_without_zero_is_log_from_the_first_step_with_room_for_the_markers():
    grid = [1, 2, 5, 10, 20, 50]
    ax = accuracy_vs_steps({"a": (grid, [0.9, 0.7, 0.5, 0.4, 0.35, 0.3]), "b": (grid, [0.6] * 6)})
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert 0 < low < 1 and high > 50  # nothing spent on steps below 1, the last marker not at the edge
    assert all(not line.get_clip_on() for line in ax.get_lines())
    labels = [ax.xaxis.get_major_formatter()(t, 0) for t in (1, 10)]
    assert labels == ["1", "10"]


def test_step_curve_with_zero_starts_at_zero():
    ax = accuracy_vs_steps({"a": ([0, 1, 5, 50], [0.9, 0.6, 0.4, 0.3])})
    assert ax.get_xscale() == "symlog"
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 50
    ax = accuracy_vs_steps({"a": ([1, 2, 3, 4], [0.5, 0.4, 0.3, 0.3])})
    assert ax.get_xscale() == "linear"
    ticks = visible_ticks(ax.xaxis, *ax.get_xlim())
    assert all(float(t).is_integer() for t in ticks)
    assert ax.get_xlim()[0] < 1 and ax.get_xlim()[1] > 4


def test_accuracy_vs_eps_has_few_plain_ticks():
    grid = [0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    ax = accuracy_vs_eps({"a": (grid, np.linspace(0.9, 0.0, len(grid)))})
    ticks = visible_ticks(ax.xaxis, *ax.get_xlim())
    assert len(ticks) <= 7
    assert ax.xaxis.get_major_formatter()(0.05, 0) == "0.05"


def test_transfer_heatmaps_share_one_colour_bar():
    matrix = pd.DataFrame([[1.0, 0.9, 0.8], [0.7, 1.0, 0.6], [0.5, 0.4, 1.0]], index=list("123"), columns=list("123"))
    axes = transfer_heatmaps({m: matrix for m in ("Baseline", "ADP", "GAL", "DVERGE")}, title="transfer")
    fig = axes[0].figure
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes] == ["Baseline", "ADP", "GAL", "DVERGE"]
    assert len(fig.axes) == 5  # four panels and one colour bar
    assert fig.get_size_inches()[0] <= 9.0
    assert all(min(t.get_fontsize() for t in ax.texts) >= 9 for ax in axes)
    assert all(ax.collections[0].get_clim() == (0.0, 1.0) for ax in axes)
    with pytest.raises(ValueError, match="matrices"):
        transfer_heatmaps({})
    with pytest.raises(ValueError, match="matrices\\['x'\\]"):
        transfer_heatmaps({"x": pd.DataFrame()})


def test_format_table_same_decimals_and_a_dash_for_missing_values():
    df = pd.DataFrame({"ours": [0.73, 0.7312, 0.5], "paper": [0.82, np.nan, None], "n": [300, 300, 300],
                       "holds": [True, False, True]}, index=["a", "b", "c"])
    html = format_table(df).to_html()
    assert "0.730" in html and "0.731" in html and "0.500" in html
    assert "NaN" not in html and "nan" not in html and html.count("—") == 2
    assert ">300<" in html and "True" in html
    assert "0.7312" not in html and "0.73<" not in html
    assert "1.0" in format_table(pd.DataFrame({"x": [1.0]}), decimals=1).to_html()
    assert df.loc["a", "ours"] == 0.73  # the frame itself is unchanged
    with pytest.raises(ValueError, match="decimals"):
        format_table(df, decimals=-1)
    with pytest.raises(ValueError, match="df"):
        format_table([1, 2])


def test_mean_with_interval_is_the_mean_and_its_normal_95_percent_half_width():
    from ensembles_lib.plots import mean_with_interval

    assert mean_with_interval(np.array([0.0, 1.0, 1.0, 0.0])) == "0.500 ± 0.566"  # 1.96 * 0.57735 / 2
    assert mean_with_interval([1.0, 1.0, 1.0], decimals=2) == "1.00 ± 0.00"
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_with_interval([0.5])
