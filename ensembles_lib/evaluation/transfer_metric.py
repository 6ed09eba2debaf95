"""TREND's transferability metric (Sec. IV-D, Eq. 3-5): transfer counts against the budget, their
exponential-CDF fits, and TM(eps) = f_st(eps) / f_ss(eps) predicted from a few budgets.

f_st(eps) is the number of kept images (classified correctly by every model) whose adversarial
version, made on source s at budget eps, fools both s and target t (TREND's "transferred");
f_ss(eps) the number that fool s itself. TREND fits both as the CDF of an exponential
distribution. Eq. 3 is printed as a(1 - e^{b eps}), which saturates only for b < 0; we fit the
saturating form with a positive rate,

    f(eps) = a (1 - exp(-b eps)),  a >= 0, b > 0,                             (Eq. 3-4)

by least squares: for a fixed b the best a is linear (a = sum y g / sum g^2 with
g = 1 - exp(-b eps)), so the fit is a one-dimensional search over log b, a grid then a bounded
refinement; no starting guess, hence no fit that fails to converge. Counts are in images, budgets
in pixel units. Used by the TREND chapter (its Fig. 5-6 and Table III, and the ensemble selection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from .transfer import transfer_fooled

# the search range of b * max(eps): from a nearly straight line (1e-3) to a step at the first budget (1e4)
_RATE_RANGE = (-3.0, 4.0)
_RATE_GRID = 701


@dataclass(frozen=True)
class ExpCDF:
    """f(eps) = a (1 - exp(-b eps)): `a` the saturation count (images), `b` the rate (per pixel unit)."""
    a: float
    b: float

    def __call__(self, eps) -> np.ndarray:
        return self.a * -np.expm1(-self.b * np.asarray(eps, dtype=float))  # Eq. 3-4, negative exponent


def _check_curve(eps, counts) -> tuple[np.ndarray, np.ndarray]:
    eps, counts = np.asarray(eps, dtype=float), np.asarray(counts, dtype=float)
    if eps.ndim != 1 or counts.shape != eps.shape:
        raise ValueError(f"eps and counts must be 1-D of one length, got shapes {eps.shape} and {counts.shape}")
    if not (np.isfinite(eps).all() and np.isfinite(counts).all()):
        raise ValueError("eps and counts must be finite numbers")
    if (eps < 0).any() or (counts < 0).any():
        raise ValueError("eps and counts must be >= 0 (budgets in pixel units, counts in images)")
    if (eps > 0).sum() < 2:
        raise ValueError(f"fitting Eq. 3 needs at least 2 budgets above 0, got eps={eps.tolist()}")
    return eps, counts


def fit_exp_cdf(eps: Sequence[float], counts: Sequence[float]) -> ExpCDF:
    """The least-squares ExpCDF through (eps, counts) (TREND fits it from 4 budgets).

    All-zero counts give a = 0 (nothing transfers at any budget). ValueError for mismatched,
    negative or non-finite inputs, or fewer than two budgets above 0.
    """
    eps, counts = _check_curve(eps, counts)
    if not counts.any():
        return ExpCDF(0.0, 1.0 / eps.max())
    scale = eps.max()

    def sse(log_u: float) -> float:
        g = -np.expm1(-(10.0 ** log_u / scale) * eps)
        a = max(float(counts @ g) / float(g @ g), 0.0)
        return float(((counts - a * g) ** 2).sum())

    grid = np.linspace(*_RATE_RANGE, _RATE_GRID)
    best = int(np.argmin([sse(u) for u in grid]))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    log_u = minimize_scalar(sse, bounds=(low, high), method="bounded", options={"xatol": 1e-6}).x
    b = 10.0 ** log_u / scale
    g = -np.expm1(-b * eps)
    return ExpCDF(max(float(counts @ g) / float(g @ g), 0.0), float(b))


def rmse(fit: ExpCDF, eps: Sequence[float], counts: Sequence[float]) -> float:
    """Root mean square of counts - fit(eps), in images (TREND Table III's standard error)."""
    eps, counts = np.asarray(eps, dtype=float), np.asarray(counts, dtype=float)
    return float(np.sqrt(np.mean((counts - fit(eps)) ** 2)))


@dataclass(frozen=True)
class TransferCurves:
    """Transfer at several budgets on one fixed image set: `fooled[e, s, t, i]` says whether image
    i's adversarial version made on source s at budget eps[e] fools target t (the images are those
    every model classifies correctly, `n_images` of them)."""
    names: tuple[str, ...]
    eps: tuple[float, ...]
    fooled: torch.Tensor

    @property
    def n_images(self) -> int:
        return int(self.fooled.shape[-1])

    def index(self, eps: float) -> int:
        """The position of budget `eps` (ValueError listing the measured budgets)."""
        matches = [k for k, e in enumerate(self.eps) if abs(e - eps) <= 1e-9]
        if not matches:
            raise ValueError(f"eps must be one of the measured budgets {list(self.eps)}, got {eps!r}")
        return matches[0]

    def transferred(self, eps: float) -> torch.Tensor:
        """bool (S, S, n): fools the source and the target (TREND's transfer); the diagonal is f_ss's."""
        fooled = self.fooled[self.index(eps)]
        return fooled & fooled.diagonal().T.unsqueeze(1)

    def counts(self) -> np.ndarray:
        """(E, S, S) f_st(eps) in images, the diagonal f_ss(eps)."""
        source_fooled = self.fooled.diagonal(dim1=1, dim2=2).permute(0, 2, 1).unsqueeze(2)  # (E, S, 1, n)
        return (self.fooled & source_fooled).sum(-1).cpu().numpy()

    def matrix(self, eps: float) -> pd.DataFrame:
        """f_st(eps) / n: the share of the images that transfer from each source to each target (TREND's
        confusion matrices, Fig. 1-2; the diagonal is the source's white-box success), attrs n_images."""
        with np.errstate(divide="ignore", invalid="ignore"):
            table = _square(self.counts()[self.index(eps)] / self.n_images, self.names)
        table.attrs["n_images"] = self.n_images
        return table

    def pair_share(self, eps: float, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """float (n,): per image, the share of the (source, target) `pairs` it transfers between at
        `eps` (TREND's transfer), the per-image score of the chapter's paired claims."""
        if not pairs:
            raise ValueError("pairs must hold at least one (source, target) pair")
        unknown = sorted({m for pair in pairs for m in pair} - set(self.names))
        if unknown:
            raise ValueError(f"pairs name models {unknown} not among {list(self.names)}")
        transferred = self.transferred(eps)
        return torch.stack([transferred[self.names.index(s), self.names.index(t)] for s, t in pairs]).float().mean(0)

    def frame(self) -> pd.DataFrame:
        """The counts as a table: one row per budget, one column per (source, target)."""
        counts = self.counts()
        columns = pd.MultiIndex.from_product([self.names, self.names], names=["source", "target"])
        return pd.DataFrame(counts.reshape(len(self.eps), -1), index=pd.Index(self.eps, name="eps"), columns=columns)

    def fits(self, fit_eps: Sequence[float]) -> dict[tuple[str, str], ExpCDF]:
        """Every (source, target) curve fitted from the budgets `fit_eps` only (Eq. 3-4)."""
        rows = [self.index(e) for e in fit_eps]
        counts = self.counts()[rows]
        return {(s, t): fit_exp_cdf([self.eps[r] for r in rows], counts[:, i, j])
                for i, s in enumerate(self.names) for j, t in enumerate(self.names)}

    def measured_tm(self, eps: float) -> pd.DataFrame:
        """TM(eps) = f_st / f_ss from the counts measured at `eps` (Eq. 5; NaN where f_ss = 0)."""
        counts = self.counts()[self.index(eps)].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            tm = counts / np.diag(counts)[:, None]
        return _square(tm, self.names)

    def predicted_tm(self, fits: dict[tuple[str, str], ExpCDF], eps: float) -> pd.DataFrame:
        """TM(eps) = f_st(eps) / f_ss(eps) from the fitted curves (Eq. 5), at any budget."""
        value = {key: float(fit(eps)) for key, fit in fits.items()}
        tm = np.array([[value[(s, t)] / value[(s, s)] if value[(s, s)] > 0 else np.nan for t in self.names]
                       for s in self.names])
        return _square(tm, self.names)


def _square(values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(values, index=pd.Index(names, name="source"), columns=pd.Index(names, name="target"))


def transfer_curves(models: dict[str, nn.Module] | Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                    attack_at: Callable[[float], Callable], eps: Sequence[float],
                    batch_size: int = 512) -> TransferCurves:
    """TransferCurves of `models` at every budget of `eps`: `attack_at(e)` returns the attack
    `attack(model, x, y) -> x_adv` at budget e. The images are those of (x, y) every model
    classifies correctly, the same at every budget; when there is none (members that barely learned),
    the curves hold no image (`n_images` 0: counts 0, shares and TM NaN) rather than failing, so a
    chapter can report its claims undecided. ValueError for an empty or repeated budget list."""
    eps = tuple(float(e) for e in eps)
    if not eps or len(set(eps)) != len(eps) or min(eps) < 0:
        raise ValueError(f"eps must be distinct budgets >= 0, at least one, got {list(eps)}")
    results = [transfer_fooled(models, x, y, attack_at(e), batch_size, allow_empty=True) for e in eps]
    return TransferCurves(tuple(results[0][0]), eps, torch.stack([fooled for _, _, fooled in results]))


def mean_pairwise(tm: pd.DataFrame, members: Sequence[str]) -> float:
    """The mean over pairs of `members` of TM averaged over both directions (TREND Sec. V-B's
    selection score: low means little transfer within the would-be ensemble)."""
    pairs = [(a, b) for i, a in enumerate(members) for b in members[i + 1:]]
    if not pairs:
        raise ValueError(f"members must name at least two models, got {list(members)}")
    return float(np.mean([(tm.loc[a, b] + tm.loc[b, a]) / 2 for a, b in pairs]))
