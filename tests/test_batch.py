"""`shipload predict` end to end: inputs, formats, exit codes, kill-and-resume, shards."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile
from PIL import Image

from shipload.batch import collect_inputs, parse_shard, shard
from shipload.cli import main
from shipload.errors import UsageError
from tests.conftest import write_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chips(synth_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Renderer chips plus odd-but-valid and broken files, in nested folders."""
    d = tmp_path_factory.mktemp("chips")
    imgs = sorted((synth_set / "images").iterdir())
    (d / "a" / "b").mkdir(parents=True)
    for i, p in enumerate(imgs[:12]):
        (d / ("a/b" if i % 2 else "a") / p.name).write_bytes(p.read_bytes())
    rgb = cv2.cvtColor(cv2.imread(str(imgs[0])), cv2.COLOR_BGR2RGB)
    Image.fromarray(rgb[..., 0]).save(d / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(d / "rgba.png")
    cv2.imwrite(str(d / "grey16.png"), (rgb[..., 0].astype(np.uint16) * 40))
    tifffile.imwrite(d / "rgbn16.tif", np.dstack([rgb, rgb[..., :1]]).astype(np.uint16) * 30)
    (d / "empty.png").write_bytes(b"")
    (d / "text.jpg").write_text("hello, not a jpeg")
    full = (d / "a" / imgs[0].name).read_bytes()
    (d / "truncated.png").write_bytes(full[: len(full) // 3])
    Image.new("1", (30000, 30000)).save(d / "bomb.png")
    return d


def run_cli(*args: str) -> int:
    return main(["predict", *args])


def read_csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def test_collect_inputs_sorted_recursive_globs_manifest(chips: Path, synth_set: Path) -> None:
    got = [j.path for j in collect_inputs([str(chips)])]
    assert got == sorted(got) and len(got) == 12 + 8
    globbed = collect_inputs([str(chips / "a" / "*.png"), str(chips / "a" / "*.jpg")])
    assert [j.path for j in globbed] == sorted(
        str(p) for p in (chips / "a").glob("*") if p.is_file())
    assert len(collect_inputs([str(synth_set / "labels.csv")])) == 48
    with pytest.raises(UsageError, match="not found"):
        collect_inputs([str(chips / "nope")])


def test_shards_cover_once() -> None:
    items = [str(i) for i in range(23)]
    parts = [shard(items, parse_shard(f"{k}/4")) for k in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for bad in ("0/4", "5/4", "x"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_predict_csv_error_rows_and_exit_3(chips: Path, smoke_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    assert run_cli(str(chips), "--model", str(smoke_onnx), "--output", str(out), "--quiet") == 3
    rows = read_csv(out)
    assert len(rows) == 20 and [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    status = {Path(r["path"]).name: r for r in rows}
    for bad in ("empty.png", "text.jpg", "truncated.png", "bomb.png"):
        assert status[bad]["status"] == "error" and status[bad]["error"]
    assert "MP" in status["bomb.png"]["error"]
    assert not any("0x" in r["error"] for r in rows)  # no memory addresses in messages
    for odd in ("grey.png", "rgba.png", "grey16.png", "rgbn16.tif"):
        assert status[odd]["status"] == "ok", status[odd]["error"]
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["model_sha256"] and meta["provider"] == "CPUExecutionProvider"
    assert meta["errors"] == 4


def test_exit_0_and_formats(synth_set: Path, smoke_onnx: Path, tmp_path: Path) -> None:
    img = str(synth_set / "images")
    assert run_cli(img, "--model", str(smoke_onnx), "--output", str(tmp_path / "o.jsonl"),
                   "--quiet") == 0
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert len(lines) == 48 and json.loads(lines[0])["status"] == "ok"
    assert run_cli(img, "--model", str(smoke_onnx), "--output", str(tmp_path / "o.parquet"),
                   "--quiet", "--tta") == 0
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.num_rows == 48 and not (tmp_path / "o.parquet.partial.jsonl").exists()


def test_usage_errors_exit_2(synth_set: Path, smoke_onnx: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    img = str(synth_set / "images")
    out = str(tmp_path / "o.csv")
    assert run_cli(img, "--model", str(tmp_path / "none.onnx"), "--output", out) == 2
    assert "--model" in capsys.readouterr().err
    assert run_cli(str(tmp_path / "nothing"), "--model", str(smoke_onnx), "--output", out) == 2
    assert run_cli(img, "--model", str(smoke_onnx), "--output", str(tmp_path / "o.txt")) == 2
    assert run_cli(img, "--model", str(smoke_onnx), "--output", out, "--quiet") == 0
    assert run_cli(img, "--model", str(smoke_onnx), "--output", out) == 2  # exists
    assert "--resume" in capsys.readouterr().err
    assert run_cli(img, "--model", str(smoke_onnx), "--output", out, "--shard", "3/2") == 2
    with pytest.raises(SystemExit) as e:
        run_cli(img, "--bogus")
    assert e.value.code == 2


def test_overwrite_starts_afresh(synth_set: Path, smoke_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.csv"
    out.write_text("path,label\nstale,empty\n")
    assert run_cli(str(synth_set / "images"), "--model", str(smoke_onnx), "--output", str(out),
                   "--overwrite", "--quiet") == 0
    assert "stale" not in out.read_text() and len(read_csv(out)) == 48


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("fmt", "decode"), [("csv", "threads"), ("parquet", "threads"),
                                           ("csv", "processes")])
def test_kill_and_resume_every_input_once(fmt: str, decode: str, tmp_path: Path,
                                          smoke_onnx: Path) -> None:
    from shipload.synth.writer import write_dataset
    from tests.conftest import tiny_config

    data = write_dataset(tiny_config(), tmp_path / "d", 600, seed=4, workers=2, progress=False)
    out = tmp_path / f"o.{fmt}"
    cmd = [sys.executable, "-m", "shipload.cli", "predict", str(data / "images"), "--model",
           str(smoke_onnx), "--output", str(out), "--batch-size", "8", "--quiet",
           "--decode", decode, "--workers", "2"]
    p = subprocess.Popen(cmd, cwd=REPO)
    stream = out if fmt == "csv" else Path(str(out) + ".partial.jsonl")
    t0 = time.time()
    while time.time() - t0 < 120:
        if stream.exists() and stream.stat().st_size > 4000:
            break
        time.sleep(0.05)
    children = _children(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    if decode == "processes":  # the orphaned decoding processes end themselves
        assert children, "no decoding processes were seen"
        t0 = time.time()
        while any(_alive(c) for c in children) and time.time() - t0 < 10:
            time.sleep(0.1)
        assert not any(_alive(c) for c in children)
    r = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    if fmt == "csv":
        text = out.read_text()
        assert text.endswith("\n")
        rows = read_csv(out)
    else:
        rows = pq.read_table(out).to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == 600 and len(set(paths)) == 600
    assert all(r["status"] == "ok" for r in rows)
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["resumed_rows"] > 0 and meta["predicted"] < 600


def test_geometry_sources_precedence_and_passthrough(synth_set: Path, smoke_onnx: Path,
                                                     tmp_path: Path) -> None:
    """Manifest row > sidecar JSON > flags, field by field; other columns pass through; bad
    values are error rows naming the field; the meta sidecar counts the geometry kinds."""
    d = tmp_path / "c"
    d.mkdir()
    imgs = sorted((synth_set / "images").iterdir())[:6]
    for p in imgs:
        (d / p.name).write_bytes(p.read_bytes())
    n = [p.name for p in imgs]
    (d / n[0]).with_suffix(".json").write_text(json.dumps(
        {"sun_elevation_deg": 40, "sun_azimuth_deg": 100, "off_nadir_deg": 10,
         "sensor_azimuth_deg": 200}))
    (d / n[1]).with_suffix(".json").write_text(json.dumps({"sun_elevation_deg": 40}))
    (d / n[3]).with_suffix(".json").write_text("{broken")
    (d / n[5]).with_suffix(".json").write_text("[40, 100]")  # JSON, but not an object
    man = write_rows(d / "m.csv", [
        {"path": n[0], "gsd_m": "", "off_nadir_deg": "", "vessel_id": "A", "acquired_utc": "t0"},
        {"path": n[1], "gsd_m": 0.7, "off_nadir_deg": "", "vessel_id": "B", "acquired_utc": "t1"},
        {"path": n[2], "gsd_m": "x", "off_nadir_deg": "", "vessel_id": "C", "acquired_utc": ""},
        {"path": n[3], "gsd_m": 0.5, "off_nadir_deg": "", "vessel_id": "D", "acquired_utc": ""},
        {"path": n[4], "gsd_m": "", "off_nadir_deg": 75, "vessel_id": "E", "acquired_utc": ""},
        {"path": n[5], "gsd_m": "", "off_nadir_deg": "", "vessel_id": "F", "acquired_utc": ""},
    ])
    out = tmp_path / "o.csv"
    assert run_cli(str(man), "--model", str(smoke_onnx), "--output", str(out), "--quiet",
                   "--gsd-m", "0.4", "--sun-elevation", "20") == 3
    rows = {r["vessel_id"]: r for r in read_csv(out)}
    # A: all five (gsd from the flag, the rest from its sidecar).
    assert rows["A"]["geometry_used"].count("+") == 4 and rows["A"]["acquired_utc"] == "t0"
    # B: gsd from the manifest, elevation from the sidecar (over the flag).
    assert rows["B"]["geometry_used"] == "gsd_m+sun_elevation_deg"
    assert rows["C"]["status"] == "error" and "gsd_m='x'" in rows["C"]["error"]
    assert "manifest" in rows["C"]["error"]
    assert rows["D"]["status"] == "error" and "not valid JSON" in rows["D"]["error"]
    assert rows["E"]["status"] == "error" and "off_nadir_deg=75" in rows["E"]["error"]
    assert rows["F"]["status"] == "error" and "JSON object" in rows["F"]["error"]
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["geometry"] == {"full": 1, "partial": 1, "none": 0}
    assert meta["geometry_flags"] == {"gsd_m": 0.4, "sun_elevation_deg": 20.0}


def test_bad_geometry_flag_is_a_usage_error(synth_set: Path, smoke_onnx: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(str(synth_set / "images"), "--model", str(smoke_onnx), "--output",
                   str(tmp_path / "o.csv"), "--off-nadir", "70") == 2
    assert "off_nadir_deg=70" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_read_rows_reads_each_format_as_strings_and_names_a_bad_line(tmp_path: Path) -> None:
    from shipload.batch import chip_file, read_rows
    from shipload.errors import DataError

    (tmp_path / "p.jsonl").write_text('{"path": "a.png", "p_laden": 0.7, "error": null}\n\n'
                                      '{"path": "b.png", "p_laden": 0.2, "error": null}\n')
    assert read_rows(tmp_path / "p.jsonl") == [
        {"path": "a.png", "p_laden": "0.7", "error": ""},
        {"path": "b.png", "p_laden": "0.2", "error": ""}]
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png"}\n{"path": \n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not a JSON line"):
        read_rows(tmp_path / "bad.jsonl")
    with pytest.raises(UsageError, match="no such file"):
        read_rows(tmp_path / "none.csv")
    (tmp_path / "chips").mkdir()
    assert chip_file("chips/x.png", tmp_path) == tmp_path / "chips" / "x.png"
    assert chip_file(str(tmp_path / "y.png"), Path("/elsewhere")) == tmp_path / "y.png"
