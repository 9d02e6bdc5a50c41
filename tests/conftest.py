"""Shared fixtures: tiny seeded data sets made by the renderer in tmp dirs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shipload.synth.params import Scene, SynthConfig


def fixed_scene(**kw: object) -> Scene:
    """A small product tanker, bow north, with every nuisance off; override any field."""
    base = Scene(
        ship_class="small", length_m=80.0, beam_m=13.0, load_fraction=0.0, fb_laden_m=1.5,
        fb_ballast_m=4.0, trim_m=0.0, heading_deg=0.0, sun_elevation_deg=45.0,
        sun_azimuth_deg=90.0, off_nadir_deg=0.0, sensor_azimuth_deg=270.0, gsd_m=0.5,
        chip_px=240, centre_offset_px=(0.0, 0.0), bulb_depth_frac=-1.0, rudder_depth_frac=2.0,
        superstructure_height_m=10.0, superstructure_len_frac=0.1, funnel_height_m=4.0,
        deck_paint="grey", hull_paint="blue_grey", antifouling_rgb=(0.55, 0.15, 0.1),
        water="turbid", under_way=False, glint=0.0, haze=0.0, cloud=0.0, quay=False,
        neighbour=False, mtf_sigma_px=0.0, noise_std=0.0, white_balance=(1.0, 1.0, 1.0),
        jpeg_quality=0, seed=1,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def tiny_config() -> SynthConfig:
    """Renderer config with small chips, for fast tests."""
    cfg = SynthConfig()
    return dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, max_chip_px=96))


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 rendered chips with labels.csv (seed 3), shared by the tests of a session."""
    from shipload.synth.writer import write_dataset

    out = tmp_path_factory.mktemp("synth") / "set"
    write_dataset(tiny_config(), out, 48, seed=3, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def smoke_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint from a real (tiny) smoke fit."""
    from shipload.training import cli_main

    tmp = tmp_path_factory.mktemp("smoke")
    repo = Path(__file__).resolve().parents[1]
    cli_main(["fit", "--config", str(repo / "configs" / "train.yaml"),
              "--config", str(repo / "configs" / "smoke.yaml"),
              f"--trainer.default_root_dir={tmp}", f"--trainer.logger.init_args.save_dir={tmp}",
              f"--trainer.callbacks.init_args.dirpath={tmp / 'ckpt'}"])
    return tmp / "ckpt" / "last.ckpt"


@pytest.fixture(scope="session")
def smoke_onnx(smoke_ckpt: Path) -> Path:
    """The smoke checkpoint exported to ONNX (with every export check)."""
    from shipload.export import export_onnx

    out = smoke_ckpt.parent / "smoke.onnx"
    export_onnx(smoke_ckpt, out, recipe=None)
    return out


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write dict rows as a CSV (the header from the first row's keys)."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def chromium_screenshot(page: Path, shot: Path, width: int, height: int) -> object:
    """Render a local page in headless Chromium; the screenshot as a BGR array.

    Skips the test where Debian's chromium is not installed (`.ci/run` installs it).
    """
    import shutil
    import subprocess

    import cv2

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={shot.parent / 'chromium-profile'}",
                    f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (height, width)
    return img
