"""The physics the renderer must get right, measured in rendered pixels."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from shipload.synth.geometry import LADEN_BALLAST_GAP_BEAMS, cue_gap_px, cue_widths
from shipload.synth.params import SynthConfig, sample_scene
from shipload.synth.render import render
from tests.conftest import fixed_scene

MID = 120  # the chip centre row: midships for a ship with heading 0


def row_width(layer: np.ndarray, row: int = MID) -> float:
    """Visible width (px) of a coverage layer along one image row, fractional edges included."""
    return float(layer[row - 2 : row + 3].mean(axis=0).sum())


@pytest.mark.parametrize("fb_frac", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("elev", [25.0, 45.0, 65.0])
def test_shadow_width_matches_formula(fb_frac: float, elev: float) -> None:
    # Sun abeam (from the east), ship bow north: shadow falls west, across the hull.
    s = fixed_scene(load_fraction=fb_frac, sun_elevation_deg=elev)
    r = render(s, clean=True, layers=True)
    expected = s.freeboard_m / math.tan(math.radians(elev)) / s.gsd_m
    assert abs(row_width(r.layers["shadow"]) - expected) < 1.0
    assert abs(r.cues.shadow_width_px - expected) < 1e-6


def test_shadow_grows_with_freeboard_and_darkens_water() -> None:
    widths = []
    for lf in (1.0, 0.6, 0.3, 0.0):
        r = render(fixed_scene(load_fraction=lf), clean=True, layers=True)
        widths.append(row_width(r.layers["shadow"]))
        sh = r.layers["shadow"] > 0.99
        water = (r.layers["shadow"] == 0) & (sum(r.layers[k] for k in r.layers) == 0)
        assert r.rgb[sh].mean() < 0.6 * r.rgb[water].mean()
    assert all(b > a for a, b in zip(widths, widths[1:]))


def test_shadow_hidden_when_sun_along_hull() -> None:
    r = render(fixed_scene(sun_azimuth_deg=0.0), clean=True, layers=True)
    assert row_width(r.layers["shadow"]) < 0.5


@pytest.mark.parametrize("theta", [10.0, 25.0, 40.0])
@pytest.mark.parametrize("lf", [0.0, 0.5, 1.0])
def test_visible_hull_side_and_band_match_formula(theta: float, lf: float) -> None:
    # Sensor to the west, looking east across the hull: the port side shows.
    s = fixed_scene(load_fraction=lf, off_nadir_deg=theta, sun_azimuth_deg=0.0)
    r = render(s, clean=True, layers=True)
    t = math.tan(math.radians(theta))
    side = row_width(r.layers["hull_side"]) + row_width(r.layers["band"])
    assert abs(side - s.freeboard_m * t / s.gsd_m) < 1.0
    band = row_width(r.layers["band"])
    assert abs(band - (s.freeboard_m - s.fb_laden_m) * t / s.gsd_m) < 1.0
    assert abs(r.cues.side_width_px - s.freeboard_m * t / s.gsd_m) < 1e-6


def test_no_band_when_laden_band_grows_in_ballast() -> None:
    bands = []
    for lf in (1.0, 0.75, 0.5, 0.25, 0.0):
        r = render(fixed_scene(load_fraction=lf, off_nadir_deg=30.0, sun_azimuth_deg=0.0),
                   clean=True, layers=True)
        bands.append(float(r.layers["band"].sum()))
    assert bands[0] == 0.0
    assert all(b > a for a, b in zip(bands, bands[1:]))


def test_no_hull_side_at_nadir() -> None:
    r = render(fixed_scene(off_nadir_deg=0.0), clean=True, layers=True)
    assert row_width(r.layers["hull_side"]) + row_width(r.layers["band"]) < 0.5


def test_layover_hides_far_side() -> None:
    # Sensor to the east: the starboard side shows, east of the deck; none shows on the west.
    r = render(fixed_scene(off_nadir_deg=30.0, sensor_azimuth_deg=90.0, sun_azimuth_deg=0.0),
               clean=True, layers=True)
    side = r.layers["hull_side"][MID] + r.layers["band"][MID]
    deck_cols = np.nonzero(r.layers["deck"][MID] > 0.5)[0]
    side_cols = np.nonzero(side > 0.5)[0]
    assert side_cols.min() > deck_cols.max() - 1


def test_bulb_breaks_surface_only_in_ballast() -> None:
    kw = dict(bulb_depth_frac=0.6, off_nadir_deg=0.0)
    assert render(fixed_scene(load_fraction=1.0, **kw), clean=True, layers=True).layers[
        "bulb"].sum() == 0
    assert render(fixed_scene(load_fraction=0.0, **kw), clean=True, layers=True).layers[
        "bulb"].sum() > 1


def test_trim_by_stern_raises_bow() -> None:
    s = fixed_scene(load_fraction=0.0, trim_m=1.2, off_nadir_deg=30.0, sun_azimuth_deg=0.0)
    r = render(s, clean=True, layers=True)
    bow_row, stern_row = 120 - 60, 120 + 60  # 30 m forward and aft of midships at 0.5 m
    assert row_width(r.layers["band"], bow_row) > row_width(r.layers["band"], stern_row) + 0.5


def test_superstructure_shadow_longer_than_hull_shadow() -> None:
    s = fixed_scene()
    c = cue_widths(s)
    assert c.super_shadow_len_px > c.shadow_width_px


def test_sampled_geometry_within_design_ranges() -> None:
    cfg = SynthConfig()
    laden: list[float] = []
    ballast: list[float] = []
    for i in range(400):
        s = sample_scene(cfg, 5, i)
        cls = cfg.ship_classes[s.ship_class]
        assert cls.length_m[0] <= s.length_m <= cls.length_m[1]
        assert cls.beam_ratio[0] <= s.length_m / s.beam_m <= cls.beam_ratio[1] + 1e-9
        assert cls.fb_laden_m[0] <= s.freeboard_m <= cls.fb_ballast_m[1]
        assert 0.0 <= s.trim_m <= 0.015 * s.length_m
        assert 0.3 <= s.gsd_m <= 3.0 + 1e-9
        assert 15 <= s.sun_elevation_deg <= 70 and 0 <= s.off_nadir_deg <= 45
        # DESIGN.md: laden FB ~0.07-0.16 B, ballast ~0.24-0.38 B; the smallest tankers sit a
        # little above those fractions with the absolute ranges, hence loose bounds.
        if s.load_fraction >= 0.95:
            laden.append(s.freeboard_m / s.beam_m)
        if s.load_fraction <= 0.05:
            ballast.append(s.freeboard_m / s.beam_m)
    assert 0.05 <= np.median(laden) <= 0.18 and max(laden) <= 0.3
    assert 0.22 <= np.median(ballast) <= 0.4 and min(ballast) >= 0.18


def test_part_maps_group_the_layers_and_empty_ships_show_more_side_than_laden() -> None:
    from shipload.contract import PART_NAMES
    from shipload.synth.render import part_maps

    widths = {}
    for lf in (0.0, 1.0):
        r = render(fixed_scene(load_fraction=lf, off_nadir_deg=25.0), clean=True, layers=True)
        m = part_maps(r.layers)
        assert m.shape == (*r.rgb.shape[:2], len(PART_NAMES)) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() <= 1.0
        i = PART_NAMES.index("deck")
        deck = sum(r.layers[n] for n in ("deck", "forecastle", "pipe_rack", "manifold"))
        assert np.allclose(m[..., i], np.clip(deck, 0, 1))
        widths[lf] = sum(m[..., PART_NAMES.index(p)].sum() for p in ("hull_side", "band"))
        assert m[..., PART_NAMES.index("shadow")].sum() > 0
    # The visible side (topside and the antifouling band below it) is the freeboard cue: a
    # ship in ballast shows more of it.
    assert widths[0.0] > 1.5 * widths[1.0]


def test_cue_gap_is_the_rendered_shadow_change_between_laden_and_ballast() -> None:
    """The gap is what the renderer draws: the shadow of a hull raised by 0.17 beams is that
    much wider in the chip; it halves with twice the GSD and vanishes with the sun along the
    hull at nadir."""
    laden = fixed_scene(load_fraction=1.0, sun_elevation_deg=35.0, off_nadir_deg=0.0)
    ballast = fixed_scene(load_fraction=0.0, sun_elevation_deg=35.0, off_nadir_deg=0.0)
    drawn = (row_width(render(ballast, clean=True, layers=True).layers["shadow"])
             - row_width(render(laden, clean=True, layers=True).layers["shadow"]))
    per_beam = drawn / ((ballast.freeboard_m - laden.freeboard_m) / laden.beam_m)
    assert abs(cue_gap_px(laden) - LADEN_BALLAST_GAP_BEAMS * per_beam) < 1.0
    coarse = dataclasses.replace(laden, gsd_m=2 * laden.gsd_m)
    assert cue_gap_px(coarse) == pytest.approx(cue_gap_px(laden) / 2)
    hidden = dataclasses.replace(laden, sun_azimuth_deg=laden.heading_deg)
    assert cue_gap_px(hidden) == pytest.approx(0.0, abs=1e-9)
