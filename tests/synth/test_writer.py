"""The renderer's output: manifest, determinism, balance, bad input, interrupted runs."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipload.cli import main
from shipload.config import ConfigError, from_dict, load_yaml
from shipload.errors import UsageError
from shipload.synth.params import SynthConfig
from shipload.synth.writer import COLUMNS, write_dataset
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_manifest_columns_and_files(synth_set: Path) -> None:
    rows = list(csv.DictReader(open(synth_set / "labels.csv")))
    assert len(rows) == 48
    required = {"path", "label", "load_fraction", "freeboard_m", "gsd_m", "sun_elevation_deg",
                "off_nadir_deg", "ship_length_m", "heading_deg"}
    assert required <= set(rows[0])
    for r in rows:
        assert (synth_set / r["path"]).is_file()
        lf = float(r["load_fraction"])
        assert r["label"] == ("laden" if lf >= 0.5 else "empty")
    exts = {Path(r["path"]).suffix for r in rows}
    assert exts == {".png", ".jpg"}


def test_same_seed_same_bytes_whatever_workers(tmp_path: Path) -> None:
    cfg = tiny_config()
    a = write_dataset(cfg, tmp_path / "a", 24, seed=9, workers=1, progress=False)
    b = write_dataset(cfg, tmp_path / "b", 24, seed=9, workers=2, progress=False)
    c = write_dataset(cfg, tmp_path / "c", 24, seed=10, workers=1, progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_label_balance() -> None:
    from shipload.synth.params import sample_scene

    cfg = SynthConfig()
    labels = [sample_scene(cfg, 0, i).label for i in range(2000)]
    share = labels.count("laden") / len(labels)
    assert 0.45 <= share <= 0.55


def test_tiff16_rgbn_output(tmp_path: Path) -> None:
    import dataclasses

    import tifffile

    cfg = tiny_config()
    cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, output="tiff16_rgbn"))
    out = write_dataset(cfg, tmp_path / "t", 3, seed=1, progress=False)
    arr = tifffile.imread(next((out / "images").glob("*.tif")))
    assert arr.dtype.name == "uint16" and arr.ndim == 3 and arr.shape[2] == 4


def test_unknown_config_key_names_it_and_suggests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sensor:\n  gsd_mm: [0.3, 1.0]\n")
    with pytest.raises(ConfigError, match=r"sensor\.gsd_mm.*gsd_m"):
        load_yaml(SynthConfig, bad)
    with pytest.raises(ConfigError, match="ship_class"):
        from_dict(SynthConfig, {"ship_class": {}})


@pytest.mark.parametrize("data, match", [
    ({"sensor": {"gsd_m": [3.0, 0.3]}}, "gsd_m"),
    ({"sensor": {"off_nadir_deg": [0, 80]}}, "off_nadir_deg"),
    ({"load": {"extreme_weight": 1.5}}, "extreme_weight"),
    ({"nuisance": {"deck_paints": ["purple"]}}, "purple"),
    ({"ship_classes": {"x": {"fb_laden_m": [5, 6], "fb_ballast_m": [3, 4]}}}, "fb_laden_m"),
    ({"sensor": {"supersample": "three"}}, "supersample"),
])
def test_out_of_range_config_is_a_clear_error(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(SynthConfig, data)


def test_shipped_yaml_equals_builtin_defaults() -> None:
    assert load_yaml(SynthConfig, REPO / "configs" / "synth.yaml") == SynthConfig()


def test_cli_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "x"), "--n", "0"]) == 2
    assert "--n" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert main(["synth", "--out", str(full), "--n", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (full / "keep.txt").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("nuisanse: {}\n")
    assert main(["synth", "--out", str(tmp_path / "y"), "--n", "2", "--config", str(bad)]) == 2
    assert "nuisance" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_exit_2(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["synth", "--out", str(ro / "x"), "--n", "2"]) == 2


def test_unwritable_out_exit_2_any_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["synth", "--out", str(blocker / "x"), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "writable" in err or "cannot" in err


def test_overwrite_replaces(tmp_path: Path) -> None:
    out = tmp_path / "o"
    write_dataset(tiny_config(), out, 2, seed=1, progress=False)
    with pytest.raises(UsageError):
        write_dataset(tiny_config(), out, 2, seed=1, progress=False)
    write_dataset(tiny_config(), out, 3, seed=1, overwrite=True, progress=False)
    assert len(list((out / "images").iterdir())) == 3


def test_interrupted_run_leaves_no_complete_looking_folder(tmp_path: Path) -> None:
    out = tmp_path / "big"
    p = subprocess.Popen([sys.executable, "-m", "shipload.cli", "synth", "--out", str(out),
                          "--n", "100000", "--seed", "1", "--quiet"], cwd=REPO)
    time.sleep(4)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "labels.csv").exists()
    assert not out.exists()  # only a hidden .big.partial-* sibling may remain


def test_preview_sheet(synth_set: Path, tmp_path: Path) -> None:
    import cv2

    from shipload.synth.preview import contact_sheet

    png = contact_sheet(synth_set, tmp_path / "sheet.png", n=12, cols=6, tile=64)
    img = cv2.imread(str(png))
    assert img.shape[0] == 2 * (64 + 34) and img.shape[1] == 6 * 64


def test_columns_documented() -> None:
    assert COLUMNS[:2] == ["path", "label"]
