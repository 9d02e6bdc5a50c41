"""Manifest and ImageFolder readers, their errors, and the split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipload.data.datasets import (
    DataError,
    load_records,
    read_image_folder,
    read_manifest,
    stratified_split,
)


def test_renderer_manifest_reads(synth_set: Path) -> None:
    recs = load_records(synth_set)
    assert len(recs) == 48
    assert {r.label for r in recs} == {0, 1}
    assert all(0 <= r.load_fraction <= 1 and r.gsd_m > 0 for r in recs)


def _folder(tmp: Path, synth_set: Path, classes: tuple[str, ...] = ("empty", "laden")) -> Path:
    recs = read_manifest(synth_set / "labels.csv")
    root = tmp / "folder"
    for c in classes:
        (root / c).mkdir(parents=True)
    for r in recs:
        name = ("empty", "laden")[r.label]
        if name in classes:
            shutil.copy(r.path, root / name / r.path.name)
    return root


def test_image_folder(tmp_path: Path, synth_set: Path) -> None:
    recs = load_records(_folder(tmp_path, synth_set))
    assert len(recs) == 48 and {r.label for r in recs} == {0, 1}


def test_missing_class_folder(tmp_path: Path, synth_set: Path) -> None:
    root = _folder(tmp_path, synth_set, ("empty",))
    with pytest.raises(DataError, match="'laden/' is missing"):
        read_image_folder(root)


def test_empty_class_folder(tmp_path: Path, synth_set: Path) -> None:
    root = _folder(tmp_path, synth_set, ("empty",))
    (root / "laden").mkdir()
    with pytest.raises(DataError, match="no images"):
        read_image_folder(root)


def test_unexpected_folder(tmp_path: Path, synth_set: Path) -> None:
    root = _folder(tmp_path, synth_set)
    (root / "half_full").mkdir()
    with pytest.raises(DataError, match="half_full"):
        read_image_folder(root)


def _manifest(tmp: Path, synth_set: Path, rows: list[str]) -> Path:
    m = synth_set / f"m_{tmp.name}.csv"
    m.write_text("path,label\n" + "\n".join(rows) + "\n")
    return m


def test_manifest_errors(tmp_path: Path, synth_set: Path) -> None:
    good = read_manifest(synth_set / "labels.csv")[0].path.relative_to(synth_set).as_posix()
    with pytest.raises(DataError, match="unknown label 'full'"):
        read_manifest(_manifest(tmp_path, synth_set, [f"{good},full"]))
    with pytest.raises(DataError, match="not found"):
        read_manifest(_manifest(tmp_path, synth_set, ["images/none.png,empty"]))
    with pytest.raises(DataError, match="escapes"):
        read_manifest(_manifest(tmp_path, synth_set, ["../../etc/passwd,empty"]))
    with pytest.raises(DataError, match="missing column"):
        m = synth_set / "nolabel.csv"
        m.write_text("path\nimages/x.png\n")
        read_manifest(m)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "absent.csv")


def test_single_class_is_an_error(tmp_path: Path, synth_set: Path) -> None:
    recs = read_manifest(synth_set / "labels.csv")
    rows = [f"{r.path.relative_to(synth_set).as_posix()},empty" for r in recs[:5]]
    with pytest.raises(DataError, match="every chip is 'empty'"):
        load_records(_manifest(tmp_path, synth_set, rows))


def test_split_is_stratified_and_seeded(synth_set: Path) -> None:
    recs = load_records(synth_set)
    a = stratified_split(recs, seed=1, val_fraction=0.25, test_fraction=0.25)
    b = stratified_split(recs, seed=1, val_fraction=0.25, test_fraction=0.25)
    c = stratified_split(recs, seed=2, val_fraction=0.25, test_fraction=0.25)
    assert [r.path for r in a["val"]] == [r.path for r in b["val"]]
    assert [r.path for r in a["val"]] != [r.path for r in c["val"]]
    assert sum(len(v) for v in a.values()) == len(recs)
    for s in ("val", "test"):
        assert {r.label for r in a[s]} == {0, 1}
