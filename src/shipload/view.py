"""The model's view of a chip, and of its acquisition geometry: one definition, numpy/cv2 only.

``prepare_view`` is used unchanged by training, export parity, ``predict`` and ``adapt``. Its
default policy, ``hull_aligned``, rotates the chip so that the hull lies horizontal and crops a
band around it, sampled ``across_scale`` times finer across the hull than along it: the
few-pixel freeboard cue (shadow, hull side, antifouling band across the hull) keeps its pixels.
With ``frame_scale`` set, the view is cut around the ship itself: a square ``frame_scale`` times
the estimated hull length, centred on the ship (``hull_extent``), so that the hull fills the
view alike however loosely the chip was cut, and a loose cut gains the pixels a tight one has.

The hull axis is the user's ``heading_deg`` when given (AIS, a detector's oriented box), else
an image estimate. The acquisition geometry (``GEOMETRY_FIELDS``) is encoded *in the view's
frame*: the azimuths are turned by the same rotation as the pixels, so the network sees the sun
and the sensor where they are relative to the hull in its input. A 180-degree ambiguity of the
axis turns the pixels and the encoded directions alike, so it is harmless.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from shipload.contract import (
    DEFAULT_ACROSS_SCALE,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    GEO_DIM,
    GEOMETRY_FIELDS,
    GEOMETRY_RANGES,
    InputSpec,
    Policy,
    describe,
)

__all__ = ["DEFAULT_ACROSS_SCALE", "DEFAULT_HEIGHT", "DEFAULT_WIDTH", "GEOMETRY_FIELDS",
           "GEOMETRY_RANGES", "GEO_DIM", "GeometryError", "InputSpec", "Policy", "View",
           "describe", "encode_geometry", "flip_geometry", "hull_extent", "parse_geometry",
           "prepare_chip",
           "prepare_view", "stack_views", "view_maps"]

# Indices of the encoded vector whose sign a flip of the view reverses.
_ALONG = (7, 12)  # x (along-hull) components: horizontal flip
_ACROSS = (8, 13, 14, 15)  # y (across-hull) components: vertical flip


class GeometryError(ValueError):
    """A geometry value is not a number or out of range; the message names the field."""


# ---------------------------------------------------------------------------------------------
# Geometry values: parse, check, encode
# ---------------------------------------------------------------------------------------------
def parse_geometry(values: Mapping[str, Any], source: str = "") -> dict[str, float]:
    """Check and convert geometry values; blanks and ``None`` mean missing.

    Args:
        values: any mapping; keys other than the geometry fields and ``heading_deg`` are
            ignored.
        source: where the values came from, for the message (``manifest``, ``sidecar``, ...).

    Returns:
        The present fields as floats.

    Raises:
        GeometryError: a value that is not a number or out of range, naming the field.
    """
    out: dict[str, float] = {}
    where = f" (from {source})" if source else ""
    for k, (lo, hi) in GEOMETRY_RANGES.items():
        v = values.get(k)
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise GeometryError(f"{k}={v!r}{where} is not a number") from None
        if math.isnan(x):
            continue
        if not math.isfinite(x):
            raise GeometryError(f"{k}={v!r}{where} is not a finite number")
        if k == "gsd_m" and not 0.0 < x <= hi:
            raise GeometryError(f"gsd_m={x:g}{where} is out of range: it must be > 0 and "
                                f"<= {hi:g} metres")
        if not lo <= x <= hi:
            raise GeometryError(f"{k}={x:g}{where} is out of range [{lo:g}, {hi:g}]")
        out[k] = x
    return out


def axis_from_heading(heading_deg: float) -> float:
    """Hull axis in degrees from +x toward +y (image coordinates), mod 180, in (-90, 90]."""
    return ((heading_deg - 90.0) + 90.0) % 180.0 - 90.0


def _view_dir(az_deg: float, axis_deg: float) -> tuple[float, float]:
    # Azimuth (clockwise from up) → angle from +x toward +y is az - 90; the view rotates the
    # chip by -axis_deg, so in the view the direction lies at az - 90 - axis_deg.
    phi = math.radians(az_deg - 90.0 - axis_deg)
    return math.cos(phi), math.sin(phi)


def encode_geometry(geo: Mapping[str, float], axis_deg: float, chip_side_px: int,
                    spec: InputSpec) -> np.ndarray:
    """The model's geometry input: values in the view's frame, and a presence mask.

    Args:
        geo: present fields (``parse_geometry``'s output); missing ones are encoded as absent.
        axis_deg: the rotation the view applied (hull axis, from +x toward +y).
        chip_side_px: the side, in the chip's pixels, of the square the view was cut from:
            the chip's longer side, or the window's (for metres per view pixel).
        spec: the view's input spec.

    Returns:
        (GEO_DIM,) float32: [m_gsd, log gsd, log m/px across, m_el, cot el / 2, sin el,
        m_sun_az, sun x, sun y, m_off_nadir, tan off-nadir, m_sensor_az, sensor x, sensor y,
        shadow across (view px per metre of height / 10), layover across (likewise)].
    """
    g = np.zeros(GEO_DIM, np.float32)
    across_px = spec.height if spec.policy != "hull_aligned" else spec.width * spec.across_scale
    mpp = None
    if "gsd_m" in geo:
        g[0], g[1] = 1.0, math.log(geo["gsd_m"])
        mpp = geo["gsd_m"] * chip_side_px / across_px  # metres per view pixel across the hull
        g[2] = math.log(mpp)
    cot = None
    if "sun_elevation_deg" in geo:
        el = math.radians(max(geo["sun_elevation_deg"], 1.0))
        cot = min(1.0 / math.tan(el), 8.0)
        g[3], g[4], g[5] = 1.0, cot / 2.0, math.sin(el)
    sun = None
    if "sun_azimuth_deg" in geo:
        sun = _view_dir(geo["sun_azimuth_deg"], axis_deg)
        g[6], g[7], g[8] = 1.0, sun[0], sun[1]
    tan_on = None
    if "off_nadir_deg" in geo:
        tan_on = math.tan(math.radians(geo["off_nadir_deg"]))
        g[9], g[10] = 1.0, tan_on
    sen = None
    if "sensor_azimuth_deg" in geo:
        sen = _view_dir(geo["sensor_azimuth_deg"], axis_deg)
        g[11], g[12], g[13] = 1.0, sen[0], sen[1]
    if mpp is not None and cot is not None and sun is not None:
        # A point 1 m up casts its shadow cot(el) metres away from the sun.
        g[14] = float(np.clip(-cot * sun[1] / mpp / 10.0, -5, 5))
    if mpp is not None and tan_on is not None and sen is not None:
        # ...and appears tan(off-nadir) metres away from the sensor (layover).
        g[15] = float(np.clip(-tan_on * sen[1] / mpp / 10.0, -5, 5))
    return g


def flip_geometry(g: np.ndarray, horizontal: bool, vertical: bool) -> np.ndarray:
    """The geometry of a view flipped along (horizontal) or across (vertical) the hull.

    Args:
        g: (..., GEO_DIM) encoded geometry.
        horizontal: the view was mirrored left-right (bow and stern swap).
        vertical: the view was mirrored top-bottom (the two sides swap).
    """
    out = np.array(g, np.float32, copy=True)
    if horizontal:
        out[..., list(_ALONG)] *= -1
    if vertical:
        out[..., list(_ACROSS)] *= -1
    return out


def geometry_used(g: np.ndarray) -> str:
    """The names of the fields present in an encoded vector, ``+``-joined (or ``none``)."""
    names = [f for f, i in zip(GEOMETRY_FIELDS, (0, 3, 6, 9, 11)) if g[i] > 0]
    return "+".join(names) if names else "none"


# ---------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------
def border_colour(img: np.ndarray) -> np.ndarray:
    """Median colour of the chip's outermost pixels (usually water). Shape (3,)."""
    edge = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    return np.median(edge, axis=0).astype(np.float32)


def _orientation_tensor(gx: np.ndarray, gy: np.ndarray, w: np.ndarray) -> float:
    jxx = float((w * gx * gx).sum())
    jyy = float((w * gy * gy).sum())
    jxy = float((w * gx * gy).sum())
    grad_dir = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))
    return (grad_dir + 90.0 + 90.0) % 180.0 - 90.0  # the axis runs across the gradient


@functools.lru_cache(maxsize=8)
def _centred_grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates from the centre of an (s, s) image, (s, s) each.

    Cached per size: predict calls the estimate on every chip, mostly at one size.
    """
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) - (s - 1) / 2
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


_EDGES_36 = np.linspace(0, 180, 37)


def _histogram_36(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``np.histogram(a, bins=36, range=(0, 180), weights=w)[0]`` for ``a`` in [0, 180).

    The same bins and sums (float32 weights give float32 counts, as numpy's, and a value on
    an edge goes to the bin above it), without its general-purpose bookkeeping, which cost
    predict a millisecond a chip.
    """
    a = a.ravel()
    idx = np.minimum((a * np.float32(36 / 180)).astype(np.intp), 35)
    idx -= a < _EDGES_36[idx]  # the product's rounding can cross an edge: numpy's own fix-up
    idx += (a >= _EDGES_36[idx + 1]) & (idx != 35)
    return np.bincount(idx, weights=w.ravel(), minlength=36).astype(w.dtype)


def hull_axis_deg(img: np.ndarray, version: int = 1, fg: np.ndarray | None = None) -> float:
    """Estimate the hull axis, in degrees from +x toward +y (image coordinates), mod 180.

    A gradient structure tensor over a centred window proposes the axis; so do the strongest
    modes of the orientation histogram. A straight line near the hull (a quay, a jetty, a ship
    alongside) makes a mode too, but only the ship passes through the chip's centre: each
    candidate is scored by the edge along it within a narrow band through the centre, and the
    winner is refined by the tensor inside its band.

    Version 1 scores unsigned edge energy, which bands of paint across a hull (many short
    edges) can win. Version 2 adds the long axis of the blob that stands out from the water at
    the centre (``_blob_axis``: the hull's shape, whatever its paint) as a candidate and scores
    *coherent* edge (``_coherent_edges``): a hull's two long sides add up, cross bands cancel.

    Args:
        img: (S, S, 3) float chip with the ship near the centre.
        version: the estimate (``InputSpec.view_version``).
        fg: version 2: the chip's foreground map (``foreground_map``), when the caller has it.

    Returns:
        Angle in (-90, 90].
    """
    s = img.shape[0]
    g = (img[..., 0] + img[..., 1] + img[..., 2]) / np.float32(3)  # the band mean, 15x numpy's
    g = cv2.GaussianBlur(g, (0, 0), 2.0 * s / 160)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    win1, win = _axis_window(s)
    mag = np.sqrt(gx * gx + gy * gy) + 1e-12
    cands = [_orientation_tensor(gx, gy, win / mag)]
    # Orientation histogram (5-degree bins) of the edge directions, weighted by magnitude.
    # cv2.phase is within 0.01 degree of arctan2 and 50x faster; it is in [0, 360).
    axis_of_px = np.fmod(cv2.phase(gx, gy, angleInDegrees=True) + np.float32(90.0),
                         np.float32(180.0))
    hist = _histogram_36(axis_of_px, win * mag)
    hist = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    for b in np.argsort(hist)[::-1][:4]:
        cands.append(((b + 0.5) * 5.0 + 90.0) % 180.0 - 90.0)
    if version >= 2:
        blob = _blob_axis(foreground_map(img) if fg is None else fg)
        if blob is not None:
            cands.append(blob)
    if all(abs((a - cands[0] + 90.0) % 180.0 - 90.0) < 10.0 for a in cands[1:]):
        return cands[0]  # every mode agrees with the tensor: whichever wins, the tensor's is kept
    if version >= 2:
        # The tensor's and the blob's angles are new each chip: their bands are not cached.
        scores = [_coherent_edges(gx, gy, a, cached=0 < i < 5) for i, a in enumerate(cands)]
    else:
        gxf, gyf, magf = gx.ravel(), gy.ravel(), mag.ravel()
        scores = []
        for i, a in enumerate(cands):
            t = math.radians(a)
            # The tensor's angle is new each chip; a mode's is one of 36, its band cached.
            idx = _line_band(s, a) if i else _line_band.__wrapped__(s, a)
            # Edge energy along the line: mag * cos^2 of the gradient against the line's normal.
            across = gyf[idx] * math.cos(t) - gxf[idx] * math.sin(t)
            scores.append(float((across * across / magf[idx]).sum()))
    best = cands[int(np.argmax(scores))]
    if abs((best - cands[0] + 90.0) % 180.0 - 90.0) < 10.0 or scores[0] >= 0.9 * max(scores):
        return cands[0]  # the tensor agrees (or nearly wins): its estimate is the finer one
    # Refine the winner with the tensor inside a soft band along it.
    t = math.radians(best)
    yy, xx = _centred_grid(s)
    dist = np.abs(-xx * math.sin(t) + yy * math.cos(t))
    soft = np.exp(-(dist**2) / (2 * (0.06 * s) ** 2)) * win1[:, None] ** 0.5 * win1[None, :] ** 0.5
    refined = _orientation_tensor(gx, gy, soft / mag)
    d = abs((refined - best + 90.0) % 180.0 - 90.0)
    return refined if d < 6.0 else best


def _coherent_edges(gx: np.ndarray, gy: np.ndarray, angle: float, cached: bool = True) -> float:
    """How much straight edge runs along ``angle`` through the centre of an (s, s) image.

    Within a band 0.2 s wide and 0.9 s long around the line, the gradient across the line is
    summed along it (weighted toward the centre), per 1-pixel offset from it: the sides of a
    hull lying on the line add up over its whole length, while edges that cross the line (bands
    of paint across the hull, a deck's pattern, waves) add up only over their own short lengths
    and cancel in sign. The score is the energy of that profile. ``cached``: keep the band
    for the angle (the histogram's modes; not an angle new each chip).
    """
    band = _coherent_band if cached else _coherent_band.__wrapped__
    idx, w, bins, c, n = band(gx.shape[0], angle)
    across = (gy.ravel()[idx] * c - gx.ravel()[idx] * n) * w
    prof = np.bincount(bins, weights=across)
    return float(prof @ prof)


@functools.lru_cache(maxsize=160)
def _coherent_band(s: int, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float,
                                                  float]:
    """``_coherent_edges``' band around the line at ``angle`` through an (s, s) image's centre.

    Returns the band's flat pixel indices, their weights along the line, their 1-pixel offset
    bins across it, and the line's cos and sin. Cached: the orientation histogram's modes
    come from 36 angles.
    """
    yy, xx = _centred_grid(s)
    t = math.radians(angle)
    c, n = math.cos(t), math.sin(t)
    d = yy * c - xx * n  # (s, s) signed distance from the line
    along = xx * c + yy * n
    m = ((np.abs(d) < 0.1 * s) & (np.abs(along) < 0.45 * s)).ravel()
    idx = np.flatnonzero(m)
    # Weighted toward the centre along the line (the axis window's spread): the hull lies there,
    # while a quay or a jetty runs on to the chip's edges.
    w = np.exp(-0.5 * (along.ravel()[idx] / (0.2 * s)) ** 2)
    bins = np.round(d.ravel()[idx] + 0.1 * s).astype(np.intp)
    for a in (idx, w, bins):
        a.flags.writeable = False
    return idx, w, bins, c, n


def foreground_map(img: np.ndarray) -> np.ndarray:
    """(F, F) uint8: where a square chip stands out from the water, at ``_FG_SIDE`` pixels.

    Version 2's: computed once per view and shared by the axis estimate and the ship search
    (which turns it onto the hull's axis), closed by 3x3 so that a hull broken by its own
    deck pattern is one blob whatever its direction.
    """
    f = _FG_SIDE
    return _foreground(cv2.resize(img, (f, f), interpolation=cv2.INTER_AREA), _ROUND_CLOSE)


def _centre_blob(fg: np.ndarray) -> np.ndarray | None:
    """(F, F) bool: the blob of ``fg`` covering most of a disc at its centre, or None.

    The ship and its shadow, when the chip is cut around a ship; None when the disc holds
    little foreground.
    """
    f = fg.shape[0]
    n, lab, _, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n < 2:
        return None
    yy, xx = _centred_grid(f)
    disc = (xx * xx + yy * yy) < (0.12 * f) ** 2
    hits = np.bincount(lab[disc], minlength=n)
    hits[0] = 0
    best = int(np.argmax(hits))
    if hits[best] < 0.05 * disc.sum():
        return None
    return lab == best


def _blob_axis(fg: np.ndarray) -> float | None:
    """The long axis of the blob at the centre of a foreground map, or None.

    Its second moments give the long axis, in degrees from +x toward +y; None when no blob is
    found or it is round. A candidate only: a blob joined to a quay or a wake points wrong, and
    the edges decide (``hull_axis_deg``).
    """
    blob = _centre_blob(fg)
    if blob is None:
        return None
    m = cv2.moments(blob.astype(np.uint8), binaryImage=True)
    a, b, c = m["mu20"], m["mu02"], m["mu11"]
    half_tr, root = (a + b) / 2, math.sqrt(((a - b) / 2) ** 2 + c * c)
    if root <= 1e-9 * half_tr:  # round: no long axis
        return None
    return 0.5 * math.degrees(math.atan2(2 * c, a - b))


@functools.lru_cache(maxsize=8)
def _axis_window(s: int) -> tuple[np.ndarray, np.ndarray]:
    """The axis estimate's centred Gaussian window, (s,) and (s, s): the ship, not neighbours."""
    r = np.arange(s, dtype=np.float32) - (s - 1) / 2
    win1 = np.exp(-(r**2) / (2 * (0.2 * s) ** 2))
    win = win1[:, None] * win1[None, :]
    win1.flags.writeable = win.flags.writeable = False
    return win1, win


@functools.lru_cache(maxsize=160)
def _line_band(s: int, angle: float) -> np.ndarray:
    """Flat indices of an (s, s) image's pixels near the line through its centre at ``angle``.

    Within 0.07 s of the line and 0.45 s of the centre along it: the hull, if the line is its
    axis. Cached: the orientation histogram's modes come from 36 angles.
    """
    yy, xx = _centred_grid(s)
    t = math.radians(angle)
    dist = np.abs(-xx * math.sin(t) + yy * math.cos(t))  # distance from the line
    along = np.abs(xx * math.cos(t) + yy * math.sin(t))
    idx = np.flatnonzero(((dist < 0.07 * s) & (along < 0.45 * s)).ravel())
    idx.flags.writeable = False
    return idx


def _square(img: np.ndarray, fill: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h == w:
        return img
    s = max(h, w)
    out = np.empty((s, s, img.shape[2]), np.float32)
    out[:] = fill
    y0, x0 = (s - h) // 2, (s - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = img
    return out


def _resize(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """``letterbox`` (aspect kept, padded with the border colour) or ``stretch``."""
    h, w = img.shape[:2]
    if spec.policy == "letterbox" and h != w:
        img = _square(img, border_colour(img))
    interp = cv2.INTER_AREA if max(h, w) > max(spec.height, spec.width) else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(img, (spec.width, spec.height), interpolation=interp),
                                dtype=np.float32)


@dataclass
class View:
    """A chip as the model sees it.

    Attributes:
        image: (height, width, 3) float32 in [0, 1].
        geometry: (GEO_DIM,) float32 encoded geometry (all absent when none was given).
        axis_deg: the rotation applied (hull axis, from +x toward +y); 0 for plain resizes.
        axis_source: ``heading`` (given) or ``image`` (estimated), or ``none``.
        maps: (height, width, C) float32 part maps carried into the view (training on
            rendered chips only; ``view_maps``), else None.
        window: (centre x, centre y, side) of the square of the (squared) chip the view was
            cut from, in its pixels; None for the whole chip.
    """

    image: np.ndarray
    geometry: np.ndarray
    axis_deg: float
    axis_source: str
    maps: np.ndarray | None = None
    window: tuple[float, float, float] | None = None


def prepare_view(img: np.ndarray, spec: InputSpec, geometry: Mapping[str, float] | None = None,
                 heading_deg: float | None = None, angle_jitter_deg: float = 0.0) -> View:
    """The model's view of a chip and its geometry; the one function for every path.

    Args:
        img: (H, W, 3) float32 RGB in [0, 1] from ``read_chip``.
        spec: input geometry and policy.
        geometry: present geometry fields (``parse_geometry``), azimuths in the chip's frame.
        heading_deg: the hull axis, clockwise from the chip's up (replaces the estimate).
        angle_jitter_deg: added to the axis (training augmentation only).
    """
    geo = dict(geometry or {})
    side = max(img.shape[:2])
    if spec.policy != "hull_aligned":
        return View(_resize(img, spec), encode_geometry(geo, 0.0, side, spec), 0.0, "none")
    fill = border_colour(img)
    sq = _square(img, fill)
    # Work at across_scale x the output width, so that the finer sampling across the hull
    # comes from real pixels; then shrink along the hull only, by area averaging.
    big_side = int(round(spec.width * spec.across_scale))
    interp = cv2.INTER_AREA if sq.shape[0] > big_side else cv2.INTER_LINEAR
    big = cv2.resize(sq, (big_side, big_side), interpolation=interp)
    ver = spec.view_version
    # The chip at 160 px for the estimates (version 2's ship search too), and version 2's
    # foreground map, shared by the axis estimate and the ship search.
    est: np.ndarray | None = None
    fg: np.ndarray | None = None
    if heading_deg is None or (ver >= 2 and spec.frame_scale > 0):
        est = big if big_side <= 192 else cv2.resize(big, (160, 160), interpolation=cv2.INTER_AREA)
        fg = foreground_map(est) if ver >= 2 else None
    if heading_deg is not None:
        angle, source = axis_from_heading(heading_deg), "heading"
    else:
        assert est is not None
        angle, source = hull_axis_deg(est, ver, fg), "image"
    angle += angle_jitter_deg
    fill_t = tuple(float(v) for v in fill)
    window = _window(big, angle, spec, sq.shape[0], fg, est)
    if window is None:
        band = _band(big, spec, angle, fill_t)
        return View(band, encode_geometry(geo, angle, side, spec), angle, source)
    band = _band_window(sq, spec, angle, fill_t, window, scaled=big)
    # The window is the view's extent: metres per view pixel follow from its side.
    return View(band, encode_geometry(geo, angle, max(1, round(window[2])), spec), angle, source,
                window=window)


_FG_SIDE = 80  # the side the ship is looked for at (a 320 view's 4x4 blocks)
_FG_SPAN = 61  # the side of the median window that estimates the water (> 2 (beam + shadow))


_ROUND_CLOSE = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
_ALONG_CLOSE = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 3))  # (x, y): along the hull


def _foreground(rot: np.ndarray, close: np.ndarray = _ALONG_CLOSE) -> np.ndarray:
    """(F, F) uint8: 1 where a pixel of ``rot`` stands out from the water around it.

    ``rot`` (F, F, 3) has the hull along +x (version 1; version 2 turns the map instead). The
    water under each pixel is the median of a window ``_FG_SPAN`` pixels wide, more than twice
    a beam and its shadow, so it skips the hull; uneven water, cloud shadows and haze
    gradients, which a single water colour would take for the ship, cancel. The bar is the
    image's own spread (median and MAD), so noise sets it, not a constant. Closed by
    ``close``: along the hull more than across by default, so that a hull broken by its own
    deck pattern is one blob.
    """
    # OpenCV's median of a large window is fast on 8 bits only (a running histogram).
    water = cv2.medianBlur(np.round(rot * 255).astype(np.uint8), _FG_SPAN) * np.float32(1 / 255)
    d = np.abs(rot - water)  # (F, F, 3); the band max below is numpy's max(axis=2), faster
    diff = cv2.GaussianBlur(np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]), (0, 0), 0.8)
    med = float(np.median(diff))
    thr = max(0.03, med + 5.0 * 1.4826 * float(np.median(np.abs(diff - med))))
    fg = (diff > thr).astype(np.uint8)
    return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, close)


def hull_extent(big: np.ndarray, angle: float, version: int = 1, fg: np.ndarray | None = None,
                small: np.ndarray | None = None) -> tuple[float, float, float] | None:
    """Find the ship through the chip's centre: its centre and its length along ``angle``.

    Pixels that stand out from the water around them are the foreground (``_foreground``);
    the connected blob that covers most of a disc at the centre is the ship, its
    shadow included. Its length is the run of columns, along the hull axis, that hold a fair
    share of the blob's thickness, so a mooring line or a thin wake does not stretch it. A wide
    wake, a neighbour end to end or a quay alongside joins the hull and measures long: the
    caller then keeps more of the chip, the safe side. The other error, a fragment (a hull
    crowded by a quay in a tight cut, its interior taken for water), is bounded by the
    caller's least window.

    Version 2 measures the length as the run of columns through the centre that hold a fair
    share of the hull's thickness at the centre (``_hull_run``), so that a neighbour or a wake
    joined by a thin bridge, or a thin quay edge, no longer stretches it.

    Args:
        big: (S, S, 3) float32 square chip.
        angle: hull axis, degrees from +x toward +y.
        version: the estimate (``InputSpec.view_version``).
        fg: version 2: the chip's foreground map (``foreground_map``), when the caller has it.
        small: version 2: ``big`` resized to ``_SIDE_F`` pixels, when the caller has it.

    Returns:
        (centre x, centre y, length) in ``big``'s pixels, or None when no blob is found.
    """
    s, f = big.shape[0], _FG_SIDE
    c = (f - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)  # hull axis onto +x
    if version >= 2:
        # The map turned with the hull onto +x, then closed along the hull.
        small = big if small is None else small
        rot = cv2.warpAffine(foreground_map(small) if fg is None else fg, m, (f, f),
                             flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        rot = cv2.morphologyEx(rot, cv2.MORPH_CLOSE, _ALONG_CLOSE)
    else:
        small = cv2.resize(big, (f, f), interpolation=cv2.INTER_AREA)  # (F, F, 3)
        rot = _foreground(cv2.warpAffine(small, m, (f, f), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT))
    blob = _centre_blob(rot)
    if blob is None:
        return None
    if version >= 2:
        run = _hull_run(blob)
        if run is None:
            return None
        x0, x1 = run
        sides = _side_run(small, angle)
        if sides is not None:
            # A wake, a neighbour end to end or a quay joins the blob but not the hull's sides;
            # the bow and stern taper off the sides' rows, so the sides' run is let out a little.
            # It errs short more often than the blob (a deck's clutter breaks it), which trims
            # the hull's ends: the freeboard cue is midships, and a window too long costs the
            # cue pixels instead.
            k, pad = f / _SIDE_F, _SIDE_PAD * (sides[1] - sides[0])
            x0 = max(x0, int(math.floor((sides[0] - pad) * k)))
            x1 = min(x1, int(math.ceil((sides[1] + pad) * k)))
            if x1 - x0 < 2:
                return None
    else:
        cols = blob.sum(axis=0).astype(np.float32)  # (f,) thickness of the blob in each column
        ok = np.flatnonzero(cols >= 0.25 * np.percentile(cols[cols > 0], 90))
        x0, x1 = int(ok.min()), int(ok.max()) + 1
    ry = float(np.average(np.arange(f), weights=blob[:, x0:x1].sum(axis=1)))
    # Back from the rotated frame, then from foreground pixels to big's.
    cx, cy = cv2.invertAffineTransform(m) @ np.array([(x0 + x1 - 1) / 2, ry, 1.0])
    r = s / f
    return float((cx + 0.5) * r - 0.5), float((cy + 0.5) * r - 0.5), float((x1 - x0) * r)


def _hull_run(blob: np.ndarray) -> tuple[int, int] | None:
    """Version 2's hull length: columns [x0, x1) of ``blob`` (hull along +x) that are the hull.

    The hull's thickness is the blob's median thickness in the columns at the centre, where the
    hull is in any supported cut; the hull is the run of columns through the centre holding at
    least a third of it, bridging gaps of up to ``_RUN_GAP`` columns (a deck pattern, a dark
    bow). What the old measure took (every column anywhere with a quarter of the 90th
    percentile) also took a neighbour end to end or a wake that touched the hull by a line.
    """
    f = blob.shape[1]
    cols = blob.sum(axis=0)  # (f,) thickness of the blob in each column
    c = (f - 1) / 2
    lo, hi = int(c - 0.1 * f), int(c + 0.1 * f) + 1
    mid = cols[lo:hi]
    if not (mid > 0).any():
        return None
    ok = cols >= max(1.0, np.median(mid[mid > 0]) / 3)
    near = np.flatnonzero(ok[lo:hi]) + lo
    if not near.size:
        return None
    return _run_through(ok, int(near[np.argmin(np.abs(near - c))]), _RUN_GAP)


def _run_through(ok: np.ndarray, start: int, max_gap: int) -> tuple[int, int]:
    """The run [x0, x1) of True in ``ok`` (n,) that holds ``start`` (True there).

    Gaps of up to ``max_gap`` False entries are bridged.
    """
    x0 = x1 = start
    gap = 0
    while x1 + 1 < ok.size and gap <= max_gap:
        x1 += 1
        gap = 0 if ok[x1] else gap + 1
    x1 -= gap  # back to the last True
    gap = 0
    while x0 - 1 >= 0 and gap <= max_gap:
        x0 -= 1
        gap = 0 if ok[x0] else gap + 1
    return x0 + gap, x1 + 1


def _side_run(img: np.ndarray, angle: float) -> tuple[int, int] | None:
    """Version 2: the columns [x0, x1) along which the hull's long sides run, at ``_SIDE_F`` px.

    The chip is turned so the hull lies along +x; at the centre, the rows with the strongest
    rising and falling edge across the hull are its sides (or a side and its shadow's edge,
    which runs as long). The hull is the run of columns through the centre where both edges
    keep a fair share of their strength at the centre: a wake, a quay or a neighbour joined to
    the hull in the foreground has no straight edges on those rows.
    """
    f = _SIDE_F
    if img.shape[0] != f:
        img = cv2.resize(img, (f, f), interpolation=cv2.INTER_AREA)
    g = (img[..., 0] + img[..., 1] + img[..., 2]) / np.float32(3)  # (f, f) the bands' mean
    c = (f - 1) / 2
    g = cv2.warpAffine(g, cv2.getRotationMatrix2D((c, c), angle, 1.0), (f, f),
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gy = cv2.blur(cv2.Sobel(g, cv2.CV_32F, 0, 1), (5, 1))  # (f, f) across-hull edges, smoothed
    lo, hi = int(c - 0.08 * f), int(c + 0.08 * f) + 1
    band = slice(int(c - 0.2 * f), int(c + 0.2 * f) + 1)  # rows a hull's sides can lie on
    prof = gy[band, lo:hi].mean(axis=1)
    r1, r2 = int(np.argmax(prof)) + band.start, int(np.argmin(prof)) + band.start
    if prof.max() <= 0 or prof.min() >= 0 or abs(r1 - r2) < 2:
        return None
    e = np.minimum(gy[r1 - 1 : r1 + 2].max(axis=0), -gy[r2 - 1 : r2 + 2].min(axis=0))
    e = cv2.blur(np.maximum(e, 0)[None, :], (5, 1))[0]  # (f,) both sides' strength per column
    ref = float(np.median(e[lo:hi]))
    if ref <= 0:
        return None
    ok = e >= _SIDE_SHARE * ref
    mid = int(round(c))
    return _run_through(ok, mid, 2 * _RUN_GAP) if ok[mid] else None


_SIDE_F = 160  # the side the hull's edges are followed at
_SIDE_SHARE = 0.3  # of the sides' strength at the centre, that a column of hull keeps
_SIDE_PAD = 0.15  # the sides' run let out at each end by this share (a bow's taper)
_RUN_GAP = 2  # columns of the 80-px map (2.5 % of the chip) a hull's run may skip


# A window's least side, and the least hull length believed, as shares of the chip's side.
# Chips are supported from 1.1x to 2x the ship's length: a hull shorter than 0.45 of the chip
# is a fragment (a deck pattern, a shadow), and the whole chip is kept then; a window is never
# under 0.6 of the chip, 1.2 hull lengths of a 2x cut, so a fragment found in a tight cut
# trims the hull's ends at worst.
_MIN_WINDOW, _MIN_LENGTH = 0.6, 0.45


def _window(big: np.ndarray, angle: float, spec: InputSpec, sq_side: int,
            fg: np.ndarray | None = None,
            small: np.ndarray | None = None) -> tuple[float, float, float] | None:
    """The square (centre x, centre y, side in the squared chip's pixels) the view is cut from.

    ``spec.frame_scale`` hull lengths, centred on the ship; None for the whole chip (no
    ``frame_scale``, or no believable hull found).
    """
    if spec.frame_scale <= 0:
        return None
    ext = hull_extent(big, angle, spec.view_version, fg, small)
    s = big.shape[0]
    if ext is None or ext[2] < _MIN_LENGTH * s:
        return None
    cx, cy, length = ext
    side = float(np.clip(spec.frame_scale * length, _MIN_WINDOW * s, s))
    r = sq_side / s
    return (cx + 0.5) * r - 0.5, (cy + 0.5) * r - 0.5, side * r


def _band_window(sq: np.ndarray, spec: InputSpec, angle: float, fill: tuple[float, ...],
                 window: tuple[float, float, float],
                 scaled: np.ndarray | None = None) -> np.ndarray:
    """Cut the hull-aligned band from a window of the square chip (see ``_band``).

    ``scaled`` is ``sq`` already resized (``prepare_view``'s square): reused when the window
    asks for that size (a window as wide as the chip), so predict does not resize twice.
    """
    cx, cy, side = window
    big_side = int(round(spec.width * spec.across_scale))
    r = big_side / side  # band pixels per chip pixel
    n = max(1, int(round(sq.shape[0] * r)))
    if scaled is not None and scaled.shape[0] == n:
        big = scaled.reshape(n, n, -1)
    else:
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        big = cv2.resize(sq, (n, n), interpolation=interp).reshape(n, n, -1)
    k = n / sq.shape[0]
    return _band(big, spec, angle, fill, centre=((cx + 0.5) * k - 0.5, (cy + 0.5) * k - 0.5),
                 out_side=big_side)


def _band(big: np.ndarray, spec: InputSpec, angle: float, fill: tuple[float, ...],
          centre: tuple[float, float] | None = None, out_side: int | None = None) -> np.ndarray:
    """Rotate a (S, S, C<=4) square by ``angle`` and cut the hull-aligned band from it.

    The band is ``out_side`` (default S) long and ``spec.height`` rows high, centred on
    ``centre`` (default the square's centre), then shrunk along the hull to ``spec.width``.
    """
    big_side = big.shape[0]
    c = (big_side - 1) / 2
    cx, cy = centre if centre is not None else (c, c)
    w = out_side or big_side
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)  # rotates the hull axis onto +x
    m[0, 2] += (w - 1) / 2 - cx  # the centre onto the band's centre
    m[1, 2] += (spec.height - 1) / 2 - cy
    band = cv2.warpAffine(big, m, (w, spec.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    if w != spec.width:
        band = cv2.resize(band, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(band.reshape(spec.height, spec.width, -1), dtype=np.float32)


def view_maps(maps: np.ndarray, spec: InputSpec, axis_deg: float,
              window: tuple[float, float, float] | None = None) -> np.ndarray:
    """Carry per-pixel maps of a chip (the renderer's part layers) into its view.

    The same square, window, resize, rotation and band as ``prepare_view`` applied with
    rotation ``axis_deg`` and ``window`` (its ``View.axis_deg`` and ``View.window``); outside
    the chip the maps are 0.

    Args:
        maps: (H, W, C) float32 coverage maps in the chip's frame.
        spec: the view's input spec.
        axis_deg: the rotation the image's view applied.
        window: the window the image's view was cut from (None: the whole chip).

    Returns:
        (height, width, C) float32.
    """
    n = maps.shape[2]
    # Padded with 0 (no part), where the image is padded with its border colour.
    sq = maps.astype(np.float32) if spec.policy == "stretch" else _square(maps, np.zeros(n))
    out = []
    for i in range(0, n, 4):  # OpenCV's area resize takes at most 4 channels
        part = np.ascontiguousarray(sq[..., i : i + 4])
        zero = (0.0,) * part.shape[2]
        if spec.policy != "hull_aligned":
            out.append(_resize(part, spec).reshape(spec.height, spec.width, -1))
        else:  # the whole chip is the window centred on the square, as wide as it
            whole = ((sq.shape[0] - 1) / 2, (sq.shape[0] - 1) / 2, float(sq.shape[0]))
            out.append(_band_window(part, spec, axis_deg, zero, window or whole))
    return np.ascontiguousarray(np.concatenate(out, axis=2), dtype=np.float32)


def prepare_chip(img: np.ndarray, spec: InputSpec, angle_jitter_deg: float = 0.0) -> np.ndarray:
    """The image part of ``prepare_view`` (no geometry): (height, width, 3) float32."""
    return prepare_view(img, spec, angle_jitter_deg=angle_jitter_deg).image


def stack_views(views: list[View]) -> tuple[np.ndarray, np.ndarray]:
    """Views → the model's two inputs: (B, 3, H, W) float32 NCHW and (B, GEO_DIM) float32."""
    x = np.ascontiguousarray(np.stack([v.image for v in views]).transpose(0, 3, 1, 2),
                             dtype=np.float32)
    g = np.ascontiguousarray(np.stack([v.geometry for v in views]), dtype=np.float32)
    return x, g
