"""Predict's rows as the review page sees them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from shipload.errors import UsageError
from shipload.review.store import LabelStore
from shipload.review.table import Table, gsd_band, wilson
from tests.conftest import write_rows


def _rows(tmp_path: Path) -> Path:
    rows = [{"path": f"c{i}.png", "p_laden": p, "load_fraction": 0.5, "status": "ok",
             "error": "", "gsd_m": g, "vessel_id": f"V{i}"}
            for i, (p, g) in enumerate([(0.9, 0.4), (0.52, 0.8), (0.1, 2.0), (0.45, "")])]
    rows.append({"path": "bad.png", "p_laden": "", "load_fraction": "", "status": "error",
                 "error": "truncated PNG", "gsd_m": "", "vessel_id": ""})
    return write_rows(tmp_path / "p.csv", rows)


def test_order_is_least_sure_first_with_errors_last(tmp_path: Path) -> None:
    t = Table(_rows(tmp_path))
    assert [t.chips[i].key for i in t.order] == ["c1.png", "c3.png", "c0.png", "c2.png",
                                                  "bad.png"]
    assert t.chips[4].call == "" and t.chips[4].error == "truncated PNG"
    assert t.chips[0].file == tmp_path / "c0.png"  # relative paths resolve beside the file


def test_filters_and_counts(tmp_path: Path) -> None:
    t = Table(_rows(tmp_path))
    st = LabelStore(tmp_path / "l.sqlite", "ana")
    st.put("c0.png", "laden")  # agrees
    st.put("c1.png", "empty")  # disagrees (called laden at 0.52)
    st.put("c2.png", "unsure")
    lab = st.current
    key = lambda idx: [t.chips[i].key for i in idx]  # noqa: E731
    assert key(t.select(lab, call="laden")) == ["c1.png", "c0.png"]
    assert key(t.select(lab, call="error")) == ["bad.png"]
    assert key(t.select(lab, band="0.3-0.6")) == ["c0.png"]
    assert key(t.select(lab, band="unknown")) == ["c3.png", "bad.png"]
    assert key(t.select(lab, state="unlabelled")) == ["c3.png", "bad.png"]
    assert key(t.select(lab, state="disagree")) == ["c1.png"]
    assert key(t.select(lab, text="v3")) == ["c3.png"]
    c = t.counts(lab)
    assert (c["labelled"], c["unsure"], c["agree"], c["disagree"]) == (3, 1, 1, 1)
    assert c["accuracy"] == 0.5 and c["interval"][0] < 0.5 < c["interval"][1]


def test_wilson_interval_and_bands() -> None:
    lo, hi = wilson(45, 50)
    assert 0.78 < lo < 0.79 and 0.95 < hi < 0.96  # the textbook values for 45/50
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert gsd_band(0.3) == "0.3-0.6" and gsd_band(3.0) == "1.2-3" and gsd_band(5) == "other"


def test_bad_predictions_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        Table(tmp_path / "nope.csv")
    (tmp_path / "e.csv").write_text("path,p_laden\n")
    with pytest.raises(UsageError, match="no rows"):
        Table(tmp_path / "e.csv")
    write_rows(tmp_path / "x.csv", [{"file": "a.png", "score": 1}])
    with pytest.raises(UsageError, match="no path or p_laden column"):
        Table(tmp_path / "x.csv")
