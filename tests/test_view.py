"""The model's view: hull axis (also beside quays and jetties), geometry parsing and encoding,
equivariance under rotation, flips."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from shipload.synth import SynthConfig, recut, render, sample_scene
from shipload.synth.params import AppearanceConfig, Scene
from shipload.view import (
    GEO_DIM,
    GeometryError,
    InputSpec,
    axis_from_heading,
    encode_geometry,
    flip_geometry,
    geometry_used,
    hull_axis_deg,
    hull_extent,
    parse_geometry,
    prepare_chip,
    prepare_view,
)
from tests.conftest import fixed_scene

GEO = {"gsd_m": 0.5, "sun_elevation_deg": 30.0, "sun_azimuth_deg": 120.0, "off_nadir_deg": 20.0,
       "sensor_azimuth_deg": 250.0}


def _axis_err(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


def test_hull_axis_estimate() -> None:
    errs = []
    for h in range(0, 180, 15):
        r = render(fixed_scene(heading_deg=float(h), chip_px=160, load_fraction=0.5))
        errs.append(_axis_err(hull_axis_deg(r.rgb), axis_from_heading(h)))
    assert np.median(errs) < 3 and max(errs) < 10


def test_hull_axis_follows_the_ship_not_quays_and_jetties() -> None:
    """Rendered chips with a quay alongside or a jetty across: the estimate stays on the hull."""
    cfg = SynthConfig()
    cfg = dataclasses.replace(cfg, nuisance=dataclasses.replace(cfg.nuisance, quay=1.0),
                              appearance=AppearanceConfig(randomize=True, paint=("palette",),
                                                          water=("waves",), sensor=("clean",),
                                                          style=("shaded",)),
                              sensor=dataclasses.replace(cfg.sensor, max_chip_px=200))
    errs, n_jetty = [], 0
    for i in range(60):
        s = sample_scene(cfg, 4, i)
        assert s.look is not None
        s.look.jetty = i % 2 == 0  # every other chip: a jetty across the water too
        n_jetty += s.look.jetty
        img = render(s).rgb
        errs.append(_axis_err(prepare_view(img, InputSpec()).axis_deg,
                              axis_from_heading(s.heading_deg)))
    errs_a = np.array(errs)
    assert n_jetty == 30
    # Measured: 0-2 of 60 beyond 10 degrees (the old structure tensor alone: about 1 in 5
    # with jetties).
    assert (errs_a > 10).mean() <= 0.1 and np.median(errs_a) < 3


def test_view_2_follows_a_hull_painted_in_bands_across_it() -> None:
    """The held-out ``two_tone`` paint runs in bands across the hull, and their edges outvote
    the hull's two sides in version 1's count of edge energy; version 2's coherent-edge score
    and the blob's long axis keep the estimate on the hull."""
    cfg = SynthConfig()
    cfg = dataclasses.replace(cfg, appearance=AppearanceConfig(
        randomize=True, paint=("two_tone",), water=("waves",), sensor=("clean",),
        style=("shaded",)), sensor=dataclasses.replace(cfg.sensor, max_chip_px=200))
    errs: dict[int, list[float]] = {1: [], 2: []}
    for i in range(60):
        s = sample_scene(cfg, 4, i)
        img = render(s).rgb
        for v in (1, 2):
            errs[v].append(_axis_err(prepare_view(img, InputSpec(view_version=v)).axis_deg,
                                     axis_from_heading(s.heading_deg)))
    e1, e2 = np.array(errs[1]), np.array(errs[2])
    # Measured: version 2 5 of 60 beyond 10 degrees, median 1.8; version 1 14 of 60, median 3.8.
    assert (e2 > 10).mean() <= 0.12 and np.median(e2) < 2.5
    assert (e2 > 10).sum() <= (e1 > 10).sum() - 5


def test_view_2_measures_a_ship_under_way_shorter_than_its_wake() -> None:
    """Loose cuts (2x, 10 % off centre) of ships under way: version 1's ship search takes the
    wake joined to the stern for hull; version 2's length ends where the hull's sides do."""
    cfg = _framing_cfg()
    cfg = dataclasses.replace(cfg, nuisance=dataclasses.replace(cfg.nuisance, wake=1.0))
    ratios: dict[int, list[float]] = {1: [], 2: []}
    for i in range(30):
        s = recut(sample_scene(cfg, 8, i), 2.0, 0.1)
        img = render(s).rgb
        sq = cv2.resize(img, (320, 320), interpolation=cv2.INTER_AREA)
        true_len = s.length_m / s.gsd_m * 320 / img.shape[0]
        for v in (1, 2):
            ext = hull_extent(sq, axis_from_heading(s.heading_deg), v)
            ratios[v].append(ext[2] / true_len if ext else 2.0)
    r1, r2 = np.array(ratios[1]), np.array(ratios[2])
    # Measured: version 1 median 1.60 (p10 1.32); version 2 1.21 (p10 0.95), 1 of 30 under 0.7.
    assert np.median(r2) < np.median(r1) - 0.1, (np.round(r1, 2), np.round(r2, 2))
    assert 0.8 < np.median(r2) < 1.4 and (r2 < 0.7).mean() <= 0.1, np.round(r2, 2)


def test_view_version_is_checked_recorded_and_defaults_to_1() -> None:
    from shipload.view import describe

    assert InputSpec().view_version == 1 and InputSpec.from_mapping({}).view_version == 1
    spec = InputSpec.from_mapping({"view_version": "2", "frame_scale": "1.1"})
    assert spec.view_version == 2 and describe(spec)["view_version"] == 2
    with pytest.raises(ValueError, match="view_version"):
        InputSpec(view_version=3)
    # Version 1 is the default path, bit for bit: the estimate called without a version.
    img = render(fixed_scene(heading_deg=20.0, chip_px=160)).rgb
    assert hull_axis_deg(img) == hull_axis_deg(img, 1)


def test_prepare_chip_aligns_hull_horizontally() -> None:
    spec = InputSpec(64, 192)
    r = render(fixed_scene(heading_deg=37.0, chip_px=200))
    view = prepare_chip(r.rgb, spec)
    assert view.shape == (64, 192, 3)
    water = np.median(view[0], axis=0)
    mid = np.abs(view[28:36] - water).sum(axis=2).max(axis=0) > 0.15
    assert mid.mean() > 0.4


def test_given_heading_replaces_the_estimate() -> None:
    r = render(fixed_scene(heading_deg=37.0, chip_px=200))
    v = prepare_view(r.rgb, InputSpec(), heading_deg=37.0 + 180.0)
    assert v.axis_source == "heading" and v.axis_deg == pytest.approx(axis_from_heading(37.0))
    assert prepare_view(r.rgb, InputSpec()).axis_source == "image"


def test_parse_geometry_ranges_and_types() -> None:
    assert parse_geometry({"gsd_m": "0.5", "sun_elevation_deg": "", "other": "x"}) == {
        "gsd_m": 0.5}
    for bad, field in (({"gsd_m": 0}, "gsd_m"), ({"gsd_m": 10.5}, "gsd_m"),
                       ({"sun_elevation_deg": 91}, "sun_elevation_deg"),
                       ({"sun_elevation_deg": -1}, "sun_elevation_deg"),
                       ({"off_nadir_deg": 61}, "off_nadir_deg"),
                       ({"sun_azimuth_deg": "north"}, "sun_azimuth_deg"),
                       ({"sensor_azimuth_deg": "inf"}, "sensor_azimuth_deg")):
        with pytest.raises(GeometryError, match=field):
            parse_geometry(bad, "manifest")


def test_encoding_masks_missing_fields() -> None:
    g = encode_geometry({}, 0.0, 200, InputSpec())
    assert g.shape == (GEO_DIM,) and not g.any() and geometry_used(g) == "none"
    g = encode_geometry({"sun_elevation_deg": 30.0}, 0.0, 200, InputSpec())
    assert geometry_used(g) == "sun_elevation_deg"
    assert g[4] == pytest.approx(1 / math.tan(math.radians(30)) / 2)
    assert g[14] == 0.0  # the shadow term needs gsd and the sun's azimuth too
    full = encode_geometry(GEO, 0.0, 200, InputSpec())
    assert geometry_used(full).count("+") == 4 and full[14] != 0 and full[15] != 0


def test_azimuths_are_taken_in_the_views_frame() -> None:
    """A sun due east of a hull lying east-west is along the view's +x; north of it, across."""
    spec = InputSpec()
    along = encode_geometry({"sun_azimuth_deg": 90.0}, 0.0, 200, spec)
    np.testing.assert_allclose(along[7:9], [1.0, 0.0], atol=1e-6)
    across = encode_geometry({"sun_azimuth_deg": 0.0}, 0.0, 200, spec)
    np.testing.assert_allclose(across[7:9], [0.0, -1.0], atol=1e-6)  # up in the view
    # A hull lying north-south (axis 90 deg from +x toward +y): the east sun is across it.
    ns = encode_geometry({"sun_azimuth_deg": 90.0}, 90.0, 200, spec)
    np.testing.assert_allclose(ns[7:9], [0.0, -1.0], atol=1e-6)


def _same_up_to_half_turn(v0: np.ndarray, g0: np.ndarray, v1: np.ndarray,
                          g1: np.ndarray) -> tuple[float, float]:
    """Pixel and geometry differences, allowing the view's 180-degree axis ambiguity."""
    best = (math.inf, math.inf)
    for turned in (False, True):
        vv = v1[::-1, ::-1] if turned else v1
        gg = flip_geometry(g1, turned, turned)
        d = (float(np.abs(vv - v0).mean()), float(np.abs(gg - g0).max()))
        best = min(best, d)
    return best


@pytest.mark.parametrize("heading", [None, 30.0])
def test_rotating_chip_and_azimuths_by_90_leaves_the_view_unchanged(
        heading: float | None) -> None:
    """Equivariance: the chip turned 90 degrees clockwise with its azimuths (and heading) turned
    alike gives the same view and the same encoded geometry (up to the 180-degree axis
    ambiguity, which turns pixels and directions together)."""
    spec = InputSpec()
    img = render(fixed_scene(heading_deg=30.0, chip_px=240, load_fraction=0.2,
                             off_nadir_deg=25.0)).rgb
    v0 = prepare_view(img, spec, GEO, heading)
    rot = np.ascontiguousarray(np.rot90(img, k=-1))  # clockwise
    geo_r = dict(GEO, sun_azimuth_deg=GEO["sun_azimuth_deg"] + 90,
                 sensor_azimuth_deg=GEO["sensor_azimuth_deg"] + 90)
    v1 = prepare_view(rot, spec, geo_r, None if heading is None else heading + 90)
    d_img, d_geo = _same_up_to_half_turn(v0.image, v0.geometry, v1.image, v1.geometry)
    assert d_geo < 0.02  # encoded directions agree (tolerance: the axis estimate's error)
    assert d_img < 0.02  # mean absolute pixel difference (interpolation differs slightly)


def test_flips_reverse_the_matching_components() -> None:
    g = encode_geometry(GEO, 10.0, 200, InputSpec())
    h = flip_geometry(g, True, False)
    assert h[7] == -g[7] and h[8] == g[8] and h[12] == -g[12]
    v = flip_geometry(g, False, True)
    assert v[8] == -g[8] and v[14] == -g[14] and v[7] == g[7]
    np.testing.assert_array_equal(flip_geometry(h, True, False), g)


@pytest.mark.parametrize("policy", ["hull_aligned", "letterbox", "stretch"])
@pytest.mark.parametrize("chip_px,gsd_m", [(200, 0.5), (40, 2.5)])  # shrunk, enlarged
def test_view_maps_carry_maps_exactly_as_the_view_carries_pixels(policy: str, chip_px: int,
                                                                 gsd_m: float) -> None:
    from shipload.synth.render import part_maps
    from shipload.view import view_maps

    r = render(fixed_scene(heading_deg=35.0, chip_px=chip_px, gsd_m=gsd_m), clean=True,
               layers=True)
    maps = part_maps(r.layers)  # (H, W, 5): shadow, side, band, deck, superstructure
    maps[:2] = maps[-2:] = maps[:, :2] = maps[:, -2:] = 0  # a black border: the view's fill
    spec = InputSpec(48, 96, policy)  # type: ignore[arg-type]
    v = prepare_view(np.ascontiguousarray(maps[..., 1:4]), spec, heading_deg=35.0)
    got = view_maps(maps, spec, v.axis_deg)
    assert got.shape == (48, 96, 5)
    np.testing.assert_allclose(got[..., 1:4], v.image, atol=1e-5)
    if policy == "hull_aligned":  # the deck lies along the view's rows, centred
        rows = got[..., 3].sum(axis=1)
        assert abs(float((rows * np.arange(48)).sum() / rows.sum()) - 23.5) < 3


def _framing_cfg(quay: float = 0.0) -> SynthConfig:
    cfg = SynthConfig()
    return dataclasses.replace(cfg, nuisance=dataclasses.replace(cfg.nuisance, quay=quay),
                               sensor=dataclasses.replace(cfg.sensor, max_chip_px=400))


def test_hull_extent_measures_the_ship_at_either_framing() -> None:
    """The length of rendered ships, cut tight or loose, and their centre.

    Measured on these 24 ships: at 1.1x, 3 found none (the whole chip is kept then) and the
    rest read 0.75-1.1 of the length; at 2x, 1 none, 17 read 1.0-1.4 (shadow and smoothing
    add about 15 %), and 6 read 1.6-1.8, a wake or a neighbour joined to the hull. Misses are
    long, the safe side: a longer window keeps more of the chip, it never cuts the hull.
    """
    cfg = _framing_cfg()
    for scale, offset in ((1.1, 0.0), (2.0, 0.1)):
        ratios, centre_err = [], []
        for i in range(24):
            s = recut(sample_scene(cfg, 8, i), scale, offset)
            img = render(s).rgb
            sq = cv2.resize(img, (320, 320), interpolation=cv2.INTER_AREA)
            ext = hull_extent(sq, axis_from_heading(s.heading_deg))
            if ext is None:
                continue
            k = 320 / img.shape[0]  # big pixels per chip pixel
            true_len = s.length_m / s.gsd_m * k
            ratios.append(ext[2] / true_len)
            cx = (img.shape[0] / 2 + s.centre_offset_px[0]) * k
            cy = (img.shape[0] / 2 + s.centre_offset_px[1]) * k
            centre_err.append(math.hypot(ext[0] - cx, ext[1] - cy) / true_len)
        r = np.array(ratios)
        assert ((r > 0.8) & (r < 1.4)).sum() >= 16, (scale, np.round(r, 2))
        assert (r <= 0.8).sum() <= 2, (scale, np.round(r, 2))
        # A wake joined to the stern moves the centre too (about 0.15 of a length, at 2x).
        assert np.median(centre_err) < (0.05 if scale < 1.5 else 0.2), (scale, centre_err)


def test_no_ship_keeps_the_whole_chip() -> None:
    """Open water (nothing stands out): no window, the view is the whole chip as before."""
    rng = np.random.default_rng(0)
    water = (np.full((200, 200, 3), (0.1, 0.2, 0.25)) + rng.normal(0, 0.01, (200, 200, 3)))
    water = water.astype(np.float32)
    framed = prepare_view(water, InputSpec(frame_scale=1.1), heading_deg=0.0)
    assert framed.window is None
    np.testing.assert_array_equal(framed.image,
                                  prepare_view(water, InputSpec(), heading_deg=0.0).image)


@pytest.mark.parametrize("quay", [0.0, 1.0])
def test_framed_view_shows_the_hull_alike_tight_or_loose(quay: float) -> None:
    """The deck's span in the view, loose cut (2x, 10 % off centre) over tight cut (1.1x).

    Without ``frame_scale`` it is 1.1 / 2 = 0.55. With it, on open water, the loose cut is
    framed around the ship (measured: median 0.8; a wake joined to the hull keeps the whole
    chip). With a quay alongside in every chip the hull joins the quay and measures long, so
    the whole chip is kept: no gain, and no harm (measured: 0.55 alike).
    """
    from shipload.synth.render import part_maps
    from shipload.view import view_maps

    cfg = _framing_cfg(quay)
    framed, plain = InputSpec(frame_scale=1.1), InputSpec()

    def deck_span(s: Scene, spec: InputSpec) -> float:
        r = render(s, layers=True)
        v = prepare_view(r.rgb, spec, heading_deg=s.heading_deg)
        deck = view_maps(part_maps(r.layers), spec, v.axis_deg, v.window)[..., 3]
        cols = np.flatnonzero(deck.max(axis=0) > 0.5)
        return float(cols.max() - cols.min() + 1) / spec.width if cols.size else 0.0

    ratio_framed, ratio_plain = [], []
    for i in range(12):
        s = sample_scene(cfg, 9, i)
        tight, loose = recut(s, 1.1, 0.0), recut(s, 2.0, 0.1)
        ratio_framed.append(deck_span(loose, framed) / max(deck_span(tight, framed), 1e-6))
        ratio_plain.append(deck_span(loose, plain) / max(deck_span(tight, plain), 1e-6))
    assert 0.5 < np.median(ratio_plain) < 0.6
    if quay:
        assert np.median(ratio_framed) >= np.median(ratio_plain) - 0.02
    else:
        assert np.median(ratio_framed) > 0.75, ratio_framed


def test_view_maps_follow_the_window() -> None:
    """Maps carried through a framed view land exactly where the view puts the pixels."""
    from shipload.synth.render import part_maps
    from shipload.view import view_maps

    s = recut(dataclasses.replace(fixed_scene(heading_deg=35.0), gsd_m=0.5), 2.0, 0.1)
    r = render(s, layers=True)
    spec = InputSpec(48, 96, frame_scale=1.1)
    v = prepare_view(r.rgb, spec, heading_deg=35.0)
    assert v.window is not None and v.window[2] < 0.8 * r.rgb.shape[0]
    maps = part_maps(r.layers)
    got = view_maps(np.concatenate([maps, r.rgb], axis=2), spec, v.axis_deg, v.window)
    # The image carried as maps lands where the view put it (this window lies inside the chip,
    # so the maps' zero fill and the view's border colour never show).
    np.testing.assert_allclose(got[..., 5:], v.image, atol=1e-5)


def test_frame_scale_is_checked_and_recorded() -> None:
    with pytest.raises(ValueError, match="frame_scale"):
        InputSpec(frame_scale=0.5)
    spec = InputSpec.from_mapping({"frame_scale": "1.2"})
    assert spec.frame_scale == 1.2 and InputSpec.from_mapping({}).frame_scale == 0.0
    from shipload.view import describe

    assert describe(spec)["frame_scale"] == 1.2


def test_orientation_histogram_bins_as_numpy_does_edges_included() -> None:
    from shipload.view import _histogram_36

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = (rng.random(4000) * 180).astype(np.float32)
        a[:40] = rng.integers(0, 36, 40).astype(np.float32) * 5  # on a bin edge...
        a[40:80] = np.nextafter(a[:40], np.float32(-1))  # ...and just below one
        a = np.clip(a, 0, np.nextafter(np.float32(180), np.float32(0)))
        w = rng.random(4000).astype(np.float32)
        ref = np.histogram(a, bins=36, range=(0, 180), weights=w)[0]
        out = _histogram_36(a, w)
        assert out.dtype == ref.dtype and np.array_equal(out, ref)
