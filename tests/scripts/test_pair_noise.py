"""scripts/pair_noise.py: a look pair's two renders share noise that a reshot pair does not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from pair_noise import correlations, high_pass  # noqa: E402


def test_high_pass_keeps_noise_and_drops_a_flat_field() -> None:
    flat = np.full((32, 32, 3), 0.4, np.float32)
    assert np.abs(high_pass(flat)).max() < 1e-6
    noisy = flat + np.random.default_rng(0).normal(0, 0.05, flat.shape).astype(np.float32)
    assert high_pass(noisy).std() > 0.01


def test_look_pairs_share_noise_that_a_reshot_pair_does_not() -> None:
    same, shot = correlations(6, 33)
    assert same.shape == shot.shape == (6,)
    assert np.median(same) > np.median(shot)
