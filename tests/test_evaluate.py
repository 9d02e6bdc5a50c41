"""Metrics against hand-computed values, the join, and the report page."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from shipload.evaluate import evaluate
from shipload.metrics import accuracy, auroc, bootstrap_ci, brier, confusion, ece, f1
from tests.conftest import chromium_screenshot

Y = np.array([0, 0, 1, 1, 1, 0])
P = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.3])


def test_metrics_by_hand() -> None:
    # calls: 0 1 1 0 1 0 → right: T F T F T T
    assert accuracy(Y, P) == pytest.approx(4 / 6)
    # laden: tp=2 (0.8, 0.9), fp=1 (0.6), fn=1 (0.4) → F1 = 4 / (4 + 1 + 1)
    assert f1(Y, P) == pytest.approx(4 / 6)
    # pairs (pos, neg): 3 x 3 = 9; pos 0.8 beats 0.1, 0.6, 0.3 (3); 0.4 beats 0.1, 0.3 (2);
    # 0.9 beats all (3) → 8 / 9
    assert auroc(Y, P) == pytest.approx(8 / 9)
    assert brier(Y, P) == pytest.approx(np.mean((P - Y) ** 2))
    assert confusion(Y, P) == [[2, 1], [1, 2]]
    # ECE with one bin over confidences [0.9, 0.6, 0.8, 0.6, 0.9, 0.7]: |4/6 - 0.75|
    assert ece(Y, P, n_bins=1) == pytest.approx(abs(4 / 6 - 0.75))
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.9])))


def test_auroc_ties_count_half() -> None:
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def _fixture(tmp: Path, synth_set: Path) -> tuple[Path, Path]:
    rows = list(csv.DictReader(open(synth_set / "labels.csv")))
    preds = tmp / "p.csv"
    with open(preds, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "p_laden", "load_fraction", "status", "error"])
        for i, r in enumerate(rows[:40]):
            p = 0.9 if r["label"] == "laden" else 0.1
            if i < 4:
                p = 1 - p  # four confident errors
            w.writerow([str(synth_set / r["path"]), "", p, r["load_fraction"], "ok", ""])
        w.writerow([str(synth_set / rows[0]["path"]), "", 0.5, 0.5, "ok", ""])  # duplicate
        w.writerow([str(tmp / "stranger.png"), "", 0.5, 0.5, "ok", ""])  # no label
        w.writerow([str(synth_set / rows[41]["path"]), "", "", "", "error", "corrupt"])
    return preds, synth_set


def test_join_and_report(tmp_path: Path, synth_set: Path) -> None:
    preds, labels = _fixture(tmp_path, synth_set)
    m = evaluate(preds, labels, tmp_path / "rep", abstain=(0.4, 0.6))
    j = m["join"]
    assert (j["matched"], j["duplicate_predictions"], j["unmatched_predictions"]) == (40, 1, 1)
    assert j["prediction_errors"] == 1 and j["unmatched_labels"] == 48 - 41
    assert m["overall"]["accuracy"] == pytest.approx(36 / 40)
    lo, hi = m["overall"]["accuracy_ci95"]
    assert lo <= 0.9 <= hi
    assert "gsd_m" in m["by"] and m["abstain"]["coverage"] == 1.0
    rep = tmp_path / "rep"
    assert json.loads((rep / "metrics.json").read_text())["overall"]["n"] == 40
    for png in ("reliability", "roc", "accuracy_vs_gsd", "load_fraction"):
        assert (rep / f"{png}.png").stat().st_size > 1000

    class Check(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.imgs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "img":
                self.imgs.append(dict(attrs)["src"])
            elif tag not in ("meta", "br"):
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack.pop() == tag, f"unbalanced </{tag}>"

    c = Check()
    c.feed((rep / "index.html").read_text())
    assert not c.stack
    assert len(c.imgs) >= 4 + 8 and all(s.startswith("data:image/png;base64,") for s in c.imgs)


def test_bad_inputs(tmp_path: Path, synth_set: Path) -> None:
    from shipload.errors import DataError, UsageError

    with pytest.raises(UsageError):
        evaluate(tmp_path / "none.csv", synth_set, tmp_path / "r")
    p = tmp_path / "p.csv"
    p.write_text("path,label,p_laden,load_fraction,status,error\nx.png,,0.5,0.5,ok,\n")
    with pytest.raises(DataError, match="no prediction matched"):
        evaluate(p, synth_set, tmp_path / "r")
    with pytest.raises(UsageError, match="abstain"):
        evaluate(p, synth_set, tmp_path / "r", abstain=(0.7, 0.2))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path, synth_set: Path) -> None:
    preds, labels = _fixture(tmp_path, synth_set)
    evaluate(preds, labels, tmp_path / "rep")
    img = chromium_screenshot(tmp_path / "rep" / "index.html", tmp_path / "shot.png", 1200, 1600)
    # A rendered page has text and plots: not a blank white screen.
    assert (img < 200).mean() > 0.02 and img.std() > 20


def test_bootstrap_interval_holds_the_estimate_of_a_biased_metric() -> None:
    # Calibrated scores: ECE is small, and resampling inflates it (duplicates fill the bins);
    # a plain percentile interval then lies wholly above the estimate. Ours must hold it.
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, 3000)
    y = (rng.uniform(0, 1, 3000) < p).astype(int)
    est = ece(y, p)
    boot = []
    for _ in range(300):
        i = rng.integers(0, 3000, 3000)
        boot.append(ece(y[i], p[i]))
    assert np.percentile(boot, 2.5) > est  # the failure this guards against is real here
    lo, hi = bootstrap_ci(y, p, ece)
    assert lo <= est <= hi
    assert hi - lo == pytest.approx(np.subtract(*np.percentile(boot, [97.5, 2.5])), rel=0.3)
    # for an unbiased metric it stays the usual interval around the estimate
    lo, hi = bootstrap_ci(y, p, accuracy)
    assert lo < accuracy(y, p) < hi and hi - lo < 0.06


def test_join_survives_moved_chips(tmp_path: Path, synth_set: Path) -> None:
    """Chips copied elsewhere still match their labels: by the path under the labels' folder,
    or by a unique file name."""
    import csv as _csv

    moved = tmp_path / "copy" / "images"
    moved.mkdir(parents=True)
    names = sorted(p.name for p in (synth_set / "images").iterdir())[:6]
    for n in names:
        (moved / n).write_bytes((synth_set / "images" / n).read_bytes())
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / names[5]).write_bytes((synth_set / "images" / names[5]).read_bytes())
    preds = tmp_path / "p.csv"
    with open(preds, "w", newline="") as f:
        w = _csv.writer(f)
        w.writerow(["path", "label", "p_laden", "load_fraction", "status", "error"])
        for n in names[:5]:
            w.writerow([str(moved / n), "laden", 0.9, 0.9, "ok", ""])
        w.writerow([str(flat / names[5]), "laden", 0.9, 0.9, "ok", ""])  # by name alone
    m = evaluate(preds, synth_set, tmp_path / "rep")
    assert m["join"]["matched"] == 6 and m["join"]["unmatched_predictions"] == 0
