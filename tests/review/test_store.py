"""The label store: events kept, latest wins, undo, atomic export, import."""

from __future__ import annotations

import csv
import sqlite3
import threading
from pathlib import Path

import pytest

from shipload.review.store import LabelStore


def test_latest_label_wins_and_history_is_kept(tmp_path: Path) -> None:
    st = LabelStore(tmp_path / "l.sqlite", "ana")
    st.put("a.png", "empty")
    st.put("a.png", "laden", "bo")
    st.put("b.png", "unsure")
    assert st.current["a.png"].label == "laden" and st.current["a.png"].user == "bo"
    st.put("b.png", None)  # an undo back to "no label"
    assert "b.png" not in st.current
    assert [e.label for e in st.history("a.png")] == ["empty", "laden"]
    assert [e.label for e in st.history("b.png")] == ["unsure", None]
    st.close()
    again = LabelStore(tmp_path / "l.sqlite", "ana")  # a restart reads the same state
    assert {k: e.label for k, e in again.current.items()} == {"a.png": "laden"}
    mode = sqlite3.connect(tmp_path / "l.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_bad_label_is_refused(tmp_path: Path) -> None:
    st = LabelStore(tmp_path / "l.sqlite", "ana")
    with pytest.raises(ValueError, match="use one of empty, laden, unsure"):
        st.put("a.png", "full")
    assert not st.history("a.png")


def test_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    st = LabelStore(tmp_path / "l.sqlite", "ana")

    def work(t: int) -> None:
        for k in range(50):
            st.put(f"c{k % 10}.png", ("empty", "laden")[(t + k) % 2], f"u{t}")

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    n = sqlite3.connect(tmp_path / "l.sqlite").execute("SELECT count(*) FROM events").fetchone()
    assert n[0] == 200
    for k in range(10):  # the current label is the last committed event of each chip
        assert st.current[f"c{k}.png"].id == st.history(f"c{k}.png")[-1].id


def test_export_writes_paths_relative_to_the_csv_and_skips_unsure(tmp_path: Path) -> None:
    chips = tmp_path / "chips"
    st = LabelStore(tmp_path / "db" / "l.sqlite", "ana")
    st.put("x/a.png", "empty")
    st.put("x/b.png", "laden")
    st.put("x/c.png", "unsure")
    out = tmp_path / "out" / "labels.csv"
    out.parent.mkdir()
    out.write_text("old file\n")
    n = st.export_csv(out, lambda k: chips / Path(k).name)
    assert n == 2
    rows = list(csv.DictReader(open(out)))
    assert rows == [{"path": "../chips/a.png", "label": "empty"},
                    {"path": "../chips/b.png", "label": "laden"}]
    assert not list(out.parent.glob(".*.tmp"))  # the temporary file was renamed over it
    fresh = LabelStore(tmp_path / "db2.sqlite", "ana")
    keys = {str((chips / n).resolve()): f"x/{n}" for n in ("a.png", "b.png")}
    assert fresh.import_csv(out, keys.get) == 2
    assert {k: e.label for k, e in fresh.current.items()} == {"x/a.png": "empty",
                                                            "x/b.png": "laden"}
