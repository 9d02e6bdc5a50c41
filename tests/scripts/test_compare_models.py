"""scripts/compare_models.py: paired comparison of two models on fresh rendered chips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from compare_models import compare, paired  # noqa: E402


def test_paired_difference_counts_discordant_chips() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    ref = np.array([0.9, 0.2, 0.1, 0.8, 0.7, 0.3, 0.6, 0.4])  # wrong on chips 1 and 3
    new = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.3, 0.6, 0.4])  # wrong on chip 4 only
    r = paired(y, ref, new)
    assert r["only_new_right"] == 2 and r["only_ref_right"] == 1
    assert r["diff"] == pytest.approx(1 / 8)
    lo, hi = r["ci95"]
    assert lo <= r["diff"] <= hi and lo < 0 < hi  # 8 chips cannot tell them apart
    same = paired(y, ref, ref)
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0]


def test_compare_judges_both_models_on_the_same_fresh_chips() -> None:
    shipped, older = REPO / "models" / "shipload.pt", REPO / "models" / "init" / "stage12.pt"
    res = compare([shipped, older], seed=7, n=24, sets=("held_out", "held_out_paint"))
    row = res["sets"]["held_out"]["with_geometry"]
    ref, old = row[str(shipped)], row[str(older)]
    assert ref["n"] == 24 and "vs_reference" in old and "vs_reference" not in ref
    v = old["vs_reference"]
    assert old["accuracy"]["all"] - ref["accuracy"]["all"] == pytest.approx(v["diff"], abs=1e-3)
    assert v["only_new_right"] + v["only_ref_right"] <= 24
    assert set(res["sets"]["held_out"]) == {"with_geometry", "without_geometry"}
    assert res["sets"]["held_out_paint"]["with_geometry"][str(shipped)]["n"] == 24


def test_compare_refuses_missing_model_and_unknown_set(tmp_path: Path) -> None:
    fixed = tmp_path / "fixed_deck.yaml"  # a training renderer that never varies the deck
    fixed.write_text("appearance:\n  randomize: true\n  paint: [palette, random]\n")
    shipped = REPO / "models" / "shipload.pt"
    with pytest.raises(SystemExit, match="not found"):
        compare([shipped, tmp_path / "nope.pt"], seed=7, n=4, sets=("held_out",))
    with pytest.raises(SystemExit, match="named twice"):
        compare([shipped, shipped], seed=7, n=4, sets=("held_out",))
    with pytest.raises(SystemExit, match="unknown set"):
        compare([shipped, REPO / "models" / "init" / "stage12.pt"], seed=7, n=4, sets=("mars",))
    with pytest.raises(SystemExit, match="does not randomise"):
        compare([shipped, REPO / "models" / "init" / "stage12.pt"], seed=7, n=4,
                sets=("held_out_layout",), train_config=fixed)
