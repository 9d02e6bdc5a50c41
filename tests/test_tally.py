"""``shipload tally``: arithmetic against hand-computed calls, one-sided calls, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shipload.errors import DataError, UsageError
from shipload.tally import parse_time, run_tally
from tests.conftest import chromium_screenshot

PRED_COLS = ["path", "label", "p_laden", "load_fraction", "status", "vessel_id", "acquired_utc"]


def _csv(path: Path, cols: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    return path


CALLS = ["call_id", "vessel_id", "port", "arrival_utc", "departure_utc", "capacity_bbl",
         "dwt_t"]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    preds = _csv(tmp_path / "p.csv", PRED_COLS, [
        # V1: seen arriving empty (0.1) and leaving laden (0.9); a middle sighting is ignored.
        ["a.tif", "empty", 0.02, 0.1, "ok", "V1", "2024-03-01T02:00:00Z"],
        ["b.tif", "laden", 0.60, 0.5, "ok", "V1", "2024-03-02T02:00:00Z"],
        ["c.tif", "laden", 0.98, 0.9, "ok", "V1", "2024-03-03T02:00:00+00:00"],
        # V2: discharges, capacity from DWT; the early sighting is outside the window.
        ["d.tif", "laden", 0.99, 0.95, "ok", "V2", "2024-02-20T02:00:00"],
        ["e.tif", "laden", 0.99, 0.95, "ok", "V2", "2024-03-01T20:00:00+09:00"],
        ["f.tif", "empty", 0.01, 0.05, "ok", "V2", "2024-03-03T03:00:00Z"],
        # V3: only seen arriving. An error row never counts.
        ["g.tif", "empty", 0.03, 0.1, "ok", "V3", "2024-03-01T02:00:00Z"],
        ["h.tif", "", "", "", "error", "V3", "2024-03-04T02:00:00Z"],
    ])
    calls = _csv(tmp_path / "calls.csv", CALLS, [
        ["c1", "V1", "Vostochny", "2024-03-01T06:00:00Z", "2024-03-02T20:00:00Z", 100000, ""],
        ["c2", "V2", "Nakhodka", "2024-03-01T12:00:00Z", "2024-03-02T23:00:00Z", "", 5000],
        ["c3", "V3", "Vostochny", "2024-03-01T06:00:00Z", "2024-03-02T20:00:00Z", 50000, ""],
    ])
    return preds, calls


def test_tally_arithmetic_and_outputs(tmp_path: Path) -> None:
    preds, calls = _files(tmp_path)
    s = run_tally(preds, calls, tmp_path / "out", window_h=48)
    with open(tmp_path / "out" / "calls.csv", newline="") as f:
        rows = {r["call_id"]: r for r in csv.DictReader(f)}
    c1, c2, c3 = rows["c1"], rows["c2"], rows["c3"]
    # c1: (0.9 - 0.1) x 100,000 = 80,000 barrels loaded.
    assert float(c1["arrival_load"]) == 0.1 and float(c1["departure_load"]) == 0.9
    assert int(c1["barrels"]) == 80_000 and c1["status"] == "loading"
    assert int(c1["barrels_lo"]) < 80_000 < int(c1["barrels_hi"]) and int(c1["barrels_lo"]) > 0
    assert c1["n_sightings"] == "3"
    # c2: capacity 0.95 x 5,000 t x 7.33 bbl/t = 34,817.5 bbl; (0.05 - 0.95) x that.
    assert int(c2["barrels"]) == round(-0.9 * 0.95 * 5000 * 7.33)
    assert c2["status"] == "discharge" and c2["n_sightings"] == "2"
    # c3: seen only on arrival.
    assert c3["status"] == "arrival_only" and c3["barrels"] == "" and c3["departure_load"] == ""
    assert s["calls"] == 3 and s["calls_with_both_states"] == 2 and s["loadings"] == 1
    assert s["discharges"] == 1 and s["one_sided"] == 1
    assert s["net_barrels"] == 80_000 + round(-0.9 * 0.95 * 5000 * 7.33)
    lo, hi = s["net_barrels_90"]
    assert lo < s["net_barrels"] < hi
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == s
    page = (tmp_path / "out" / "index.html").read_text()
    assert "V1" in page and "80,000" in page and "arrival_only" in page


def test_confident_sightings_give_narrower_intervals(tmp_path: Path) -> None:
    preds, calls = _files(tmp_path)
    wide = run_tally(preds, calls, tmp_path / "a", load_sigma=0.3)["net_barrels_90"]
    narrow = run_tally(preds, calls, tmp_path / "b", load_sigma=0.05)["net_barrels_90"]
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_times_without_zone_are_utc() -> None:
    assert parse_time("2024-03-01T02:00:00", "x") == parse_time("2024-03-01T11:00:00+09:00", "x")
    with pytest.raises(DataError, match="f.csv:3: arrival_utc"):
        parse_time("yesterday", "f.csv:3: arrival_utc")


@pytest.mark.parametrize(("row", "match"), [
    (["c9", "V1", "P", "not a time", "2024-03-02T00:00:00Z", 1000, ""], r"calls.csv:2: arrival"),
    (["c9", "V1", "P", "2024-03-03T00:00:00Z", "2024-03-02T00:00:00Z", 1000, ""],
     r"calls.csv:2: departure_utc .* is before"),
    (["c9", "V1", "P", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", "", ""],
     r"calls.csv:2: no capacity"),
    (["c9", "V1", "P", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", "-5", ""],
     r"calls.csv:2: capacity_bbl"),
    (["c9", "NOPE", "P", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", 1000, ""],
     r"calls.csv:2: vessel_id 'NOPE' is in no prediction row"),
])
def test_bad_calls_name_file_line_and_field(tmp_path: Path, row: list[object],
                                            match: str) -> None:
    preds, _ = _files(tmp_path)
    calls = _csv(tmp_path / "calls.csv", CALLS, [row])
    with pytest.raises(DataError, match=match):
        run_tally(preds, calls, tmp_path / "out")
    assert not (tmp_path / "out" / "calls.csv").exists()  # nothing half-written


def test_unseen_vessels_allowed_on_request_and_other_errors(tmp_path: Path) -> None:
    preds, _ = _files(tmp_path)
    calls = _csv(tmp_path / "calls.csv", CALLS, [
        ["c9", "V9", "P", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", 1000, ""]])
    s = run_tally(preds, calls, tmp_path / "out", allow_unseen=True)
    assert s["not_seen"] == 1
    bad_pred = _csv(tmp_path / "bp.csv", PRED_COLS, [
        ["a.tif", "empty", 0.1, 0.1, "ok", "V9", "03/01/2024"]])
    with pytest.raises(DataError, match="bp.csv:2: acquired_utc"):
        run_tally(bad_pred, calls, tmp_path / "o2")
    nocol = _csv(tmp_path / "nc.csv", ["path", "p_laden"], [["a", 0.1]])
    with pytest.raises(UsageError, match="vessel_id"):
        run_tally(nocol, calls, tmp_path / "o3")
    with pytest.raises(UsageError, match="no such file"):
        run_tally(tmp_path / "missing.csv", calls, tmp_path / "o4")


@pytest.mark.slow
def test_tally_page_renders_in_headless_chromium(tmp_path: Path, synth_set: Path) -> None:
    preds, calls = _files(tmp_path)
    # Point the sightings at real chips so the timelines carry thumbnails.
    chips = sorted((synth_set / "images").iterdir())
    text = preds.read_text()
    for name, chip in zip("abcdefg", chips):
        text = text.replace(f"{name}.tif", str(chip))
    preds.write_text(text)
    run_tally(preds, calls, tmp_path / "out")
    page = tmp_path / "out" / "index.html"
    assert page.read_text().count("data:image/png;base64,") == 6  # sightings in the windows
    img = chromium_screenshot(page, tmp_path / "shot.png", 1100, 1200)
    assert (img < 200).mean() > 0.02 and img.std() > 20  # text, bars and chips, not blank


def test_page_finds_chips_named_relative_to_where_predict_ran(
        tmp_path: Path, synth_set: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """predict writes the paths it was given: relative to its working folder, not to the
    predictions file. The page must still find the chips."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "chips").mkdir(parents=True)
    chip = sorted((synth_set / "images").iterdir())[0]
    (tmp_path / "run" / "chips" / chip.name).write_bytes(chip.read_bytes())
    (tmp_path / "run" / "out").mkdir()
    preds = _csv(tmp_path / "run" / "out" / "p.csv", PRED_COLS, [
        [f"run/chips/{chip.name}", "empty", 0.02, 0.1, "ok", "V1", "2024-03-01T02:00:00Z"],
        [f"run/chips/{chip.name}", "laden", 0.98, 0.9, "ok", "V1", "2024-03-03T02:00:00Z"]])
    calls = _csv(tmp_path / "calls.csv", CALLS, [
        ["c1", "V1", "P", "2024-03-01T06:00:00Z", "2024-03-02T20:00:00Z", 1000, ""]])
    run_tally(preds, calls, tmp_path / "tally")
    assert (tmp_path / "tally" / "index.html").read_text().count("data:image/png") == 2
