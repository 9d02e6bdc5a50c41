"""scripts/evaluate_model.py: which renderers judge a model."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from evaluate_model import configs, earlier_results, per_axis_configs, render_set  # noqa: E402


def test_the_recipes_sets_hold_out_the_cluttered_deck() -> None:
    cfgs = configs()
    held = cfgs["held_out"].appearance
    assert held.paint == ("two_tone",) and held.sensor == ("harsh",)
    assert cfgs["in_family"].appearance.layout == ("standard", "varied")
    assert held.layout == ("cluttered",)
    axis = per_axis_configs(cfgs["in_family"])["held_out_layout"].appearance
    assert axis.layout == ("cluttered",) and axis.paint == cfgs["in_family"].appearance.paint


def test_a_renderer_that_fixes_the_deck_holds_out_no_layout(tmp_path: Path) -> None:
    fixed = tmp_path / "fixed_deck.yaml"  # the recipe's renderer before stage 14
    fixed.write_text("appearance:\n  randomize: true\n  paint: [palette, random]\n")
    cfgs = configs(fixed)
    assert cfgs["held_out"].appearance.layout == ("standard",)  # fixed: not held out
    assert cfgs["held_out"].appearance.paint == ("two_tone",)
    assert "held_out_layout" not in per_axis_configs(cfgs["in_family"])


def test_adding_to_earlier_figures_needs_a_full_runs_json(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not found; --per-axis-only"):
        earlier_results(tmp_path / "metrics.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="is not this script's JSON"):
        earlier_results(bad)
    bad.write_text("[]")
    with pytest.raises(SystemExit, match="holds no judged sets"):
        earlier_results(bad)
    assert earlier_results(REPO / "models" / "eval" / "metrics.json")["sets"]


class _Serial:
    """The pool's ``map``, in this process."""

    @staticmethod
    def map(f, items, chunksize=1):  # type: ignore[no-untyped-def]
        return [f(i) for i in items]


def test_a_reshot_set_keeps_each_ship_and_draws_new_pixels() -> None:
    from shipload.view import InputSpec

    spec = InputSpec(120, 160, "hull_aligned", 2.0, 1.1)
    cfg = configs()["in_family"]
    first = render_set(cfg, 31, 3, spec, _Serial(), scale=1.1)
    again = render_set(cfg, 31, 3, spec, _Serial(), scale=1.1, reshot=True)
    for k in ("y", "lf", "fb", "gsd"):  # the same ships; their geometry input differs a little,
        np.testing.assert_array_equal(first[k], again[k])  # as the azimuths follow the view's axis
    diff = np.abs(first["x"].astype(int) - again["x"].astype(int)).mean(axis=(1, 2, 3))
    assert (diff > 0.5).all()  # each chip drawn anew: another exposure, not the same bytes
