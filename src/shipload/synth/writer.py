"""Write a rendered data set: images, then ``labels.csv`` last, atomically renamed into place."""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shipload.errors import UsageError
from shipload.synth.params import Scene, SynthConfig, sample_scene
from shipload.synth.render import render
from shipload.synth.sensor import encode, to_uint8, to_uint16

MANIFEST = "labels.csv"
COLUMNS = [
    "path", "label", "load_fraction", "freeboard_m", "fb_laden_m", "fb_ballast_m", "gsd_m",
    "sun_elevation_deg", "sun_azimuth_deg", "off_nadir_deg", "sensor_azimuth_deg",
    "ship_length_m", "beam_m", "heading_deg", "ship_class", "trim_m", "deck_paint", "hull_paint",
    "water", "haze", "cloud", "glint", "under_way", "quay", "neighbour", "chip_px",
    "beam_px", "shadow_width_px", "side_width_px", "band_width_px", "super_shadow_len_px", "seed",
    "look",
]


def chip_row(s: Scene, relpath: str, cues: Any) -> dict[str, Any]:
    """The manifest row of one chip: label, physics and nuisances, and oracle cue widths."""
    row = {
        "path": relpath, "label": s.label, "load_fraction": round(s.load_fraction, 4),
        "freeboard_m": round(s.freeboard_m, 3), "ship_length_m": round(s.length_m, 2),
        "beam_m": round(s.beam_m, 2), "look": s.look.describe() if s.look else "",
    }
    d = asdict(s)
    for c in COLUMNS:
        if c not in row and c in d:
            v = d[c]
            row[c] = round(v, 4) if isinstance(v, float) else v
    for k, v in asdict(cues).items():
        if k in COLUMNS:
            row[k] = round(v, 3)
    return row


def render_one(cfg: SynthConfig, seed: int, index: int, images_dir: Path) -> dict[str, Any]:
    """Render chip ``index``, write its image into ``images_dir``, return its manifest row."""
    s = sample_scene(cfg, seed, index)
    out = cfg.sensor.output
    r = render(s, supersample=cfg.sensor.supersample, nir=out == "tiff16_rgbn")
    name = f"{index:07d}"
    if out == "rgb8":
        data, ext = encode(to_uint8(r.rgb), s.jpeg_quality)
        (images_dir / f"{name}{ext}").write_bytes(data)
    else:
        import tifffile

        bands = [r.rgb] if r.nir is None else [r.rgb, r.nir[..., None]]
        ext = ".tif"
        tifffile.imwrite(images_dir / f"{name}{ext}", to_uint16(np.concatenate(bands, 2)),
                         photometric="rgb" if r.nir is None else "minisblack",
                         planarconfig="contig", compression="zlib")
    return chip_row(s, f"images/{name}{ext}", r.cues)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV threads would oversubscribe


def _task(args: tuple[SynthConfig, int, int, str]) -> dict[str, Any]:
    cfg, seed, index, d = args
    return render_one(cfg, seed, index, Path(d))


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` without ``overwrite`` and an unwritable parent.

    Raises:
        UsageError: with what to do instead.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory; choose another path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"--out {out} is not empty; pass --overwrite to replace it, "
                         "or choose an empty or new directory")
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise UsageError(f"cannot write to {probe} (permission denied); choose a writable --out")


def write_dataset(cfg: SynthConfig, out: str | Path, n: int, seed: int, workers: int = 1,
                  overwrite: bool = False, progress: bool = True) -> Path:
    """Render ``n`` chips into ``out/images`` and write ``out/labels.csv``.

    The run is built in a hidden sibling folder and renamed into place at the end, so an
    interrupted run never leaves a folder that looks complete. Chip i depends only on
    (seed, i): any worker count gives the same bytes.

    Args:
        cfg: renderer configuration.
        out: output directory (must be empty or absent unless ``overwrite``).
        n: number of chips (> 0).
        seed: run seed.
        workers: processes to render with.
        overwrite: replace a non-empty ``out``.
        progress: print a progress line to stderr.

    Returns:
        The output directory.

    Raises:
        UsageError: bad ``n``, ``workers`` or output path.
    """
    out = Path(out)
    if n <= 0:
        raise UsageError(f"--n must be a positive number of chips, got {n}")
    if workers <= 0:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    check_output_dir(out, overwrite)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e.strerror}; choose a writable --out") from e
    images = tmp / "images"
    images.mkdir()
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    try:
        jobs = ((cfg, seed, i, str(images)) for i in range(n))
        it: Iterator[dict[str, Any]]
        pool = None
        if workers == 1:
            _worker_init()
            it = (_task(j) for j in jobs)
        else:
            # spawn: forking after OpenCV's thread pool has run can deadlock the child.
            pool = mp.get_context("spawn").Pool(
                workers, initializer=_worker_init)
            it = pool.imap(_task, jobs, chunksize=8)
        try:
            for i, row in enumerate(it, 1):
                rows.append(row)
                if progress and (i % 500 == 0 or i == n):
                    rate = i / max(time.time() - t0, 1e-9)
                    print(f"synth: {i}/{n} chips, {rate:.0f} chips/s", file=sys.stderr)
        finally:
            if pool is not None:
                pool.terminate()
        with open(tmp / MANIFEST, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            out.rename(trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_label_rows(root: str | Path) -> list[dict[str, str]]:
    """Rows of ``root/labels.csv`` as dicts of strings."""
    with open(Path(root) / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))
