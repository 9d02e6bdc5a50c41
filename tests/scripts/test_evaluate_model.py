"""scripts/evaluate_model.py: which renderers judge a model."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from evaluate_model import configs, per_axis_configs  # noqa: E402


def test_the_recipes_sets_hold_out_only_the_axes_it_randomises() -> None:
    cfgs = configs()
    held = cfgs["held_out"].appearance
    assert held.paint == ("two_tone",) and held.sensor == ("harsh",)
    assert held.layout == ("standard",)  # the recipe keeps the standard deck: not held out
    assert "held_out_layout" not in per_axis_configs(cfgs["in_family"])


def test_a_layout_renderer_holds_out_the_cluttered_deck() -> None:
    cfgs = configs(REPO / "configs" / "synth_train_layouts.yaml")
    assert cfgs["in_family"].appearance.layout == ("standard", "varied")
    assert cfgs["held_out"].appearance.layout == ("cluttered",)
    axis = per_axis_configs(cfgs["in_family"])["held_out_layout"].appearance
    assert axis.layout == ("cluttered",) and axis.paint == cfgs["in_family"].appearance.paint
