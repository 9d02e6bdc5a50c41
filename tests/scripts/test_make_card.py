"""scripts/make_card.py: refuses missing inputs; the card's tables come from the metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from make_card import accuracy_table, gap_table  # noqa: E402


def _scores(acc: float) -> dict:  # type: ignore[type-arg]
    bands = {"all": acc, "0.3-0.6": acc + 0.05, "0.6-1.2": acc, "1.2-3": acc - 0.05}
    return {"accuracy": bands, "auroc": 0.9, "laden_share": 0.45, "laden_share_truth": 0.5,
            "freeboard_mae_m": dict.fromkeys(bands, 1.0), "load_mae": 0.2, "n": 10}


def test_missing_metrics_is_refused_before_writing(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "make_card.py"), "--metrics",
                        str(tmp_path / "none.json"), "--out", str(tmp_path / "card.md")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "none.json not found" in r.stderr
    assert not (tmp_path / "card.md").exists()


def test_tables_carry_the_measured_figures() -> None:
    sets = {k: {"with_geometry": _scores(0.8), "without_geometry": _scores(0.75)}
            for k in ("in_family", "base")}
    sets["held_out"] = {"with_geometry": _scores(0.77), "without_geometry": _scores(0.70)}
    m = {"sets": {"model": sets, "baseline": sets}, "baseline": "stage7.pt"}
    t = accuracy_table(m)
    assert "held-out families · this model · with geometry | 0.770 | 0.820" in t
    assert "stage 7 · with geometry" not in t  # the image-only baseline has no geometry
    assert "stage 8 · with geometry" in accuracy_table({**m, "baseline": "stage8.pt"})
    gaps = gap_table(m)
    assert "| with geometry | +3.0 | +3.0 | +3.0 | +3.0 |" in gaps
    assert "| without geometry | +5.0 |" in gaps


def test_part_table_only_for_a_model_with_a_part_head() -> None:
    from make_card import part_table

    assert part_table({}) == ""
    iou = {"n": 300, "in_family": {"shadow": 0.61, "hull_side": 0.2},
           "held_out": {"shadow": 0.42, "hull_side": 0.1}}
    t = part_table({"part_iou": iou})
    assert "| held-out families | 0.420 | 0.100 |" in t and "on 300 chips" in t


def test_gpu_section_pastes_the_checks_or_nothing() -> None:
    from make_card import gpu_section

    assert gpu_section("") == "" and gpu_section("  \n") == ""
    text = "  fp16: max |dp| 1.7e-03, mean 2.8e-04, calls changed 0.00%"
    s = gpu_section(text)
    assert s.startswith("### On a GPU") and text.strip() in s and s.rstrip().endswith("```")
