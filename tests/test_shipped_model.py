"""The model shipped in models/: self-describing, and right on chips where the cue is clear."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from shipload.data.transforms import prepare_chip
from shipload.runtime import sha256_file
from shipload.inference import DEFAULT_MODEL, Predictor
from shipload.runtime import read_metadata
from shipload.synth import SynthConfig, render, sample_scene
from shipload.synth.params import LoadConfig, NuisanceConfig

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_metadata_contract() -> None:
    m = read_metadata(DEFAULT_MODEL)
    assert json.loads(m["classes"]) == ["empty", "laden"]
    assert m["resize_policy"] == "hull_aligned" and int(m["input_width"]) > 0
    assert json.loads(m["training_data"])["synth_seed"] == 7  # the last stage's chips
    recipe = json.loads(m["recipe"])  # every stage's config, in order, with its sha256
    stages = ("", "_stage2", "_stage3", "_stage4", "_stage5", "_stage6", "_stage7")
    assert list(recipe) == [f"configs/default{s}.yaml" for s in stages]
    assert len(m["recipe_sha256"]) == 64
    assert DEFAULT_MODEL.stat().st_size < 20e6


def test_card_states_the_files_sha256() -> None:
    card = (MODELS / "README.md").read_text()
    assert sha256_file(DEFAULT_MODEL) in card


def clear_chips(n: int) -> list:
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
    return [sample_scene(cfg, 99, i) for i in range(n)]


def views(scenes: list, pred: Predictor) -> np.ndarray:
    """(N, 3, H, W) model input of rendered scenes."""
    x = np.stack([prepare_chip(render(s).rgb, pred.spec) for s in scenes])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def test_right_on_clear_chips() -> None:
    scenes = clear_chips(48)
    pred = Predictor(DEFAULT_MODEL)
    probs, load = pred.infer(views(scenes, pred))
    y = np.array([s.label == "laden" for s in scenes])
    acc = float(((probs[:, 1] >= 0.5) == y).mean())
    assert acc >= ACCURACY_FLOOR, f"shipped model right on only {acc:.0%} of clear chips"
    lf = np.array([s.load_fraction for s in scenes])
    assert float(np.abs(load - lf).mean()) < 0.35


ACCURACY_FLOOR = 0.8


def test_int8_file_is_the_same_model() -> None:
    int8 = MODELS / "shipload.int8.onnx"
    if not int8.exists():
        pytest.skip("no int8 file ships with this model (see models/README.md)")
    m8, m32 = read_metadata(int8), read_metadata(DEFAULT_MODEL)
    assert m8.pop("quantization").startswith("int8") and m8 == m32
    scenes = clear_chips(32)
    p32, p8 = Predictor(DEFAULT_MODEL), Predictor(int8)
    a, b = p32.infer(views(scenes, p32))[0], p8.infer(views(scenes, p8))[0]
    assert float((a.argmax(1) == b.argmax(1)).mean()) >= 0.9
    assert float(np.abs(a - b).max()) < 0.25


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch(batch: int) -> None:
    pred = Predictor(DEFAULT_MODEL)
    x = np.random.default_rng(0).random((batch, 3, pred.spec.height, pred.spec.width),
                                        dtype=np.float32)
    p, lf = pred.infer(x)
    assert p.shape == (batch, 2) and lf.shape == (batch,)
