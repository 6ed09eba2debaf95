"""The figures the chapters share: transfer heatmaps (TREND, DVERGE), accuracy-vs-eps curves
(every robustness chapter), accuracy-vs-attack-steps and per-epoch training curves (SiN),
decision regions (DVERGE). Each function draws on `ax` (a new figure if None) and returns the
Axes. Drawing only: what a figure shows is computed beforehand (by `evaluation`, `cache.history`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch


def _axes(ax, size: tuple[float, float]):
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def transfer_heatmap(df: pd.DataFrame, ax=None, title: str | None = None, cmap: str = "Blues"):
    """A transfer matrix (`evaluation.transfer_matrix`) as an annotated heatmap, colours fixed to 0..1.

    Rows are source models, columns target models. The default title states the number of images
    the matrix was computed on (df.attrs["n_images"]) when it is known.
    """
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df must be a non-empty DataFrame (source x target), e.g. from transfer_matrix")
    size = max(3.0, 0.9 * len(df.columns) + 1.5), max(2.5, 0.7 * len(df.index) + 1.0)
    ax = _axes(ax, size)
    sns.heatmap(df.astype(float), ax=ax, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, cmap=cmap, square=True,
                cbar_kws={"label": "fraction fooled"})
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    if title is None and "n_images" in df.attrs:
        title = f"transfer rate ({df.attrs['n_images']} images)"
    if title:
        ax.set_title(title)
    return ax


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
        ax.plot(list(pair[0]), list(pair[1]), marker="o", label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend()
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

    results: name -> (steps_list, acc_list) of equal length, steps >= 0. log_x: a symmetric-log
    x axis (so 0 steps, the clean accuracy, still shows); None picks it when the steps span more
    than a factor of 20.
    """
    ax = _accuracy_lines(results, ax, xlabel, ylabel, title, "steps")
    steps = [s for pair in results.values() for s in pair[0]]
    if min(steps) < 0:
        raise ValueError(f"results: steps must be >= 0, got {min(steps)}")
    positive = [s for s in steps if s > 0]
    if log_x is None:
        log_x = bool(positive) and max(positive) / min(positive) > 20
    if log_x:
        ax.set_xscale("symlog", linthresh=1)
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
        _, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.3), squeeze=False)
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
        ax.set_ylabel(metric)
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
        _, axes = plt.subplots(1, len(regions), figsize=(2.6 * len(regions) + 1.2, 2.9), squeeze=False)
    axes = list(np.ravel(axes)) if not isinstance(axes, plt.Axes) else [axes]
    if len(axes) != len(regions):
        raise ValueError(f"axes must hold one Axes a model ({len(regions)}), got {len(axes)}")
    for ax, (name, region) in zip(axes, regions.items()):
        ax.imshow(region, origin="lower", extent=(-eps, eps, -eps, eps), cmap=cmap, norm=norm,
                  interpolation="nearest", aspect="equal")
        ax.plot(0, 0, marker="*", color="black", markersize=8)
        ax.set_title(str(name), fontsize=9)
        ax.set_xticks([-eps, 0, eps])
        ax.set_yticks([-eps, 0, eps])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("random direction", fontsize=8)
    axes[0].set_ylabel("surrogate's adversarial direction")
    shown = sorted(set(np.concatenate([np.ravel(r) for r in regions.values()]).tolist()))
    names = list(classes) if classes is not None else [str(c) for c in range(num_classes)]
    axes[-1].legend(handles=[Patch(color=palette[c], label=str(names[c]) + (" (true)" if c == label else ""))
                             for c in shown], bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, frameon=False)
    if title:
        axes[0].figure.suptitle(title)
    return axes
