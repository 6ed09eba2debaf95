"""The figures the chapters share: transfer heatmaps (TREND, DVERGE) and accuracy-vs-eps curves
(every robustness chapter). Each function draws on `ax` (a new figure if None) and returns the Axes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


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


def accuracy_vs_eps(results: Mapping[str, tuple[Sequence[float], Sequence[float]]], ax=None,
                    xlabel: str = "eps (pixel units, images in [0, 1])", ylabel: str = "accuracy",
                    title: str | None = None):
    """One line per model: accuracy (in [0, 1]) against the attack budget eps.

    results: name -> (eps_list, acc_list) of equal length.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict name -> (eps_list, acc_list)")
    ax = _axes(ax, (5.0, 3.5))
    for name, pair in results.items():
        if len(pair) != 2 or len(pair[0]) != len(pair[1]) or not len(pair[0]):
            raise ValueError(f"results[{name!r}] must be (eps_list, acc_list) of the same non-zero length")
        ax.plot(list(pair[0]), list(pair[1]), marker="o", label=str(name))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax
