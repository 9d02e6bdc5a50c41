"""Shared condition bands: half-open, the last one closed, for NumPy and torch alike."""

from __future__ import annotations

import numpy as np
import torch

from shipload.bands import GSD_BANDS, band_label, band_masks


def test_bands_cover_the_range_once() -> None:
    g = np.array([0.3, 0.599, 0.6, 1.2, 2.999, 3.0, 0.29, 3.01])
    m = band_masks(g, GSD_BANDS)
    assert list(m) == ["0.3-0.6", "0.6-1.2", "1.2-3"]
    assert m["0.3-0.6"].tolist() == [True, True, False, False, False, False, False, False]
    assert m["0.6-1.2"].tolist() == [False, False, True, False, False, False, False, False]
    # the last band is closed: 3.0 m counts; outside the range counts nowhere
    assert m["1.2-3"].tolist() == [False, False, False, True, True, True, False, False]
    assert band_label(0.3, 0.6) == "0.3-0.6"


def test_bands_on_tensors_match_numpy() -> None:
    g = np.random.default_rng(0).uniform(0.2, 3.2, 500)
    a = band_masks(g, GSD_BANDS)
    b = band_masks(torch.from_numpy(g), GSD_BANDS)
    for k in a:
        assert a[k].tolist() == b[k].tolist()
