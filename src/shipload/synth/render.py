"""Compose one chip: scene background, shadows, the tanker (painter's order), then the sensor."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from shipload.contract import PART_NAMES
from shipload.synth import appearance as ap
from shipload.synth import scene as sc
from shipload.synth.geometry import CueWidths, Projector, ShipShapes, cue_widths, ship_shapes
from shipload.synth.params import DECK_PAINTS, HULL_PAINTS, WATER_COLOURS, Scene
from shipload.synth.scene import _fill
from shipload.synth.sensor import downsample, expose

SHADOW_FACTOR = 0.45  # share of light left in a shadow on water: skylight only
AMBIENT = 0.35
FUNNEL_COLOURS = ((0.08, 0.08, 0.08), (0.55, 0.12, 0.1), (0.15, 0.25, 0.5), (0.75, 0.62, 0.2))


@dataclass
class Rendered:
    """A rendered chip.

    Attributes:
        rgb: (H, W, 3) float32 in [0, 1], linear reflectance-like.
        nir: (H, W) float32 near-infrared band, or None.
        cues: analytic cue widths in output pixels (what a perfect reader could measure).
        layers: with ``layers=True``, the visible coverage (H, W) in [0, 1] of each part
            ("shadow", "hull_side", "band", "deck", ...) after occlusion; else empty.
    """

    rgb: np.ndarray
    nir: np.ndarray | None
    cues: CueWidths
    layers: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


PARTS = ("bulb", "rudder", "band", "hull_side", "deck", "forecastle", "pipe_rack", "manifold",
         "super_side", "super_roof", "funnel_side", "funnel_roof")


# What the part-segmentation task learns (``part_maps``): the cue parts, each a group of the
# renderer's layers. Shadow, side and band widths across the hull are the freeboard cue.
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "shadow": ("shadow",),
    "hull_side": ("hull_side",),
    "band": ("band", "bulb", "rudder"),
    "deck": ("deck", "forecastle", "pipe_rack", "manifold"),
    "superstructure": ("super_side", "super_roof", "funnel_side", "funnel_roof"),
}


assert tuple(PART_GROUPS) == PART_NAMES


def part_maps(layers: dict[str, np.ndarray]) -> np.ndarray:
    """Group a render's ``layers`` into the part-segmentation targets.

    Returns:
        (H, W, len(PART_GROUPS)) float32 visible coverage in [0, 1], in ``PART_GROUPS`` order.
    """
    maps = [np.clip(sum(layers[n] for n in names), 0, 1) for names in PART_GROUPS.values()]
    return np.stack(maps, axis=2).astype(np.float32)


def _supersample(chip_px: int, requested: int) -> int:
    # Large chips are already fine relative to the cue; cap the canvas near 800 px for speed.
    return max(1, min(requested, max(2, 800 // chip_px)))


def _paint_ship(s: Scene, shapes: ShipShapes, rgb: np.ndarray, cov: np.ndarray, k: int,
                centre: float, rng: np.random.Generator, ids: np.ndarray | None = None) -> None:
    sun = sc.azimuth_vector(s.sun_azimuth_deg)
    el = math.radians(s.sun_elevation_deg)
    deck_light = AMBIENT + 0.75 * math.sin(el)
    side_light = AMBIENT + 0.9 * math.cos(el) * max(0.0, float(np.dot(shapes.side_normal, sun)))
    lk = s.look
    hull = np.array(lk.hull_rgb if lk and lk.hull_rgb else HULL_PAINTS[s.hull_paint])
    deck = np.array(lk.deck_rgb if lk and lk.deck_rgb else DECK_PAINTS[s.deck_paint])
    af = np.array(s.antifouling_rgb) * (lk.antifouling_gain if lk else 1.0)
    white = np.array(lk.super_rgb if lk and lk.super_rgb else (0.82, 0.82, 0.8))
    if lk is not None and lk.flat_light:  # flat shading: every face lit alike
        deck_light = side_light = AMBIENT + 0.5
    funnel = np.array(FUNNEL_COLOURS[int(rng.integers(len(FUNNEL_COLOURS)))])

    def part(name: str, poly: np.ndarray | None, colour: np.ndarray) -> None:
        if poly is None or len(poly) < 3:
            return
        _fill(rgb, poly + centre, tuple(float(c) for c in colour), k)
        _fill(cov, poly + centre, 1.0, k)
        if ids is not None:  # which part is on top, for tests of the geometry
            _fill(ids, poly + centre, float(PARTS.index(name) + 1), k)

    # Painter's order, bottom to top: parts at the waterline, band, topside, deck, superstructure.
    part("bulb", shapes.bulb, af * 0.85 * deck_light)
    part("rudder", shapes.rudder, af * 0.7 * deck_light)
    part("band", shapes.band, af * side_light)
    part("hull_side", shapes.hull_side, hull * side_light)
    part("deck", shapes.deck, deck * deck_light)
    part("forecastle", shapes.forecastle, deck * 1.12 * deck_light)
    part("pipe_rack", shapes.pipe_rack, np.array([0.55, 0.55, 0.52]) * deck_light)
    part("manifold", shapes.manifold, np.array([0.5, 0.5, 0.48]) * deck_light)
    for side, roof, shade in shapes.deck_items:  # the layout's boxes: deck equipment
        c = (np.array(lk.item_rgb[int(-shade) - 1]) if lk is not None and shade < 0
             else np.full(3, shade))
        part("manifold", side, c * 0.8 * side_light)
        part("manifold", roof, c * deck_light)
    part("super_side", shapes.super_side, white * side_light)
    part("super_roof", shapes.super_roof, white * deck_light)
    part("funnel_side", shapes.funnel_side, funnel * side_light)
    part("funnel_roof", shapes.funnel_roof, funnel * deck_light)


def _neighbour(s: Scene, rng: np.random.Generator) -> Scene:
    """Another vessel moored alongside or anchored nearby, partly in frame."""
    length = s.length_m * rng.uniform(0.6, 1.3)
    beam = length / rng.uniform(5.5, 7.2)
    side = 1 if rng.random() < 0.5 else -1
    u = sc.azimuth_vector(s.heading_deg)
    v = np.array([-u[1], u[0]])
    off = side * v * (s.beam_m / 2 + beam / 2 + s.beam_m * rng.uniform(0.05, 1.5)) / s.gsd_m
    off = off + u * rng.uniform(-0.4, 0.4) * s.length_m / s.gsd_m
    frac = float(rng.uniform(0, 1))
    fb_l = s.fb_laden_m * length / s.length_m
    fb_b = s.fb_ballast_m * length / s.length_m
    return dataclasses.replace(
        s, length_m=length, beam_m=beam, load_fraction=frac, fb_laden_m=fb_l, fb_ballast_m=fb_b,
        trim_m=(1 - frac) * 0.01 * length, heading_deg=s.heading_deg + rng.choice([0.0, 180.0])
        + rng.normal(0, 4), centre_offset_px=(s.centre_offset_px[0] + off[0],
                                               s.centre_offset_px[1] + off[1]),
        deck_paint=str(rng.choice(list(DECK_PAINTS))),
        hull_paint=str(rng.choice(list(HULL_PAINTS))),
    )


def render(s: Scene, supersample: int = 3, nir: bool = False, clean: bool = False,
           layers: bool = False, background: np.ndarray | None = None) -> Rendered:
    """Render scene ``s`` to a float chip.

    Args:
        s: the scene (every random choice is in it; textures are seeded from ``s.seed``).
        supersample: draw this much finer than the output, then area-average.
        nir: also return a near-infrared band.
        clean: flat water, no nuisances, no blur or noise (for tests of the geometry).
        layers: also return each part's visible coverage (slower; for tests).
        background: (H, W, 3) float32 water to draw on instead of the scene's own (the scene
            mode draws each ship on its pass's water); no quay or wake is added.

    Returns:
        The rendered chip and its analytic cue widths.
    """
    rng = np.random.default_rng(s.seed ^ 0x5EED)
    lk = None if clean else s.look
    # The look draws from its own stream, so the base renderer's chips keep their bytes.
    lrng = np.random.default_rng([s.seed, 0x100C]) if lk is not None else rng
    h = s.chip_px
    k = _supersample(h, supersample)
    proj = Projector.for_scene(s)
    if background is not None:
        bg = background.astype(np.float32, copy=True)
    elif clean:
        bg = np.broadcast_to(np.array(WATER_COLOURS[s.water], np.float32), (h, h, 3)).copy()
    else:
        if lk is not None and lk.families.get("water", "waves") != "waves":
            bg = ap.water(lk, h, s.gsd_m, np.array(WATER_COLOURS[s.water]), lrng)
        else:
            bg = sc.water(s, rng)
        if lk is not None and lk.jetty:
            ap.draw_jetty(bg, s.heading_deg, s.length_m / s.gsd_m, s.beam_m / s.gsd_m, lrng)
        if s.quay:
            sc.draw_quay(bg, s, proj, rng)
        if s.under_way:
            sc.draw_wake(bg, s, proj, rng)

    ships = [s]
    if s.neighbour and not clean:
        ships.insert(0, _neighbour(s, rng))
    shadow = np.zeros((h * k, h * k), np.float32)
    rgb = np.zeros((h * k, h * k, 3), np.float32)
    cov = np.zeros((h * k, h * k), np.float32)
    all_shapes = [(ship, ship_shapes(ship, Projector.for_scene(ship))) for ship in ships]
    for _, shapes in all_shapes:  # shadows fall on water and quay only
        _fill(shadow, shapes.hull_shadow + h / 2, 1.0, k)
        _fill(shadow, shapes.super_shadow + h / 2, 1.0, k)
    ids = np.zeros((h * k, h * k), np.float32) if layers else None
    for ship, shapes in all_shapes:
        _paint_ship(ship, shapes, rgb, cov, k, h / 2, rng, ids)
    shadow_a = downsample(shadow, h)
    cov_a = downsample(cov, h)
    ship_rgb = downsample(rgb, h)  # premultiplied by coverage: drawn on black

    factor = SHADOW_FACTOR
    if lk is not None:
        factor = lk.shadow_factor
        if lk.penumbra_px > 0:
            shadow_a = cv2.GaussianBlur(shadow_a, (0, 0), lk.penumbra_px)
        if lk.second_rgb is not None:  # a second paint: stripes (two_tone) or patches
            mask = (ap.patch_mask(h, lrng) if lk.second_pattern == "patches"
                    else ap.second_paint_mask(h, lrng))
            ship_rgb = ship_rgb * (1 - mask) + mask * cov_a[..., None] * np.array(
                lk.second_rgb, np.float32) * (ship_rgb.mean(2, keepdims=True) + 0.2)
    shade = 1.0 - shadow_a * (1.0 - factor)
    out = bg * shade[..., None] * (1.0 - cov_a[..., None]) + ship_rgb
    if lk is not None:
        out = out * np.array(lk.ambient_rgb, np.float32)
        if lk.cloud_shadow > 0:
            a = np.clip(sc.smooth_noise(lrng, h, h / 5) - 0.3, 0, 1) * lk.cloud_shadow
            out = out * (1 - a[..., None])
        if lk.texture > 0:
            out = out * ap.texture(lk, h, lrng)
    nir_band = None
    if nir:
        # Water absorbs NIR strongly; painted steel reflects it about as much as red light.
        grey = out @ np.array([0.6, 0.3, 0.1], np.float32)
        nir_band = grey * (0.25 + 0.75 * cov_a)
    if not clean:
        out = sc.veil(out, s, rng)
        out = expose(out, s, rng)
        if lk is not None:
            out = ap.tone(out, lk, lrng)
        if nir_band is not None:
            nir_band = expose(np.repeat(nir_band[..., None], 3, 2), s, rng)[..., 0]
    maps: dict[str, np.ndarray] = {}
    if ids is not None:
        maps["shadow"] = downsample(((shadow > 0) & (ids == 0)).astype(np.float32), h)
        for i, name in enumerate(PARTS, 1):
            maps[name] = downsample((ids == i).astype(np.float32), h)
    return Rendered(np.clip(out, 0, 1).astype(np.float32), nir_band, cue_widths(s), maps)
