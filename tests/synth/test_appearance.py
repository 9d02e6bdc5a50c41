"""Appearance families: valid config, every family drawn, geometry untouched, preview."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from shipload.synth import SynthConfig, render, sample_scene
from shipload.synth.appearance import FAMILIES, HELD_OUT, in_family
from shipload.synth.params import AppearanceConfig
from shipload.synth.preview import contact_sheet
from shipload.synth.writer import read_label_rows, write_dataset
from tests.conftest import tiny_config


def _cfg(**families: tuple[str, ...]) -> SynthConfig:
    return dataclasses.replace(tiny_config(), appearance=AppearanceConfig(randomize=True,
                                                                          **families))


def test_unknown_family_or_axis_is_refused() -> None:
    with pytest.raises(ValueError, match="appearance.paint"):
        AppearanceConfig(paint=("neon",))
    with pytest.raises(ValueError, match="empty list"):
        AppearanceConfig(water=())


def test_training_families_exclude_the_held_out_ones() -> None:
    fam = in_family()
    for axis, held in HELD_OUT.items():
        assert held not in fam[axis] and set(fam[axis]) | {held} == set(FAMILIES[axis])


def test_every_allowed_family_is_drawn_and_no_other() -> None:
    cfg = _cfg(**{a: f for a, f in in_family().items()})
    seen: dict[str, set[str]] = {a: set() for a in FAMILIES}
    for i in range(200):
        look = sample_scene(cfg, 1, i).look
        assert look is not None
        for a, f in look.families.items():
            seen[a].add(f)
    assert seen == {a: set(f) for a, f in in_family().items()}


def test_appearance_never_moves_the_geometry() -> None:
    """The visible parts (shadow, hull side, band, deck) cover the same pixels whatever the look:
    appearance changes colours and tones, never a polygon. (Clutter may move: a neighbour's
    place is drawn after the water, whose generator the water families replace.)"""
    base = dataclasses.replace(SynthConfig(), sensor=dataclasses.replace(
        SynthConfig().sensor, max_chip_px=160))
    wild = dataclasses.replace(base, appearance=AppearanceConfig(randomize=True))
    for i in range(6):
        a = dataclasses.replace(sample_scene(base, 8, i), neighbour=False)
        b = dataclasses.replace(sample_scene(wild, 8, i), neighbour=False)
        assert b.look is not None and a.look is None
        assert dataclasses.replace(b, look=None) == a  # the same scene draws
        la, lb = render(a, layers=True).layers, render(b, layers=True).layers
        for part in ("shadow", "hull_side", "band", "deck"):
            np.testing.assert_array_equal(la[part], lb[part])
        assert render(a).cues == render(b).cues


def test_looks_differ_and_are_recorded(tmp_path: Path) -> None:
    out = write_dataset(_cfg(), tmp_path / "wild", 12, seed=2, workers=1, progress=False)
    rows = read_label_rows(out)
    assert all("paint=" in r["look"] and "water=" in r["look"] for r in rows)
    means = [render(sample_scene(_cfg(), 2, i)).rgb.mean(axis=(0, 1)) for i in range(6)]
    assert np.ptp(np.array(means), axis=0).max() > 0.1  # wide spread of overall colour
    sheet = contact_sheet(out, tmp_path / "preview.png", n=12)
    assert sheet.is_file() and sheet.stat().st_size > 10_000


def test_patched_paint_lays_blotches_of_a_second_paint_on_the_ship_only() -> None:
    from shipload.synth.appearance import patch_mask

    rng = np.random.default_rng(0)
    covers = [float(patch_mask(96, rng).mean()) for _ in range(20)]
    assert min(covers) > 0.05 and max(covers) < 0.7  # blotches, never the whole hull
    cfg = _cfg(paint=("patched",))
    s = dataclasses.replace(sample_scene(cfg, 3, 1), neighbour=False, quay=False,
                            under_way=False)
    assert s.look is not None and s.look.second_pattern == "patches"
    # Two second paints, red and blue, laid by the same draws: they differ where the patches are.
    red, blue = (dataclasses.replace(s, look=dataclasses.replace(s.look, second_rgb=c))
                 for c in ((0.9, 0.05, 0.05), (0.05, 0.05, 0.9)))
    a, b = render(red, layers=True), render(blue, layers=True)
    ship = sum(a.layers[p] for p in ("deck", "hull_side", "band", "super_roof")) > 0.5
    diff = np.abs(a.rgb - b.rgb).max(axis=2)
    patched = float((diff[ship] > 0.05).mean())
    assert 0.05 < patched < 0.8  # part of the ship is repainted...
    near = cv2.dilate((sum(a.layers.values()) > 0).astype(np.uint8), np.ones((7, 7), np.uint8))
    assert float(diff[near == 0].max()) < 0.01  # ...and none of the water (beyond the blur)


def test_layouts_move_deck_equipment_never_the_hull() -> None:
    """The layout families redraw what stands on the deck; the hull's outline, side, band,
    shadow and cue widths stay those of the standard deck, and the standard deck is the base
    renderer's, draw for draw."""
    from shipload.synth.geometry import Projector, ship_shapes

    base = dataclasses.replace(SynthConfig(), sensor=dataclasses.replace(
        SynthConfig().sensor, max_chip_px=200))
    standard = dataclasses.replace(base, appearance=AppearanceConfig(randomize=True))
    changed = 0
    for fam in ("varied", "cluttered"):
        cfg = dataclasses.replace(base, appearance=AppearanceConfig(randomize=True,
                                                                    layout=(fam,)))
        for i in range(4):
            a, b = sample_scene(standard, 4, i), sample_scene(cfg, 4, i)
            assert a.look is not None and b.look is not None
            assert a.look.families["layout"] == "standard" and b.look.families["layout"] == fam
            # Every other draw of the look is the standard one's.
            assert dataclasses.replace(b.look, families=a.look.families, rack_offset=0.0,
                                       manifolds=(0.0,), super_half_width=0.42, deck_items=(),
                                       item_rgb=()) == a.look
            sa, sb = (ship_shapes(s, Projector.for_scene(s)) for s in (a, b))
            for part in ("hull_shadow", "hull_side", "band", "deck", "waterline"):
                pa, pb = getattr(sa, part), getattr(sb, part)
                assert (pa is None and pb is None) or np.array_equal(pa, pb)
            assert render(a).cues == render(b).cues
            changed += int(len(sb.deck_items) > 0 or sb.manifold is None
                           or not np.array_equal(sa.pipe_rack, sb.pipe_rack))
            img = render(b).rgb
            assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    assert changed == 8  # every varied and cluttered deck differs from the standard one


def test_an_axis_fixed_in_training_is_not_held_out() -> None:
    from shipload.synth.appearance import held_out_axes

    fixed = AppearanceConfig(randomize=True).families()  # layout: standard only
    assert "layout" not in held_out_axes(fixed) and held_out_axes(fixed)["paint"] == "two_tone"
    free = AppearanceConfig(randomize=True, layout=("standard", "varied")).families()
    assert held_out_axes(free)["layout"] == "cluttered"


def test_held_out_config_swaps_only_the_randomised_axes() -> None:
    train = AppearanceConfig(randomize=True, **{a: f for a, f in in_family().items()
                                               if a != "layout"})
    held = train.held_out()
    assert held.paint == ("two_tone",) and held.style == ("textured",)
    assert held.layout == ("standard",) and held.light == train.light  # fixed, or no held-out
    one = train.held_out("water")
    assert one.water == ("blotchy",) and one.paint == train.paint
    with pytest.raises(KeyError):
        train.held_out("layout")  # the recipe fixes the deck: nothing to hold out
