"""Predictions for the review tests: the shipped model run on renderer chips, one corrupt."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def predictions(synth_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """predict's CSV over 12 rendered chips plus one corrupt file (an error row)."""
    from shipload.batch import run_predict

    d = tmp_path_factory.mktemp("review") / "chips"
    d.mkdir()
    import csv
    import json

    from shipload.contract import GEOMETRY_FIELDS

    truth = {Path(r["path"]).name: r for r in csv.DictReader(open(synth_set / "labels.csv"))}
    for p in sorted((synth_set / "images").glob("*.png"))[:12]:
        shutil.copy(p, d / p.name)
        geo = {f: float(truth[p.name][f]) for f in GEOMETRY_FIELDS}
        (d / p.name).with_suffix(".json").write_text(json.dumps(geo))  # the sidecar
    (d / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = d.parent / "preds.csv"
    run_predict([str(d)], out, quiet=True)
    return out


@pytest.fixture
def preds(predictions: Path, tmp_path: Path) -> Path:
    """A private copy of the predictions (each test gets its own label database)."""
    import csv

    out = tmp_path / "preds.csv"
    chips = predictions.parent / "chips"
    with open(predictions, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # absolute paths: the copy lives elsewhere than the chips
        r["path"] = str(chips / Path(r["path"]).name)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(preds: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """`shipload review` in a child process, once its page answers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "shipload.cli", "review", str(preds),
                             "--port", str(port), "--user", "tester", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"review server exited: {out}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/counts", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("review server did not start in 60 s")


@pytest.fixture
def server(preds: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A running review server on a free port: (base URL, process)."""
    port = free_port()
    proc = start_server(preds, port)
    yield f"http://127.0.0.1:{port}", proc
    proc.kill()
    proc.wait(timeout=30)
