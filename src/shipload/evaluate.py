"""Score predictions against labels: metrics by condition, bootstrap intervals, plots, report."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipload import CLASSES
from shipload.bands import CONDITION_BANDS, band_masks
from shipload.contract import parse_float
from shipload.errors import DataError, UsageError

# ---------------------------------------------------------------- metrics on arrays


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


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_plots(j: Joined, metrics: dict[str, Any]) -> dict[str, bytes]:
    """Reliability diagram, accuracy vs GSD, ROC, load fraction: PNG bytes by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.array([r["y"] for r in j.rows])
    p = np.array([r["p"] for r in j.rows])
    plots: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(4.2, 4))
    edges = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
    xs = [p[idx == b].mean() for b in range(10) if (idx == b).any()]
    ys = [y[idx == b].mean() for b in range(10) if (idx == b).any()]
    ns = [int((idx == b).sum()) for b in range(10) if (idx == b).any()]
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.plot(xs, ys, "o-", color="C0", label="model")
    for x_, y_, n_ in zip(xs, ys, ns):
        ax.annotate(str(n_), (x_, y_), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="predicted p(laden)", ylabel="observed share laden",
           title=f"Reliability (ECE {metrics['overall']['ece']})")
    ax.legend(loc="upper left")
    plots["reliability"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.8, 4))
    g = np.array([r["gsd_m"] for r in j.rows], dtype=float)
    if np.isfinite(g).any():
        bins = np.geomspace(max(np.nanmin(g), 0.05), np.nanmax(g) * 1.0001, 8)
        cx, acc, lo, hi = [], [], [], []
        for a, b in zip(bins[:-1], bins[1:]):
            m = (g >= a) & (g < b)
            if m.sum() >= 3:
                cx.append(math.sqrt(a * b))
                acc.append(accuracy(y[m], p[m]))
                ci = bootstrap_ci(y[m], p[m], accuracy, n=200)
                lo.append(acc[-1] - ci[0])
                hi.append(ci[1] - acc[-1])
        ax.errorbar(cx, acc, yerr=[lo, hi], fmt="o-", capsize=3)
        ax.set_xscale("log")
    ax.set(xlabel="GSD (m)", ylabel="accuracy", title="Accuracy against GSD (95 % CI)",
           ylim=(0.4, 1.01))
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    plots["accuracy_vs_gsd"] = _png(fig)

    fig, ax = plt.subplots(figsize=(4.2, 4))
    order = np.argsort(-p)
    tp = np.cumsum(y[order] == 1) / max((y == 1).sum(), 1)
    fp = np.cumsum(y[order] == 0) / max((y == 0).sum(), 1)
    ax.plot(np.r_[0, fp], np.r_[0, tp], color="C1")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC (AUROC {metrics['overall']['auroc']})")
    plots["roc"] = _png(fig)

    lt = np.array([r["lf_true"] for r in j.rows], dtype=float)
    lp = np.array([r["lf_pred"] for r in j.rows], dtype=float)
    m = np.isfinite(lt) & np.isfinite(lp)
    if m.any():
        fig, ax = plt.subplots(figsize=(4.2, 4))
        ax.scatter(lt[m], lp[m], s=6, alpha=0.5, c=np.where(y[m] == 1, "C3", "C0"))
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlabel="true load fraction", ylabel="predicted load fraction",
               title=f"Load fraction (MAE {metrics['overall'].get('load_fraction_mae')})")
        plots["load_fraction"] = _png(fig)
    return plots


def _thumb(path: str, size: int = 112) -> str:
    import cv2

    from shipload.data.io import read_chip

    try:
        img = read_chip(path)
    except Exception:
        return ""
    im = cv2.resize((img * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode() if ok else ""


HEADINGS = {"n": "chips", "accuracy": "accuracy", "f1": "F1", "auroc": "AUROC",
            "ece": "calibration error (ECE)", "brier": "Brier score",
            "load_fraction_mae": "load fraction MAE"}
"""Report column headings of the metric keys."""


def _f(v: Any) -> str:
    """A metric for the page: three decimals, integers as they are, n/a when undefined."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return "–".join(_f(x) for x in v)
    return html.escape(str(v))


def _table(d: dict[str, dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(HEADINGS.get(c, c))}</th>" for c in ["band", *cols])
    body = ""
    for band, m in d.items():
        cells = "".join(f"<td>{_f(m.get(c))}</td>" for c in cols)
        body += f"<tr><td>{html.escape(band)}</td>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _confusion_table(c: list[list[int]]) -> str:
    """Rows the truth, columns the call."""
    head = "<tr><th>truth \\ call</th>" + "".join(f"<th>{k}</th>" for k in CLASSES) + "</tr>"
    body = "".join(f"<tr><th>{CLASSES[i]}</th>" + "".join(f"<td>{v}</td>" for v in row)
                   + "</tr>" for i, row in enumerate(c))
    return f"<table>{head}{body}</table>"


def write_html(out: Path, j: Joined, metrics: dict[str, Any], plots: dict[str, bytes],
               n_gallery: int = 12) -> Path:
    """A single self-contained page: metrics, plots and galleries (images embedded)."""
    o = metrics["overall"]
    cols = ["n", "accuracy", "f1", "auroc", "ece", "brier", "load_fraction_mae"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>shipload evaluation</title><style>body{font-family:sans-serif;margin:24px;"
        "color:#222}table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}th{background:#f0f0f0}.g{display:flex;flex-wrap:wrap;"
        "gap:8px}.c{width:120px;font-size:11px;text-align:center}.plots img{margin:4px;"
        "border:1px solid #ddd}</style></head><body>",
        "<h1>shipload evaluation</h1>",
        f"<p>{o['n']} chips matched. Accuracy <b>{_f(o['accuracy'])}</b> "
        f"(95 % CI {_f(o.get('accuracy_ci95'))}), F1 {_f(o['f1'])}, AUROC {_f(o['auroc'])}, "
        f"ECE {_f(o['ece'])}, Brier {_f(o['brier'])}, load-fraction MAE "
        f"{_f(o.get('load_fraction_mae'))}.</p>",
        "<h2>Confusion</h2>" + _confusion_table(o["confusion"]),
    ]
    jn = metrics["join"]
    parts.append(f"<p>Join: {jn['matched']} matched, {jn['unmatched_predictions']} predictions "
                 f"without a label, {jn['unmatched_labels']} labels without a prediction, "
                 f"{jn['duplicate_predictions']} duplicate predictions, "
                 f"{jn['prediction_errors']} prediction errors.</p>")
    for col, bands in metrics["by"].items():
        parts.append(f"<h2>By {html.escape(col)}</h2>" + _table(bands, cols))
    if "abstain" in metrics:
        a = metrics["abstain"]
        parts.append(f"<h2>Abstention</h2><p>p(laden) in {a['band']} → uncertain: "
                     f"{a['uncertain']} chips; coverage {_f(a['coverage'])}, accuracy on the "
                     f"rest {_f(a['accuracy_on_covered'])}.</p>")
    parts.append("<h2>Coverage against accuracy</h2><table><tr><th>uncertain band</th>"
                 "<th>coverage</th><th>accuracy</th></tr>" + "".join(
                     f"<tr><td>{c['band']}</td><td>{_f(c['coverage'])}</td>"
                     f"<td>{_f(c['accuracy'])}</td>"
                     "</tr>" for c in metrics["coverage_vs_accuracy"]) + "</table>")
    parts.append("<h2>Plots</h2><div class='plots'>" + "".join(
        f"<img alt='{k}' src='data:image/png;base64,{base64.b64encode(v).decode()}'>"
        for k, v in plots.items()) + "</div>")
    rows = j.rows
    wrong = sorted([r for r in rows if (r["p"] >= 0.5) != (r["y"] == 1)],
                   key=lambda r: -abs(r["p"] - 0.5))[:n_gallery]
    unsure = sorted(rows, key=lambda r: abs(r["p"] - 0.5))[:n_gallery]
    for title, sel in (("Most confident errors", wrong), ("Least confident calls", unsure)):
        parts.append(f"<h2>{title}</h2><div class='g'>")
        if not sel:
            parts.append("<p>none</p>")
        for r in sel:
            t = _thumb(r["path"])
            img = f"<img alt='chip' src='data:image/png;base64,{t}'>" if t else "(unreadable)"
            parts.append(f"<div class='c'>{img}<br>label {CLASSES[r['y']]}<br>"
                         f"p_laden {r['p']:.3f}<br>GSD {r['gsd_m']:.2f} m<br>"
                         f"{html.escape(Path(r['path']).name)}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page


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
