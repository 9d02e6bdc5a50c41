"""Metrics of calls against labels, on arrays: accuracy, F1, AUROC, ECE, Brier, intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Share of calls (p_laden >= 0.5 → laden) that match labels ``y`` (0/1)."""
    return float(((p >= 0.5).astype(int) == y).mean()) if len(y) else math.nan


def f1(y: np.ndarray, p: np.ndarray) -> float:
    """F1 of the ``laden`` class."""
    pred = p >= 0.5
    tp = float((pred & (y == 1)).sum())
    fp = float((pred & (y == 0)).sum())
    fn = float((~pred & (y == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else math.nan


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) statistic; ties count half."""
    pos, neg = p[y == 1], p[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allp = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allp))
    i = 0
    while i < len(allp):  # average ranks over ties
        j = i
        while j + 1 < len(allp) and allp[j + 1] == allp[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allp))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the predicted class's confidence, equal-width bins."""
    if not len(y):
        return math.nan
    conf = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y).astype(float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of p_laden against the 0/1 label."""
    return float(((p - y) ** 2).mean()) if len(y) else math.nan


def confusion(y: np.ndarray, p: np.ndarray) -> list[list[int]]:
    """[[empty→empty, empty→laden], [laden→empty, laden→laden]] (rows: truth)."""
    pred = (p >= 0.5).astype(int)
    return [[int(((y == t) & (pred == q)).sum()) for q in (0, 1)] for t in (0, 1)]


METRICS = {"accuracy": accuracy, "f1": f1, "auroc": auroc, "ece": ece, "brier": brier}


def bootstrap_ci(y: np.ndarray, p: np.ndarray, fn: Any, n: int = 500,
                 seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of metric ``fn``, recentred on the estimate.

    The percentiles are shifted by the bootstrap median's offset from the point estimate.
    For unbiased metrics (accuracy) the offset is ~0 and this is the plain percentile
    interval; ECE is biased upward under resampling (a resample's bins hold duplicates), and
    there the plain interval can lie wholly above the estimate. The width, the uncertainty,
    is kept either way.
    """
    if len(y) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        v = fn(y[i], p[i])
        if not math.isnan(v):
            vals.append(v)
    if not vals:
        return (math.nan, math.nan)
    lo, med, hi = np.percentile(vals, [2.5, 50, 97.5])
    theta = fn(y, p)
    shift = 0.0 if math.isnan(theta) else float(med - theta)
    return (float(lo - shift), float(hi - shift))


def summarise(y: np.ndarray, p: np.ndarray, lf_true: np.ndarray | None = None,
              lf_pred: np.ndarray | None = None, ci: bool = True) -> dict[str, Any]:
    """Every metric (with bootstrap 95 % intervals) for one group of chips."""
    out: dict[str, Any] = {"n": int(len(y))}
    for name, fn in METRICS.items():
        v = fn(y, p)
        out[name] = None if math.isnan(v) else round(v, 5)
        if ci and len(y) >= 2:
            lo, hi = bootstrap_ci(y, p, fn)
            out[f"{name}_ci95"] = [None if math.isnan(lo) else round(lo, 5),
                                   None if math.isnan(hi) else round(hi, 5)]
    out["confusion"] = confusion(y, p)
    if lf_true is not None and lf_pred is not None:
        m = np.isfinite(lf_true) & np.isfinite(lf_pred)
        if m.any():
            out["load_fraction_mae"] = round(float(np.abs(lf_true[m] - lf_pred[m]).mean()), 5)
    return out
