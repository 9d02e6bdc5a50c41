"""The evaluation report: plots (PNG bytes) and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipload import CLASSES
from shipload.data.io import thumbnail_uri
from shipload.metrics import accuracy, bootstrap_ci

if TYPE_CHECKING:
    from shipload.evaluate import Joined


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
            t = thumbnail_uri(r["path"], 112)
            img = f"<img alt='chip' src='{t}'>" if t else "(unreadable)"
            parts.append(f"<div class='c'>{img}<br>label {CLASSES[r['y']]}<br>"
                         f"p_laden {r['p']:.3f}<br>GSD {r['gsd_m']:.2f} m<br>"
                         f"{html.escape(Path(r['path']).name)}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page
