"""3-D tanker geometry projected into the image: hull, freeboard, layover and shadows.

Frames: the ship frame has x toward the bow, y to starboard, z up (metres, z=0 the waterline).
The image frame has x to the east (right) and y to the south (down), in output pixels relative
to the chip centre. Azimuths are clockwise from north.

A point at height z appears displaced by z*tan(off_nadir) away from the sensor (layover) and
casts its shadow z/tan(sun_elevation) away from the sun.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shipload.synth.params import Scene

Poly = np.ndarray  # (N, 2) float64, image pixels


def azimuth_vector(az_deg: float) -> np.ndarray:
    """Unit vector in image coordinates pointing toward azimuth ``az_deg``. Shape (2,)."""
    a = math.radians(az_deg)
    return np.array([math.sin(a), -math.cos(a)])


def plan_outline(
    length: float, beam: float, bow_cut: float = 0.0, stern_cut: float = 0.0, n: int = 14
) -> np.ndarray:
    """Hull plan-form in the ship frame: parallel midbody, tapered bow, transom stern.

    Args:
        length: overall length (m).
        beam: beam (m).
        bow_cut: metres by which the stem is set back (waterline lies inside the raked deck).
        stern_cut: metres by which the stern end is set forward (counter overhang).
        n: points per curved end.

    Returns:
        (M, 2) array of (x, y) vertices, convex, counter-clockwise.
    """
    half = beam / 2
    bow_len = 0.17 * length
    stern_len = 0.10 * length
    x_bow = length / 2 - bow_cut
    x_stern = -length / 2 + stern_cut
    xb0 = length / 2 - bow_len
    xs0 = -length / 2 + stern_len
    t = np.linspace(0.0, 1.0, n)
    # Bow: blunt tanker entrance, pointed stem. Half-width falls from B/2 to 0.
    bx = xb0 + t * (x_bow - xb0)
    by = half * np.clip(1 - t**2.2, 0, None) ** 0.55
    # Stern: rounded run ending in a transom 0.7 B wide.
    sx = xs0 - t * (xs0 - x_stern)
    sy = half * (1 - 0.3 * t**2)
    starboard = np.concatenate([np.stack([sx[::-1], sy[::-1]], 1), np.stack([bx, by], 1)])
    port = starboard[::-1] * np.array([1.0, -1.0])
    return np.concatenate([starboard, port[1:-1]])


@dataclass
class Projector:
    """Maps ship-frame points at a height to image pixels for one scene."""

    heading_deg: float
    gsd_m: float
    layover: np.ndarray  # (2,) px per metre of height, away from the sensor
    shadow: np.ndarray  # (2,) px per metre of height, away from the sun
    centre: np.ndarray  # (2,) px offset of the ship centre from the chip centre

    @classmethod
    def for_scene(cls, s: Scene) -> Projector:
        """Build the projector of scene ``s``."""
        lay = -math.tan(math.radians(s.off_nadir_deg)) * azimuth_vector(s.sensor_azimuth_deg)
        sh = -azimuth_vector(s.sun_azimuth_deg) / math.tan(math.radians(s.sun_elevation_deg))
        centre = np.array(s.centre_offset_px)
        return cls(s.heading_deg, s.gsd_m, lay / s.gsd_m, sh / s.gsd_m, centre)

    def ground(self, xy: np.ndarray) -> np.ndarray:
        """Ship-frame (N, 2) metres at z=0 → image (N, 2) pixels."""
        u = azimuth_vector(self.heading_deg)  # bow direction
        v = np.array([-u[1], u[0]])  # starboard (90 deg clockwise of the bow)
        return self.centre + (xy[:, :1] * u + xy[:, 1:2] * v) / self.gsd_m

    def seen(self, xy: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """Where the sensor sees points at height z (layover applied)."""
        return self.ground(xy) + np.asarray(z, dtype=float).reshape(-1, 1) * self.layover

    def cast(self, xy: np.ndarray, z: np.ndarray | float) -> np.ndarray:
        """Where points at height z cast their shadow on the water."""
        return self.ground(xy) + np.asarray(z, dtype=float).reshape(-1, 1) * self.shadow


def convex_hull(*polys: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of the union of point sets. Returns (M, 2)."""
    pts = np.unique(np.concatenate(polys).round(6), axis=0)
    if len(pts) < 3:
        return pts

    def half(points: np.ndarray) -> list[np.ndarray]:
        h: list[np.ndarray] = []
        for p in points:
            while len(h) >= 2:
                a, b = h[-2], h[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0:
                    break
                h.pop()
            h.append(p)
        return h

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


@dataclass
class ShipShapes:
    """All image-space polygons of one tanker, in painter's order groups."""

    hull_shadow: Poly
    super_shadow: Poly
    hull_side: Poly  # topside: band top (or waterline) to deck edge, as seen
    band: Poly | None  # exposed antifouling, waterline to the laden waterline, as seen
    deck: Poly
    forecastle: Poly
    super_side: Poly
    super_roof: Poly
    funnel_side: Poly
    funnel_roof: Poly
    pipe_rack: Poly
    manifold: Poly | None  # none on some ``cluttered`` decks
    bulb: Poly | None
    rudder: Poly | None
    side_normal: np.ndarray  # (2,) image-plane outward normal of the visible hull side
    waterline: Poly
    # The layout's further deck boxes (``appearance.DeckItem``): (side, roof, grey or colour).
    deck_items: tuple[tuple[Poly, Poly, float], ...] = ()


def freeboard_along(s: Scene, x: np.ndarray) -> np.ndarray:
    """Freeboard (m) at ship-frame x: trim by the stern lowers the stern, raises the bow."""
    return s.freeboard_m + s.trim_m * x / s.length_m


def ship_shapes(s: Scene, proj: Projector) -> ShipShapes:
    """Project every part of the tanker of scene ``s`` into the image."""
    L, B = s.length_m, s.beam_m
    deck_xy = plan_outline(L, B)
    fb = freeboard_along(s, deck_xy[:, 0])
    # The raked stem and the counter stern overhang the waterline: higher freeboard, more setback.
    wl_xy = plan_outline(L, B * 0.985, bow_cut=0.6 * s.freeboard_m, stern_cut=0.3 * s.freeboard_m)
    wl = proj.ground(wl_xy)
    deck = proj.seen(deck_xy, fb)
    hull_shadow = convex_hull(wl, proj.cast(deck_xy, fb))
    # Antifouling shows between the waterline and the laden (design) waterline: FB - FB_laden.
    # Painted first; the topside (band top to deck edge) is painted over it, so each convex
    # hull only shows where it should.
    band_h = np.clip(freeboard_along(s, wl_xy[:, 0]) - s.fb_laden_m, 0.0, None)
    band = None
    hull_side = convex_hull(wl, deck)
    if band_h.max() > 1e-3:
        band_top = proj.seen(wl_xy, band_h)
        band = convex_hull(wl, band_top)
        hull_side = convex_hull(band_top, deck)

    # Forecastle: the last 9 % of the deck, one deck higher (2.5 m).
    fc_xy = deck_xy[deck_xy[:, 0] > 0.41 * L]
    fc_xy = np.concatenate([fc_xy, [[0.41 * L, B / 2], [0.41 * L, -B / 2]]])
    forecastle = convex_hull(proj.seen(fc_xy, freeboard_along(s, fc_xy[:, 0]) + 2.5))

    # Accommodation block at the stern, white, with the funnel just aft of its top.
    x0 = -L / 2 + 0.04 * L
    x1 = x0 + s.superstructure_len_frac * L
    lk = s.look  # the deck's layout (``appearance.FAMILIES["layout"]``): never the hull's
    w = (lk.super_half_width if lk is not None else 0.42) * B
    box = np.array([[x0, -w], [x1, -w], [x1, w], [x0, w]])
    z0 = float(freeboard_along(s, np.array([(x0 + x1) / 2]))[0])
    z1 = z0 + s.superstructure_height_m
    super_side = convex_hull(proj.seen(box, z0), proj.seen(box, z1))
    super_roof = proj.seen(box, z1)
    super_shadow = convex_hull(proj.cast(box, 0.0), proj.cast(box, z1))
    fw = 0.1 * B
    fx0 = x0 + 0.1 * (x1 - x0)
    fbox = np.array([[fx0, -fw], [fx0 + 2 * fw, -fw], [fx0 + 2 * fw, fw], [fx0, fw]])
    z2 = z1 + s.funnel_height_m
    funnel_side = convex_hull(proj.seen(fbox, z1), proj.seen(fbox, z2))
    funnel_roof = proj.seen(fbox, z2)
    super_shadow = convex_hull(super_shadow, proj.cast(fbox, z2))

    # Deck details: a pipe rack (on the centreline unless the layout moves it) and transverse
    # manifolds (one midships on the standard deck), 1 m above the deck.
    ry = (lk.rack_offset if lk is not None else 0.0) * B
    pr = np.array([[x1, ry - 0.6], [0.40 * L, ry - 0.6], [0.40 * L, ry + 0.6], [x1, ry + 0.6]])
    pipe_rack = proj.seen(pr, freeboard_along(s, pr[:, 0]) + 1.0)
    mfs = [proj.seen(np.array([[x - 1.2, -0.4 * B], [x + 1.2, -0.4 * B], [x + 1.2, 0.4 * B],
                               [x - 1.2, 0.4 * B]]), float(freeboard_along(s, np.array([x]))[0])
                     + 1.0) for x in (np.array(lk.manifolds if lk is not None else (0.0,)) * L)]
    manifold = mfs[0] if mfs else None
    # Further manifolds in the manifold's grey (0.5), then the layout's boxes.
    items = [(m, m, 0.5) for m in mfs[1:]] + _deck_items(s, proj)

    # Bulbous bow and rudder/propeller: tops break the surface only in ballast.
    span = s.fb_ballast_m - s.fb_laden_m
    fb_bow = float(freeboard_along(s, np.array([L / 2]))[0])
    fb_stern = float(freeboard_along(s, np.array([-L / 2]))[0])
    bulb = rudder = None
    if s.bulb_depth_frac >= 0:
        top = (fb_bow - s.fb_laden_m) - s.bulb_depth_frac * span  # bulb top above water (m)
        if top > 0:
            r = min(top / max(span, 1e-6), 1.0)  # exposure grows as the bow rises
            a = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            # The bulb's top reaches a little ahead of the stem line; more of it as it rises.
            cx = L / 2 - 0.01 * L + 0.015 * L * r
            pts = np.stack([cx + 0.025 * L * (0.4 + r) * np.cos(a),
                            0.09 * B * r**0.5 * np.sin(a)], 1)
            bulb = proj.ground(pts)
    top = (fb_stern - s.fb_laden_m) - s.rudder_depth_frac * span
    if top > 0:
        r = min(top / max(span, 1e-6), 1.0)
        xr = -L / 2 + 0.3 * s.freeboard_m
        rd = np.array([[xr - 0.012 * L * (0.5 + r), -0.04 * B], [xr, -0.04 * B],
                       [xr, 0.04 * B], [xr - 0.012 * L * (0.5 + r), 0.04 * B]])
        rudder = proj.ground(rd)

    # Outward normal of the hull side facing the sensor (perpendicular to the hull axis).
    u = azimuth_vector(s.heading_deg)
    n = np.array([-u[1], u[0]])
    if np.dot(n, -proj.layover) < 0:  # the seen side faces the sensor, i.e. against layover
        n = -n
    return ShipShapes(hull_shadow, super_shadow, hull_side, band, deck, forecastle, super_side,
                      super_roof, funnel_side, funnel_roof, pipe_rack, manifold, bulb, rudder, n,
                      wl, tuple(items))


def _deck_items(s: Scene, proj: Projector) -> list[tuple[Poly, Poly, float]]:
    """The look's further deck boxes, seen: (side faces, roof, grey level or colour index)."""
    if s.look is None:
        return []
    L, B = s.length_m, s.beam_m
    out = []
    for x, y, hl, hw, h, shade in s.look.deck_items:
        box = np.array([[x - hl, y - hw], [x + hl, y - hw], [x + hl, y + hw], [x - hl, y + hw]])
        box = box * np.array([L, B])
        # Inside the deck's edge, so the hull's outline, shadow and layover stay the hull's.
        box[:, 1] = np.clip(box[:, 1], -0.45 * B, 0.45 * B)
        z0 = float(freeboard_along(s, np.array([x * L]))[0])
        out.append((convex_hull(proj.seen(box, z0), proj.seen(box, z0 + h)),
                    proj.seen(box, z0 + h), shade))
    return out


@dataclass(frozen=True)
class CueWidths:
    """What a perfect reader could measure in the chip, in output pixels (oracle features)."""

    beam_px: float
    length_px: float
    shadow_width_px: float  # hull shadow beyond the hull, across the hull
    side_width_px: float  # visible hull side, across the hull
    band_width_px: float  # visible antifouling band, across the hull
    super_shadow_len_px: float  # accommodation-block shadow length


def _across_per_metre(s: Scene) -> tuple[float, float]:
    """Ground metres across the hull per metre of freeboard: (shadow, visible side)."""
    d_sun = math.radians(s.sun_azimuth_deg - s.heading_deg)
    d_sen = math.radians(s.sensor_azimuth_deg - s.heading_deg)
    return (abs(math.sin(d_sun)) / math.tan(math.radians(s.sun_elevation_deg)),
            math.tan(math.radians(s.off_nadir_deg)) * abs(math.sin(d_sen)))


def cue_widths(s: Scene) -> CueWidths:
    """Analytic cue widths: FB/tan(elev)*|sin daz| and FB*tan(theta)*|sin daz|, over the GSD."""
    shadow, side = _across_per_metre(s)
    fb = s.freeboard_m
    return CueWidths(
        beam_px=s.beam_m / s.gsd_m,
        length_px=s.length_m / s.gsd_m,
        shadow_width_px=fb * shadow / s.gsd_m,
        side_width_px=fb * side / s.gsd_m,
        band_width_px=max(fb - s.fb_laden_m, 0.0) * side / s.gsd_m,
        super_shadow_len_px=(fb + s.superstructure_height_m)
        / math.tan(math.radians(s.sun_elevation_deg)) / s.gsd_m,
    )


# Added to the cue ratios before their logarithm (``cue_targets``): a shadow along the hull (the
# sun's azimuth on the axis) is 0 wide, and 0.01 beams is under a pixel for any ship of the
# fleet at any GSD it is imaged at.
CUE_EPS = 0.01


def cue_targets(s: Scene) -> np.ndarray:
    """The cue readout's truth: log(width / beam + CUE_EPS) of the hull's shadow and its side.

    Widths across the hull over the beam, which the same view shows: ratios that do not depend
    on the GSD, the view's scale or the look (``shipload.model.physics``).

    Returns:
        (2,) float32: shadow, visible side.
    """
    per_metre = np.array(_across_per_metre(s))  # (shadow, side) ground metres per metre of FB
    return np.log(s.freeboard_m * per_metre / s.beam_m + CUE_EPS).astype(np.float32)


# The freeboard between a laden and a ballast hull, in beams: the fleet's laden freeboards
# span 0.07-0.16 B and its ballast ones 0.24-0.38 B (shared/DESIGN.md); 0.17 B is the gap
# between their middles.
LADEN_BALLAST_GAP_BEAMS = 0.17


def cue_gap_px(s: Scene, gap_beams: float = LADEN_BALLAST_GAP_BEAMS) -> float:
    """How much wider (chip pixels) a ballast hull's shadow and side are than a laden one's.

    The width across the hull that a freeboard change of ``gap_beams`` beams makes in its
    shadow and its visible side (``cue_widths``' terms), over the GSD. Near 0 the geometry
    hides the cue (the sun along the hull and a near-nadir view) or the pixels are too coarse
    for it, and any reader of the chip must guess.
    """
    return gap_beams * s.beam_m * sum(_across_per_metre(s)) / s.gsd_m
