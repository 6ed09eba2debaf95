"""The figures and tables the chapters share: transfer heatmaps (TREND, DVERGE), accuracy-vs-eps
curves (every robustness chapter), accuracy-vs-attack-steps and per-epoch training curves (SiN),
decision regions (DVERGE), and `format_table`, the one way a chapter shows a table of numbers
(`mean_with_interval` writes a cell as a mean and its 95% interval).
Each plotting function draws on `ax` (a new figure if None) and returns the Axes. Drawing only:
what a figure shows is computed beforehand (by `evaluation`, `cache.history`).

The book shows a figure at most about 800 px wide, so new figures are at most about 9 inches
wide at matplotlib's 100 dpi, with text of at least 9 points, and use the constrained layout so
that titles, a suptitle and colour bars never overlap.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

# Tick labels as plain short numbers (0.05, 10, 500), never 5e-02 or 10^1.
_PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def format_table(df: pd.DataFrame, decimals: int = 3, missing: str = "—"):
    """A table of numbers as the book shows it (every chapter's display cells): floats with the same
    number of decimals (0.730, never 0.73 next to 0.730), `missing` where a cell has no value (a
    paper that did not report it) instead of NaN, integers and text unchanged. Returns a pandas
    Styler, which renders as HTML in the notebook and the book; the frame itself is not changed.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a DataFrame, got {type(df).__name__}")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 10:
        raise ValueError(f"decimals must be an int in [0, 10], got {decimals!r}")
    if not isinstance(missing, str):
        raise ValueError(f"missing must be a string (shown where a cell has no value), got {missing!r}")

    def cell(value):
        if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)) or value is pd.NA:
            return missing
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (float, np.floating)):
            return f"{value:.{decimals}f}"
        return str(value)

    # The theme styles tables of class "dataframe", as it does for plain DataFrames.
    return df.style.format(cell).set_table_attributes('class="dataframe"')


def mean_with_interval(scores, decimals: int = 3) -> str:
    """"mean ± half" of per-image scores (a 1-D tensor or array, e.g. expected correctness in
    [0, 1]): the mean and the half-width of its normal-approximation 95% interval, 1.96 s / sqrt(n)
    with s the sample standard deviation. The cell text of the CLM and SQ chapters' adaptive-attack
    tables."""
    values = np.asarray(scores, dtype=float).ravel()
    if values.size < 2:
        raise ValueError(f"scores must hold at least 2 values for an interval, got {values.size}")
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    return f"{values.mean():.{decimals}f} ± {half:.{decimals}f}"


def _axes(ax, size: tuple[float, float]):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def transfer_heatmap(df: pd.DataFrame, ax=None, title: str | None = None, cmap: str = "Blues", cbar: bool = True):
    """A transfer matrix (`evaluation.transfer_matrix`) as an annotated heatmap, colours fixed to 0..1.

    Rows are source models, columns target models. The default title states the number of images
    the matrix was computed on (df.attrs["n_images"]) when it is known. cbar: draw this panel's
    colour bar (`transfer_heatmaps` draws one for a row of panels instead).
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df must be a non-empty DataFrame (source x target), e.g. from transfer_matrix")
    size = max(3.0, 0.9 * len(df.columns) + 1.5), max(2.5, 0.7 * len(df.index) + 1.0)
    ax = _axes(ax, size)
    sns.heatmap(df.astype(float), ax=ax, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, cmap=cmap, square=True,
                cbar=cbar, cbar_kws={"label": "fraction fooled"} if cbar else None,
                annot_kws={"fontsize": 10})
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    if title is None and "n_images" in df.attrs:
        title = f"transfer rate ({df.attrs['n_images']} images)"
    if title:
        ax.set_title(title)
    return ax


def transfer_heatmaps(matrices: Mapping[str, pd.DataFrame], title: str | None = None, cmap: str = "Blues"):
    """Several transfer matrices side by side with one shared colour bar (DVERGE Fig. 3: one panel
    per training method). matrices: panel title -> transfer matrix (`evaluation.transfer_matrix`);
    colours are fixed to 0..1 in every panel, so the one bar reads for all. Returns the list of Axes.
    """
    if not isinstance(matrices, Mapping) or not matrices:
        raise ValueError("matrices must be a non-empty dict panel title -> transfer matrix (DataFrame)")
    for name, df in matrices.items():
        if not isinstance(df, pd.DataFrame) or df.empty:
            raise ValueError(f"matrices[{name!r}] must be a non-empty DataFrame (source x target)")
    k = len(matrices)
    side = max(1.9, 0.55 * max(len(df.columns) for df in matrices.values()) + 0.6)
    fig, axes = plt.subplots(1, k, figsize=(min(9.0, side * k + 1.2), side + 0.9), squeeze=False,
                             layout="constrained")
    axes = list(axes[0])
    for ax, (name, df) in zip(axes, matrices.items()):
        transfer_heatmap(df, ax=ax, title=str(name), cmap=cmap, cbar=False)
        if ax is not axes[0]:
            ax.set_ylabel("")
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap), ax=axes, shrink=0.8)
    bar.set_label("fraction fooled")
    if title:
        fig.suptitle(title)
    return axes


def _accuracy_lines(results: Mapping[str, tuple[Sequence[float], Sequence[float]]], ax, xlabel: str, ylabel: str,
                    title: str | None, what: str):
    """The house style of an accuracy plot: one marked line per model, y in [0, 1.02], grid, legend.

    results: name -> (x_list, acc_list) of equal, non-zero length; `what` names x in error messages.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results must be a non-empty dict name -> ({what}_list, acc_list)")
    for name, pair in results.items():
        if len(pair) != 2 or len(pair[0]) != len(pair[1]) or not len(pair[0]):
            raise ValueError(f"results[{name!r}] must be ({what}_list, acc_list) of the same non-zero length")
    ax = _axes(ax, (5.0, 3.5))
    for name, pair in results.items():
        # clip_on=False: a marker at accuracy 0 or 1, or at the last x, is drawn whole
        ax.plot(list(pair[0]), list(pair[1]), marker="o", label=str(name), clip_on=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def accuracy_vs_eps(results: Mapping[str, tuple[Sequence[float], Sequence[float]]], ax=None,
                    xlabel: str = "eps (pixel units, images in [0, 1])", ylabel: str = "accuracy",
                    title: str | None = None):
    """One line per model: accuracy (in [0, 1]) against the attack budget eps.

    results: name -> (eps_list, acc_list) of equal length.
    """
    return _accuracy_lines(results, ax, xlabel, ylabel, title, "eps")


def accuracy_vs_steps(results: Mapping[str, tuple[Sequence[int], Sequence[float]]], ax=None,
                      xlabel: str = "attack steps", ylabel: str = "accuracy under attack",
                      title: str | None = None, log_x: bool | None = None):
    """One line per model: accuracy (in [0, 1]) against the number of attack iterations (SiN Fig. 2c,
    the step-count curves of SiN Fig. 3; any chapter that checks whether an attack has converged).

    results: name -> (steps_list, acc_list) of equal length, steps >= 0. log_x: a logarithmic x
    axis; None picks it when the steps span more than a factor of 20. On a log axis that includes
    0 steps (the clean accuracy), 0..1 is linear (symlog) and the axis starts at 0; otherwise it is
    a plain log axis from the first step. The x limits leave room for the first and last markers.
    """
    steps = [s for pair in results.values() for s in pair[0]] if isinstance(results, Mapping) else []
    if steps and min(steps) < 0:
        raise ValueError(f"results: steps must be >= 0, got {min(steps)}")
    ax = _accuracy_lines(results, ax, xlabel, ylabel, title, "steps")
    positive = [s for s in steps if s > 0]
    if log_x is None:
        log_x = bool(positive) and max(positive) / min(positive) > 20
    low, high = min(steps), max(steps)
    if log_x and positive:
        if low == 0:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(0, high * 1.3)
        else:
            ax.set_xscale("log")
            ax.set_xlim(low / 1.3, high * 1.3)
        ax.xaxis.set_major_formatter(_PLAIN)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        pad = max(0.5, 0.04 * (high - low))
        ax.set_xlim(low - pad, high + pad)
    return ax


def training_curves(histories: Mapping[str, Sequence[Mapping]], metrics: Sequence[str] = ("clean_acc", "robust_acc"),
                    axes=None, labels: Mapping[str, str] | None = None, title: str | None = None):
    """Per-epoch metrics of several trained models, one panel a metric, one line a model (SiN Fig.
    2a/2b; any chapter that plots `cache.history`).

    histories: name -> the per-epoch records of `cache.history` (dicts with "epoch" and the metrics).
    metrics: the record keys to plot, one panel each; accuracies ("..._acc") get the [0, 1.02] axis.
    axes: a sequence of len(metrics) Axes, or None for a new row of panels. labels: metric -> panel
    title (default: the key). Returns the list of Axes. x is the record's 1-based "epoch" (fit's).
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty dict name -> list of per-epoch records")
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of record keys, got {metrics!r}")
    for name, history in histories.items():
        if not history or not all(isinstance(r, Mapping) for r in history):
            raise ValueError(f"histories[{name!r}] must be a non-empty list of per-epoch dicts")
        for metric in metrics:
            if any(metric not in r for r in history):
                known = sorted(set().union(*(r.keys() for r in history)))
                raise ValueError(f"histories[{name!r}] has no metric {metric!r} in every epoch; it records {known}")
    if axes is None:
        # constrained layout makes room for the suptitle above the panel titles
        _, axes = plt.subplots(1, len(metrics), figsize=(min(9.0, 4.3 * len(metrics)), 3.6), squeeze=False,
                               layout="constrained")
        axes = list(axes[0])
    axes = list(axes)
    if len(axes) != len(metrics):
        raise ValueError(f"axes must hold one Axes a metric ({len(metrics)}), got {len(axes)}")
    labels = dict(labels or {})
    for ax, metric in zip(axes, metrics):
        for name, history in histories.items():
            epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
            ax.plot(epochs, [r[metric] for r in history], marker="o", label=str(name))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel("accuracy" if metric.endswith("_acc") else metric)
        if metric.endswith("_acc"):
            ax.set_ylim(0.0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.set_title(labels.get(metric, metric))
    axes[-1].legend(fontsize="small")
    if title:
        axes[0].figure.suptitle(title)
    return axes


def rolling_training_curves(histories: Mapping[str, Sequence[Mapping]], metrics: Sequence[str], window: int = 30,
                            axes=None, labels: Mapping[str, str] | None = None, title: str | None = None):
    """`training_curves` of the rolling mean of each metric over `window` epochs (the trailing
    mean, over fewer epochs at the start), with the per-epoch values as faint dots behind (DVERGE
    Fig. 2, a rolling average with window 30). NaN epochs are skipped by the mean. Returns the Axes.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1 (epochs), got {window!r}")
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of record keys, got {metrics!r}")
    rolled = {}
    for name, history in (histories.items() if isinstance(histories, Mapping) else []):
        frame = pd.DataFrame([{m: r.get(m, float("nan")) for m in metrics} for r in history], dtype=float)
        means = frame.rolling(window, min_periods=1).mean()
        rolled[name] = [{**record, **means.iloc[i].to_dict()} for i, record in enumerate(history)]
    axes = training_curves(rolled if rolled else histories, metrics, axes=axes, labels=labels, title=title)
    for ax, metric in zip(axes, metrics):
        for line, history in zip(ax.get_lines(), histories.values()):
            epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
            ax.scatter(epochs, [r[metric] for r in history], s=10, alpha=0.3, color=line.get_color())
        if window > 1:
            ax.set_ylabel(f"{metric} (rolling mean, {window} epochs)")
    return axes


def decision_regions(grid, *, classes: Sequence[str] | None = None, axes=None, title: str | None = None):
    """Decision regions around one image (DVERGE Fig. 1), one panel per model, colours fixed per
    class across panels: a grid computed by `evaluation.decision_grid`.

    grid: its `regions` (name -> (R, R) array of predicted classes, rows along the surrogate's
    adversarial direction, columns along the random direction), `eps` (the half-width, pixel
    units), `label` (the true class, marked in the legend) and `num_classes`. The image itself is
    the centre (marked with a star). classes: the class names (default their indices). axes: one
    Axes a model, or None for a new row of panels. Returns the list of Axes, in the regions' order.
    """
    regions, eps = getattr(grid, "regions", None), getattr(grid, "eps", None)
    label, num_classes = getattr(grid, "label", None), getattr(grid, "num_classes", None)
    if not isinstance(regions, Mapping) or not regions or eps is None or label is None or num_classes is None:
        raise ValueError("grid must be a decision grid (regions, eps, label, num_classes), "
                         "e.g. from evaluation.decision_grid")
    for name, region in regions.items():
        if np.ndim(region) != 2 or np.shape(region)[0] != np.shape(region)[1]:
            raise ValueError(f"grid.regions[{name!r}] must be a square 2-D array of classes, "
                             f"got shape {np.shape(region)}")
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"classes must name all {num_classes} classes, got {len(classes)}")
    palette = sns.color_palette("tab10" if num_classes <= 10 else "tab20", num_classes)
    cmap, norm = ListedColormap(palette), BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)
    if axes is None:
        _, axes = plt.subplots(1, len(regions), figsize=(min(9.0, 2.2 * len(regions) + 1.6), 2.8), squeeze=False,
                               layout="constrained")
    axes = list(np.ravel(axes)) if not isinstance(axes, plt.Axes) else [axes]
    if len(axes) != len(regions):
        raise ValueError(f"axes must hold one Axes a model ({len(regions)}), got {len(axes)}")
    for ax, (name, region) in zip(axes, regions.items()):
        ax.imshow(region, origin="lower", extent=(-eps, eps, -eps, eps), cmap=cmap, norm=norm,
                  interpolation="nearest", aspect="equal")
        ax.plot(0, 0, marker="*", color="black", markersize=8)
        ax.set_title(str(name), fontsize=10)
        ax.set_xticks([-eps, 0, eps])
        ax.set_yticks([-eps, 0, eps])
        ax.xaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.tick_params(labelsize=9)
        ax.set_xlabel("random direction", fontsize=9)
    axes[0].set_ylabel("adversarial direction", fontsize=9)
    shown = sorted(set(np.concatenate([np.ravel(r) for r in regions.values()]).tolist()))
    names = list(classes) if classes is not None else [str(c) for c in range(num_classes)]
    axes[-1].legend(handles=[Patch(color=palette[c], label=str(names[c]) + (" (true)" if c == label else ""))
                             for c in shown], bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9, frameon=False)
    if title:
        axes[0].figure.suptitle(title)
    return axes
