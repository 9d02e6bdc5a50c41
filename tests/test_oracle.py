"""The physical bound: quantisation of the cues, and an oracle that reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipload.oracle import features, fit_oracle, oracle_scores
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
