"""The physical bound: quantisation of the cues, and an oracle that reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipload.oracle import (
    features,
    fit_oracle,
    oracle_bound,
    oracle_scores,
    super_shadow_in_chip,
)
from shipload.synth.writer import write_dataset
from tests.conftest import tiny_config


def test_features_read_whole_pixels() -> None:
    # beam, hull shadow, side, band, superstructure shadow (px); |sin| of sun and view azimuths
    a = np.array([[20.4, 6.3, 2.49, 0.4, 30.0, 0.7, 0.2]])
    b = np.array([[19.6, 5.7, 2.01, 0.0, 29.6, 0.7, 0.2]])
    fa, fb = features(a), features(b)
    assert fa.shape == (1, 12)
    # sub-pixel differences vanish: a raster reader cannot see them
    np.testing.assert_array_equal(fa, fb)
    c = np.array([[20.0, 8.0, 2.0, 0.0, 30.0, 0.7, 0.2]])
    assert not np.array_equal(features(c), fa)  # a 2-pixel wider shadow is seen


def _row(sun_azimuth: float, length_px: float) -> dict[str, str]:
    # bow to the east, a 100 m ship at 1 m GSD in a 120-px chip: the block sits 41 px west
    # of the centre, 19 px from the west edge
    return {"super_shadow_len_px": str(length_px), "chip_px": "120", "heading_deg": "90",
            "sun_azimuth_deg": str(sun_azimuth), "ship_length_m": "100", "gsd_m": "1.0"}


def test_superstructure_shadow_is_cut_at_the_chip_edge() -> None:
    rows = [_row(90, 50),  # sun in the east: the shadow runs west, out of the chip after 19 px
            _row(270, 50),  # sun in the west: the shadow runs east, across the chip, all seen
            _row(0, 50),  # sun in the north: south, 60 px to the edge, all 50 seen
            _row(0, 80)]  # ... but only 60 of an 80-px shadow
    np.testing.assert_allclose(super_shadow_in_chip(rows), [19, 50, 50, 60], atol=1e-9)
    # a view band 0.125 of the chip (15 px) each side of the hull axis: the shadow running
    # south, straight across the hull, leaves it after 15 px; along the hull it stays in
    np.testing.assert_allclose(super_shadow_in_chip(rows, view_band=0.125), [19, 50, 15, 15],
                               atol=1e-9)


@pytest.fixture(scope="module")
def cue_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("oracle")
    write_dataset(tiny_config(), root / "train", 600, seed=11, workers=1, progress=False)
    write_dataset(tiny_config(), root / "test", 300, seed=12, workers=1, progress=False)
    return root / "train" / "labels.csv", root / "test" / "labels.csv"


def test_oracle_reads_the_cues(cue_sets: tuple[Path, Path]) -> None:
    train, test = cue_sets
    s = oracle_scores(fit_oracle(train, epochs=40), test)
    acc, mae = s["accuracy"], s["load_mae"]
    assert set(acc) == set(mae) and "all" in acc
    # the cues carry the load: far above chance on unseen chips, and the load estimate
    # beats the best constant (the median load) by a wide margin
    assert acc["all"] > 0.75
    lf = np.genfromtxt(test, delimiter=",", names=True, dtype=None, encoding=None)["load_fraction"]
    assert mae["all"] < 0.6 * float(np.abs(lf - np.median(lf)).mean())
    for v in acc.values():
        assert 0.0 <= v <= 1.0


def test_bound_is_the_mean_of_its_fits(cue_sets: tuple[Path, Path]) -> None:
    train, test = cue_sets
    b = oracle_bound(train, test, seeds=(0, 1), epochs=20)
    one = [oracle_scores(fit_oracle(train, 20, s), test)["accuracy"]["all"] for s in (0, 1)]
    assert b["fits"] == 2
    assert b["accuracy_range"]["all"] == [min(one), max(one)]
    assert b["accuracy"]["all"] == pytest.approx(sum(one) / 2)
    assert set(b["load_mae"]) == set(b["accuracy"])
