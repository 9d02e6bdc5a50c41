"""scripts/cue_probe.py: per-stage features and the ridge probe's score."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from cue_probe import probe, ridge_corr, stage_features  # noqa: E402

from shipload.model.backbones import ShiploadNet  # noqa: E402


def test_stage_features_pool_every_stage_in_order() -> None:
    net = ShiploadNet("shipnet_small")
    x = np.random.default_rng(0).integers(0, 255, (5, 3, 32, 64), dtype=np.uint8)
    f = stage_features(net, x)
    assert [a.shape for a in f] == [(5, 2 * w) for w in (12, 24, 32, 64, 96)]
    with pytest.raises(SystemExit, match="no ShipNet stages"):
        stage_features(ShiploadNet("mobilenet_v3_small"), x)


def test_ridge_probe_finds_a_linear_signal_and_not_noise() -> None:
    rng = np.random.default_rng(1)
    f = rng.normal(size=(400, 20))
    t = f[:, 3] * 2 - f[:, 7] + rng.normal(scale=0.1, size=400)
    assert ridge_corr(f[:300], t[:300], f[300:], t[300:]) > 0.95
    noise = rng.normal(size=400)
    assert abs(ridge_corr(f[:300], noise[:300], f[300:], noise[300:])) < 0.3


def test_an_unknown_set_is_refused() -> None:
    with pytest.raises(SystemExit, match="in_family"):
        probe(REPO / "models" / "shipload.pt", 4, 1, 2, ("in_famly",))
