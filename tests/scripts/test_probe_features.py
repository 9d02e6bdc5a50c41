"""scripts/probe_features.py: a linear probe on a model's features, fitted per look."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import torch  # noqa: E402
from probe_features import MLPProbe, Probe, part_widths, probe, width_physics  # noqa: E402


def test_probe_reads_a_linear_cue_and_nothing_from_noise() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    z = rng.normal(size=(400, 20))
    z[:, 3] += 3.0 * (2 * y - 1)  # one feature carries the class
    fit = Probe().fit(z[:200], y[:200])
    assert fit.accuracy(z[200:], y[200:]) > 0.9
    noise = rng.normal(size=(400, 20))
    assert Probe().fit(noise[:200], y[:200]).accuracy(noise[200:], y[200:]) < 0.7
    with pytest.raises(ValueError, match="two chips of each class"):
        Probe().fit(z[:5], np.ones(5, int))


@pytest.mark.parametrize(("pool", "dim"), [("global", 320), ("profile", 160 * 8), ("widths", 25)])
def test_probe_scores_the_shipped_model_on_both_looks(pool: str, dim: int) -> None:
    """Global: the heads' (max, mean) of 160 channels; profile: 160 channels x 8 rows;
    widths: 5 statistics of 5 parts."""
    res = probe(REPO / "models" / "shipload.pt", n=24, train_seed=11, test_seed=7, pool=pool)
    assert res["feature_dim"] == dim and res["pool"] == pool
    assert set(res["sets"]) == {"in_family", "held_out"}
    json.dumps(res)  # what --out writes
    for row in res["sets"].values():
        assert set(row) == {"head", "probe_same", "probe_from_in_family", "probe_same+geometry",
                            "probe_from_in_family+geometry"}
        assert all(0.0 <= v <= 1.0 for v in row.values())


def test_probe_refuses_a_missing_model_and_equal_seeds(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not found"):
        probe(tmp_path / "nope.pt", n=4, train_seed=1, test_seed=2)
    with pytest.raises(SystemExit, match="must differ"):
        probe(REPO / "models" / "shipload.pt", n=4, train_seed=3, test_seed=3)


def test_mlp_probe_reads_a_cue_the_linear_probe_cannot() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    z = rng.normal(size=(600, 20))
    z[:, 0] += 2.0 * (2 * y - 1) * np.sign(z[:, 1])  # the class is in a product: not linear
    lin = Probe().fit(z[:300], y[:300]).accuracy(z[300:], y[300:])
    mlp = MLPProbe().fit(z[:300], y[:300]).accuracy(z[300:], y[300:])
    assert lin < 0.65 and mlp > lin + 0.1


def test_part_widths_measure_bands_across_the_hull_and_physics_turns_them_into_metres() -> None:
    # A view of 40 rows x 100 columns: the deck 20 rows wide, the shadow 6, the hull side 3,
    # no band or superstructure; logits of +-20 make the probabilities 0 or 1.
    logits = torch.full((1, 5, 40, 100), -20.0)
    for part, (r0, r1) in {0: (30, 36), 1: (27, 30), 3: (7, 27)}.items():
        logits[0, part, r0:r1] = 20.0
    w = part_widths(logits)
    assert w.shape == (1, 25)
    assert w[0, :5] == pytest.approx([6, 3, 0, 20, 0], abs=1e-3)  # median widths
    assert w[0, 20 + 3] == pytest.approx(np.log(20.5 / 20))  # the deck over itself
    g = np.zeros((1, 16), np.float32)
    g[0, 0], g[0, 2] = 1.0, np.log(0.5)  # GSD known; 0.5 m per view pixel across
    g[0, 14], g[0, 15] = -0.2, 0.1  # 2 px of shadow and 1 px of layover per metre of height
    fb_shadow, fb_side, band, beam = np.expm1(width_physics(w, g)[0])
    assert fb_shadow == pytest.approx(3.0) and fb_side == pytest.approx(3.0)
    assert band == pytest.approx(0.0, abs=1e-4) and beam == pytest.approx(10.0)


def test_widths_need_a_part_head() -> None:
    from probe_features import features

    from shipload.model.backbones import ShiploadNet

    net = ShiploadNet(backbone="mobilenet_v3_small")  # no part decoder on a torchvision body
    d = {"x": np.zeros((2, 3, 120, 160), np.uint8), "g": np.zeros((2, 16), np.float32)}
    with pytest.raises(SystemExit, match="needs a model with a part head"):
        features(net, d, "widths")
    assert features(net, d, "global").shape[0] == 2  # the other pools still read it
