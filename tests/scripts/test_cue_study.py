"""scripts/cue_study.py: the cue's width per chip and the accuracy tables built on it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from cue_study import (  # noqa: E402
    GAP_BANDS,
    by_gap,
    by_size,
    measure_table,
    scene_facts,
    study,
)
from evaluate_model import run  # noqa: E402

from shipload.synth import SynthConfig  # noqa: E402


def test_scene_facts_are_the_rendered_scenes() -> None:
    """The facts come from the scenes render_set draws (seed, index), and the widths vary."""
    a, b = scene_facts(SynthConfig(), 5, 40), scene_facts(SynthConfig(), 5, 40)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (a["gap"] >= 0).all() and a["gap"].std() > 0
    assert not np.array_equal(a["fb"], scene_facts(SynthConfig(), 6, 40)["fb"])


def test_tables_count_only_clear_chips_and_score_each_band() -> None:
    facts = {"gap": np.array([0.5, 0.5, 3.0, 3.0, 9.0, 9.0, 3.0]),
             "length": np.array([80, 80, 250, 250, 330, 330, 80.0]),
             "lf": np.array([0.0, 1.0, 0.05, 0.95, 0.0, 1.0, 0.5]),  # the last is ambiguous
             "fb": np.zeros(7)}
    y = np.array([0, 1, 0, 1, 0, 1, 0])
    p = np.array([0.9, 0.9, 0.1, 0.9, 0.1, 0.9, 0.9])  # wrong on the first chip only
    gap = {r["band"]: r for r in by_gap(y, p, facts)}
    assert [r["band"] for r in by_gap(y, p, facts)] == list(GAP_BANDS)
    assert gap[(0, 1)]["n"] == 2 and gap[(0, 1)]["accuracy"] == 0.5
    assert gap[(2, 4)]["n"] == 2 and gap[(2, 4)]["accuracy"] == 1.0  # not the ambiguous chip
    assert gap[(8, np.inf)]["accuracy"] == 1.0 and gap[(1, 2)]["n"] == 0
    size = {(r["size"], r["state"]): r for r in by_size(y, p, facts)}
    assert size[("small", "empty")]["accuracy"] == 0.0 and size[("small", "empty")]["n"] == 1
    assert size[("vlcc", "laden")]["accuracy"] == 1.0


def test_an_unknown_set_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="held_out_paint"):
        study(REPO / "models" / "shipload.pt", 1, 4, ("held_out_pant",))


def test_measure_table_scores_each_cue_and_needs_a_readout() -> None:
    import torch

    from shipload.model.backbones import ShiploadNet

    truth = np.array([[-3.0, -2.0], [-2.0, -1.0], [-1.0, -3.0], [0.0, -2.5]])
    rows = measure_table(truth + np.array([0.1, -0.2]), truth)
    assert [r["cue"] for r in rows] == ["shadow_over_beam", "side_over_beam"]
    assert np.isclose(rows[0]["mae"], 0.1) and np.isclose(rows[1]["mae"], 0.2)
    assert np.isclose(rows[0]["corr"], 1.0)
    assert measure_table(-truth, truth)[0]["corr"] < -0.99
    d = {"x": np.zeros((3, 3, 32, 64), np.uint8), "g": np.zeros((3, 16), np.float32)}
    assert "measure" not in run(ShiploadNet("shipnet_small"), d, True)
    torch.manual_seed(0)
    m = run(ShiploadNet("shipnet_small", readout="profile"), d, True)["measure"]
    assert m.shape == (3, 2) and np.isfinite(m).all()
