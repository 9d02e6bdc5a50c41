"""Predictor: providers, metadata, TTA, odd chips."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from shipload.errors import UsageError
from shipload.inference import Job, Predictor, Prepared, _prefetch, tta_views
from shipload.view import GEO_DIM, flip_geometry


def test_missing_model_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="model not found"):
        Predictor(tmp_path / "none.onnx")


def test_foreign_file_is_usage_error(tmp_path: Path) -> None:
    p = tmp_path / "x.onnx"
    p.write_bytes(b"not onnx")
    with pytest.raises(UsageError):
        Predictor(p)


def test_cuda_where_it_cannot_run_is_an_error(smoke_onnx: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(UsageError, match="CUDA"):
        Predictor(smoke_onnx, device="cuda")


def test_auto_uses_cuda_only_where_it_loads(smoke_onnx: Path) -> None:
    import onnxruntime as ort

    p = Predictor(smoke_onnx, device="auto")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        # No CUDA build here: auto must settle on the CPU and say so.
        assert p.provider == "CPUExecutionProvider"
        assert p.session.get_providers() == ["CPUExecutionProvider"]
    else:
        assert p.provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert p.takes_geometry and p.outputs == ["probabilities", "load_fraction", "freeboard_m"]


def test_tta_views_flip_pixels_and_geometry_together() -> None:
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    g = np.tile(np.arange(GEO_DIM, dtype=np.float32), (2, 1))
    v = tta_views(x, g, "hull_aligned")
    assert len(v) == 4 and all(a.shape == x.shape and b.shape == g.shape for a, b in v)
    np.testing.assert_array_equal(v[1][0], x[..., ::-1])  # along the hull
    np.testing.assert_array_equal(v[1][1], flip_geometry(g, True, False))
    np.testing.assert_array_equal(v[3][0], x[..., ::-1, ::-1])
    np.testing.assert_array_equal(v[3][1], flip_geometry(g, True, True))


def test_predict_rows_in_order_with_error_rows(smoke_onnx: Path, synth_set: Path,
                                               tmp_path: Path) -> None:
    chips = sorted((synth_set / "images").iterdir())[:5]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    paths = [str(chips[0]), str(bad), *map(str, chips[1:])]
    pred = Predictor(smoke_onnx)
    rows = [r for batch in pred.predict(paths, batch_size=2, workers=0) for r in batch]
    assert [r["path"] for r in rows] == paths
    assert rows[1]["status"] == "error" and "bad.png" in rows[1]["error"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(0 <= r["p_laden"] <= 1 and r["label"] in ("empty", "laden") for r in ok)
    assert all(r["freeboard_m"] > 0 and r["geometry_used"] == "none" for r in ok)
    assert all(r["axis_source"] == "image" for r in ok)
    # The same chips give the same numbers with decoding in threads, and OpenCV's own
    # thread count is given back afterwards.
    cv_threads = cv2.getNumThreads()
    rows2 = [r for b in pred.predict(paths, batch_size=3, workers=2) for r in b]
    assert [r["p_laden"] for r in rows2] == [r["p_laden"] for r in rows]
    assert cv2.getNumThreads() == cv_threads
    with pytest.raises(UsageError, match="--workers"):
        list(pred.predict(paths, workers=-1))
    with pytest.raises(UsageError, match="--decode"):
        list(pred.predict(paths, decode="fork"))  # type: ignore[arg-type]


def test_predict_in_processes_gives_the_rows_of_threads(smoke_onnx: Path, synth_set: Path,
                                                        tmp_path: Path) -> None:
    # More chips than one chunk per process, a bad file among them: same rows, same order.
    chips = sorted((synth_set / "images").iterdir())[:20]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    paths = [*map(str, chips[:9]), str(bad), *map(str, chips[9:])]
    pred = Predictor(smoke_onnx)
    threads = [r for b in pred.predict(paths, batch_size=4, workers=2) for r in b]
    procs = [r for b in pred.predict(paths, batch_size=4, workers=2, decode="processes")
             for r in b]
    assert [r["path"] for r in procs] == paths
    assert procs[9]["status"] == "error" and "bad.png" in procs[9]["error"]
    assert procs == threads


def test_prefetch_keeps_order_and_bounds_the_work_in_flight() -> None:
    submitted: list[int] = []
    yielded: list[int] = []
    peak = 0

    def jobs() -> Iterator[int]:
        nonlocal peak
        for i in range(200):
            submitted.append(i)
            peak = max(peak, len(submitted) - len(yielded))
            yield i

    def slow(i: int) -> Prepared:
        time.sleep(0.002 * (i % 3))  # finish out of order
        return Prepared(i, Job(str(i)), None)

    with ThreadPoolExecutor(4) as ex:
        for item in _prefetch(slow, jobs(), ex, depth=8):
            yielded.append(item.index)
    assert yielded == list(range(200))
    assert peak <= 9  # depth in flight, plus the one being submitted


def test_installed_package_finds_its_model(tmp_path: Path) -> None:
    """`pip install .` (not editable), run from another folder: predict finds the default
    model inside the installed package. Dependencies come from this environment."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(repo)], check=True, cwd=tmp_path)
    whl = next(wheels.glob("shipload-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(whl)], check=True, cwd=tmp_path)
    assert (site / "shipload" / "_models" / "shipload.onnx").is_file()
    chips = tmp_path / "some_chips"
    chips.mkdir()
    from shipload.synth.writer import write_dataset
    from tests.conftest import tiny_config

    write_dataset(tiny_config(), chips / "set", 4, seed=1, workers=1, progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", "import sys, shipload.cli as c; "
                        "print(c.__file__); sys.exit(c.main(sys.argv[1:]))", "predict",
                        str(chips), "--output", "x.csv", "--quiet"],
                       cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(site))  # the installed copy ran, not the checkout
    rows = (elsewhere / "x.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[1].count(",ok,") == 1
    meta = (elsewhere / "x.csv.meta.json").read_text()
    assert str(site / "shipload" / "_models" / "shipload.onnx") in meta
