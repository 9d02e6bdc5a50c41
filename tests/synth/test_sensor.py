"""The sensor model keeps every pixel finite and in range, whatever radiance it is given."""

from __future__ import annotations

import dataclasses

import numpy as np

from shipload.synth import SynthConfig
from shipload.synth.params import sample_scene
from shipload.synth.sensor import expose, to_uint8


def test_expose_is_finite_below_zero_radiance() -> None:
    """Radiance below zero (a look's water or texture can dip there) gives black, not NaN."""
    s = dataclasses.replace(sample_scene(SynthConfig(), 0, 0), noise_std=0.05,
                            mtf_sigma_px=0.0)
    img = np.full((16, 16, 3), 0.2, np.float32)
    img[4:8, 4:8] = -0.8
    with np.errstate(invalid="raise"):  # a NaN made anywhere fails here
        out = expose(img, s, np.random.default_rng(0))
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert (out[4:8, 4:8] == 0.0).all()  # no signal, clipped: black
    assert 0.0 < out[10:, 10:].mean() < 1.0 and out[10:, 10:].std() > 0  # noise elsewhere
    assert to_uint8(out)[4:8, 4:8].max() == 0
