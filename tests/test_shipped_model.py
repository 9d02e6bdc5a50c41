"""The model shipped in models/: self-describing, made by the one recipe, right where the cue
is clear, calls chips without geometry, equivariant under rotation, steady under framing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from shipload.data.stream import chip_from_scene, scene_geometry
from shipload.inference import Predictor, default_model
from shipload.runtime import read_metadata, sha256_file
from shipload.synth import SynthConfig, recut, sample_scene
from shipload.synth.params import LoadConfig, NuisanceConfig, Scene
from shipload.view import GEO_DIM, prepare_view, stack_views

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL = default_model()


def test_metadata_contract() -> None:
    m = read_metadata(MODEL)
    assert json.loads(m["classes"]) == ["empty", "laden"]
    assert m["resize_policy"] == "hull_aligned" and (m["input_height"], m["input_width"]) == (
        "120", "160")
    assert json.loads(m["inputs"]) == ["image", "geometry"] and m["geometry_dim"] == str(GEO_DIM)
    # The one recipe, with the sha256 of its committed files, and the command that ran it.
    recipe = json.loads(m["recipe"])
    assert list(recipe) == ["configs/train.yaml", "configs/synth_train.yaml"]
    for f, digest in recipe.items():
        assert sha256_file(MODELS.parent / f) == digest, f"{f} changed since the model shipped"
    assert m["recipe_command"] == "python train.py fit --config configs/train.yaml"
    assert m["weights_sha256"] == sha256_file(MODELS / "shipload.pt")
    assert MODEL.stat().st_size < 20e6


def test_card_states_the_files_sha256() -> None:
    card = (MODELS / "README.md").read_text()
    for f in ("shipload.onnx", "shipload.pt"):
        assert sha256_file(MODELS / f) in card


def clear_scenes(n: int, seed: int = 99) -> list[Scene]:
    """Fine GSD, sun low enough and view oblique enough for shadow and hull side to show,
    ships clearly empty or clearly full: where the physical bound is high."""
    cfg = SynthConfig()
    cfg = dataclasses.replace(
        cfg,
        ship_classes={"small": cfg.ship_classes["small"]},
        load=LoadConfig(extreme_weight=1.0, extreme_width=0.05),
        sensor=dataclasses.replace(cfg.sensor, gsd_m=(0.3, 0.45), off_nadir_deg=(25.0, 40.0),
                                   sun_elevation_deg=(20.0, 35.0), max_chip_px=256),
        nuisance=NuisanceConfig(wake=0.0, glint=0.0, haze=0.0, cloud=0.0, quay=0.0,
                                neighbour=0.0),
    )
    return [sample_scene(cfg, seed, i) for i in range(n)]


def infer(pred: Predictor, scenes: list[Scene], geometry: bool = True
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    views = [prepare_view(chip_from_scene(s, 3), pred.spec,
                          scene_geometry(s) if geometry else None) for s in scenes]
    x, g = stack_views(views)
    return pred.infer(x, g)


def test_right_on_clear_chips_with_and_without_geometry() -> None:
    scenes = clear_scenes(48)
    pred = Predictor(MODEL)
    y = np.array([s.label == "laden" for s in scenes])
    for geometry in (True, False):  # geometry dropout in training: no metadata still works
        probs, load, fb = infer(pred, scenes, geometry)
        acc = float(((probs[:, 1] >= 0.5) == y).mean())
        assert acc >= ACCURACY_FLOOR, f"right on only {acc:.0%} of clear chips ({geometry=})"
        lf = np.array([s.load_fraction for s in scenes])
        assert float(np.abs(load - lf).mean()) < 0.35


ACCURACY_FLOOR = 0.75


def test_freeboard_in_metres_against_the_renderers_truth() -> None:
    """Small tankers: 1-2 m laden, 3-4.5 m in ballast. With the geometry, the freeboard head
    tells them apart in metres."""
    scenes = clear_scenes(48, seed=5)
    _, _, fb = infer(Predictor(MODEL), scenes)
    truth = np.array([s.freeboard_m for s in scenes])
    mae = float(np.abs(fb - truth).mean())
    assert mae < FREEBOARD_MAE_M, f"freeboard MAE {mae:.2f} m"
    laden = truth < 2.5
    assert fb[laden].mean() < fb[~laden].mean()


FREEBOARD_MAE_M = 1.5


def test_rotating_chip_and_azimuths_leaves_the_call() -> None:
    """Equivariance: the chip turned 90 degrees clockwise with its azimuths turned alike gets
    the same call. Where the axis estimate lands alike the view is the same and p_laden agrees
    to 1e-6; elsewhere the estimate and the interpolation differ by a degree or so, and p_laden
    by up to ~0.3 on a chip near the boundary, so the test bounds the mean change."""
    scenes = clear_scenes(16, seed=7)
    pred = Predictor(MODEL)
    a, b = [], []
    for s in scenes:
        img, geo = chip_from_scene(s, 3), scene_geometry(s)
        rot = dict(geo, sun_azimuth_deg=geo["sun_azimuth_deg"] + 90,
                   sensor_azimuth_deg=geo["sensor_azimuth_deg"] + 90)
        a.append(prepare_view(img, pred.spec, geo))
        b.append(prepare_view(np.ascontiguousarray(np.rot90(img, k=-1)), pred.spec, rot))
    pa = pred.infer(*stack_views(a))[0][:, 1]
    pb = pred.infer(*stack_views(b))[0][:, 1]
    assert float(np.abs(pa - pb).mean()) < 0.05
    assert float(np.median(np.abs(pa - pb))) < 0.02
    assert ((pa >= 0.5) == (pb >= 0.5)).mean() >= 15 / 16


def test_int8_file_is_the_same_model() -> None:
    int8 = MODELS / "shipload.int8.onnx"
    if not int8.exists():
        pytest.skip("no int8 file ships with this model (see models/README.md)")
    m8, m32 = read_metadata(int8), read_metadata(MODEL)
    assert m8.pop("quantization").startswith("int8") and m8 == m32
    scenes = clear_scenes(32)
    a = infer(Predictor(MODEL), scenes)[0]
    b = infer(Predictor(int8), scenes)[0]
    assert float((a.argmax(1) == b.argmax(1)).mean()) >= 0.9
    assert float(np.abs(a - b).max()) < 0.25


@pytest.mark.parametrize("batch", [1, 7, 8])
def test_dynamic_batch(batch: int) -> None:
    pred = Predictor(MODEL)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 3, pred.spec.height, pred.spec.width), dtype=np.float32)
    p, lf, fb = pred.infer(x, np.zeros((batch, GEO_DIM), np.float32))
    assert p.shape == (batch, 2) and lf.shape == (batch,) and fb.shape == (batch,)


def test_framing_moves_few_calls_on_clear_chips() -> None:
    """The same ship cut tight (1.1x its length) and loose (2x, 10 % off centre). Measured on
    these 32 chips: 2 calls flip, mean |delta p| 0.039 (stage 10, without the framed view: 1
    and 0.072). The card gives the rates on the training looks (about 1 call in 7 flips
    there), still far from the 5 % goal."""
    scenes = clear_scenes(32, seed=11)
    tight = [recut(s, 1.1) for s in scenes]
    loose = [recut(s, 2.0, 0.1) for s in scenes]
    pred = Predictor(MODEL)
    a, b = infer(pred, tight)[0][:, 1], infer(pred, loose)[0][:, 1]
    flips = float(((a >= 0.5) != (b >= 0.5)).mean())
    assert flips <= FRAMING_FLIPS, f"{flips:.0%} of calls flip between framings"
    assert float(np.abs(a - b).mean()) <= FRAMING_DP


FRAMING_FLIPS = 0.1
FRAMING_DP = 0.06
