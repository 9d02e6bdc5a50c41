"""Score predictions against labels: join them, metrics by condition, write the report.

The metrics live in ``shipload.metrics``, the plots and the page in ``shipload.report``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipload.bands import CONDITION_BANDS, band_masks
from shipload.contract import parse_float
from shipload.errors import DataError, UsageError
from shipload.metrics import accuracy, summarise
from shipload.report import make_plots, write_html

# ---------------------------------------------------------------- reading and joining


@dataclass
class Joined:
    """Predictions matched to labels, and what did not match."""

    rows: list[dict[str, Any]]  # one per matched, successfully predicted chip
    unmatched_predictions: list[str]
    unmatched_labels: list[str]
    duplicate_predictions: list[str]
    error_rows: list[dict[str, Any]]


def join(preds: list[dict[str, Any]], labels: str | Path, base: Path | None = None) -> Joined:
    """Join predictions to labels; report what does not match.

    A prediction matches a label by its resolved path; else by the label's path relative to
    the labels' root (``images/0001.png``) as the end of the prediction's path, so chips that
    were copied or moved still match; else by file name when that name is unique on both
    sides.
    """
    from shipload.data.datasets import read_image_folder, read_manifest

    lp = Path(labels)
    if lp.suffix == ".csv":
        recs, root = read_manifest(lp, check_files=False), lp.parent
    elif (lp / "labels.csv").is_file():
        recs, root = read_manifest(lp / "labels.csv", check_files=False), lp
    elif lp.is_dir():
        recs, root = read_image_folder(lp), lp
    else:
        raise UsageError(f"labels not found: {lp}; give a manifest CSV or an ImageFolder root")
    root = root.resolve()
    by_path = {str(r.path.resolve()): r for r in recs}
    by_rel = {r.path.resolve().relative_to(root).as_posix(): k for k, r in by_path.items()
              if r.path.resolve().is_relative_to(root)}
    names: dict[str, list[str]] = {}
    for k in by_path:
        names.setdefault(Path(k).name, []).append(k)
    pred_names: dict[str, int] = {}
    for row in preds:
        n = Path(str(row["path"])).name
        pred_names[n] = pred_names.get(n, 0) + 1

    def label_key(p: Path) -> str | None:
        key = str(p)
        if key in by_path:
            return key
        parts = p.parts
        for k in range(len(parts) - 1, 0, -1):  # the longest matching tail first
            hit = by_rel.get("/".join(parts[-k:]))
            if hit:
                return hit
        same = names.get(p.name, [])
        return same[0] if len(same) == 1 and pred_names.get(p.name) == 1 else None

    seen: dict[str, dict[str, Any]] = {}
    dups: list[str] = []
    errors: list[dict[str, Any]] = []
    unmatched_p: list[str] = []
    base = base or Path.cwd()
    for row in preds:
        key = label_key((base / str(row["path"])).resolve())
        if key is None:
            unmatched_p.append(str(row["path"]))
            continue
        if key in seen:
            dups.append(str(row["path"]))
            continue
        seen[key] = row
    rows = []
    for key, row in seen.items():
        r = by_path[key]
        if row.get("status", "ok") != "ok":
            errors.append(row)
            continue
        rows.append({"path": key, "y": r.label, "p": parse_float(row["p_laden"]),
                     "lf_pred": parse_float(row.get("load_fraction")), "lf_true": r.load_fraction,
                     "gsd_m": r.gsd_m,
                     **{k: parse_float(v) for k, v in r.meta.items() if k in CONDITION_BANDS}})
    unmatched_l = [str(r.path) for k, r in by_path.items() if k not in seen]
    return Joined(rows, unmatched_p, unmatched_l, dups, errors)


# ---------------------------------------------------------------- report


def compute_metrics(j: Joined, abstain: tuple[float, float] | None = None) -> dict[str, Any]:
    """metrics.json content: overall, per band of each condition, abstention, join report."""
    if not j.rows:
        ex_p = ", ".join(j.unmatched_predictions[:3]) or "none"
        ex_l = ", ".join(j.unmatched_labels[:3]) or "none"
        raise DataError("no prediction matched a label (by path, by the path under the labels' "
                        "folder, or by a unique file name); check that both name the same "
                        f"files. Predictions, e.g.: {ex_p}. Labels, e.g.: {ex_l}")
    y = np.array([r["y"] for r in j.rows])
    p = np.array([r["p"] for r in j.rows])
    lt = np.array([r["lf_true"] for r in j.rows])
    lp = np.array([r["lf_pred"] for r in j.rows])
    out: dict[str, Any] = {"overall": summarise(y, p, lt, lp), "by": {}}
    for col, bands in CONDITION_BANDS.items():
        v = np.array([r.get(col, math.nan) for r in j.rows], dtype=float)
        if not np.isfinite(v).any():
            continue
        out["by"][col] = {name: summarise(y[m], p[m], lt[m], lp[m])
                          for name, m in band_masks(v, bands).items() if m.any()}
    cov = []
    for half in (0.0, 0.05, 0.1, 0.2, 0.3, 0.4):
        keep = np.abs(p - 0.5) >= half
        cov.append({"band": [round(0.5 - half, 2), round(0.5 + half, 2)] if half else "none",
                    "coverage": round(float(keep.mean()), 5),
                    "accuracy": round(accuracy(y[keep], p[keep]), 5) if keep.any() else None})
    out["coverage_vs_accuracy"] = cov
    if abstain:
        lo, hi = abstain
        unsure = (p >= lo) & (p <= hi)
        out["abstain"] = {"band": [lo, hi], "uncertain": int(unsure.sum()),
                          "coverage": round(float((~unsure).mean()), 5),
                          "accuracy_on_covered": round(accuracy(y[~unsure], p[~unsure]), 5)
                          if (~unsure).any() else None}
    out["join"] = {"matched": len(j.rows), "unmatched_predictions": len(j.unmatched_predictions),
                   "unmatched_labels": len(j.unmatched_labels),
                   "duplicate_predictions": len(j.duplicate_predictions),
                   "prediction_errors": len(j.error_rows),
                   "examples": {"unmatched_predictions": j.unmatched_predictions[:10],
                                "unmatched_labels": j.unmatched_labels[:10],
                                "duplicate_predictions": j.duplicate_predictions[:10]}}
    return out


def evaluate(predictions: str | Path, labels: str | Path, out: str | Path,
             abstain: tuple[float, float] | None = None) -> dict[str, Any]:
    """Write ``metrics.json``, the plots and ``index.html`` into ``out``.

    Args:
        predictions: output of ``shipload predict`` (csv, jsonl, parquet).
        labels: manifest CSV, a folder with ``labels.csv``, or an ImageFolder root.
        out: report folder.
        abstain: (low, high): calls with p_laden inside become ``uncertain``.

    Returns:
        The metrics.
    """
    if abstain and not 0 <= abstain[0] <= abstain[1] <= 1:
        raise UsageError(f"--abstain must be LOW-HIGH within 0-1, got {abstain}")
    pp = Path(predictions)
    from shipload.batch import read_rows

    j = join(read_rows(pp), labels, base=Path.cwd())
    metrics = compute_metrics(j, abstain)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    (outp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots = make_plots(j, metrics)
    for k, v in plots.items():
        (outp / f"{k}.png").write_bytes(v)
    write_html(outp, j, metrics, plots)
    return metrics
