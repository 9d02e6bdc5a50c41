"""The model's view of a chip, and of its acquisition geometry: one definition, numpy/cv2 only.

``prepare_view`` is used unchanged by training, export parity, ``predict`` and ``adapt``. Its
default policy, ``hull_aligned``, rotates the chip so that the hull lies horizontal and crops a
band around it, sampled ``across_scale`` times finer across the hull than along it: the
few-pixel freeboard cue (shadow, hull side, antifouling band across the hull) keeps its pixels.

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
           "describe", "encode_geometry", "flip_geometry", "parse_geometry", "prepare_chip",
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
        chip_side_px: the chip's longer side, in pixels (for metres per view pixel).
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


def hull_axis_deg(img: np.ndarray) -> float:
    """Estimate the hull axis, in degrees from +x toward +y (image coordinates), mod 180.

    A gradient structure tensor over a centred window proposes the axis; so do the strongest
    modes of the orientation histogram. A straight line near the hull (a quay, a jetty, a ship
    alongside) makes a mode too, but only the ship passes through the chip's centre: each
    candidate is scored by the edge energy along it within a narrow band through the centre,
    and the winner is refined by the tensor inside its band.

    Args:
        img: (S, S, 3) float chip with the ship near the centre.

    Returns:
        Angle in (-90, 90].
    """
    s = img.shape[0]
    g = img.mean(axis=2, dtype=np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 2.0 * s / 160)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    c = (s - 1) / 2
    r = np.arange(s, dtype=np.float32) - c
    win1 = np.exp(-(r**2) / (2 * (0.2 * s) ** 2))
    win = win1[:, None] * win1[None, :]  # centred Gaussian window: the ship, not neighbours
    mag = np.sqrt(gx * gx + gy * gy) + 1e-12
    cands = [_orientation_tensor(gx, gy, win / mag)]
    # Orientation histogram (5-degree bins) of the edge directions, weighted by magnitude.
    axis_of_px = (np.degrees(np.arctan2(gy, gx)) + 90.0) % 180.0
    hist, _ = np.histogram(axis_of_px, bins=36, range=(0, 180), weights=win * mag)
    hist = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    for b in np.argsort(hist)[::-1][:4]:
        cands.append(((b + 0.5) * 5.0 + 90.0) % 180.0 - 90.0)
    yy, xx = _centred_grid(s)
    ux, uy = gx / mag, gy / mag
    scores = []
    for a in cands:
        t = math.radians(a)
        dist = np.abs(-xx * math.sin(t) + yy * math.cos(t))  # distance from the line
        along = np.abs(xx * math.cos(t) + yy * math.sin(t))
        band = (dist < 0.07 * s) & (along < 0.45 * s)
        # Edges parallel to the line: the gradient lies across it.
        align = (-ux * math.sin(t) + uy * math.cos(t)) ** 2
        scores.append(float((band * mag * align).sum()))
    best = cands[int(np.argmax(scores))]
    if abs((best - cands[0] + 90.0) % 180.0 - 90.0) < 10.0 or scores[0] >= 0.9 * max(scores):
        return cands[0]  # the tensor agrees (or nearly wins): its estimate is the finer one
    # Refine the winner with the tensor inside a soft band along it.
    t = math.radians(best)
    dist = np.abs(-xx * math.sin(t) + yy * math.cos(t))
    soft = np.exp(-(dist**2) / (2 * (0.06 * s) ** 2)) * win1[:, None] ** 0.5 * win1[None, :] ** 0.5
    refined = _orientation_tensor(gx, gy, soft / mag)
    d = abs((refined - best + 90.0) % 180.0 - 90.0)
    return refined if d < 6.0 else best


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
    """

    image: np.ndarray
    geometry: np.ndarray
    axis_deg: float
    axis_source: str
    maps: np.ndarray | None = None


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
    if heading_deg is not None:
        angle, source = axis_from_heading(heading_deg), "heading"
    else:
        est = big if big_side <= 192 else cv2.resize(big, (160, 160), interpolation=cv2.INTER_AREA)
        angle, source = hull_axis_deg(est), "image"
    angle += angle_jitter_deg
    band = _band(big, spec, angle, tuple(float(v) for v in fill))
    return View(band, encode_geometry(geo, angle, side, spec), angle, source)


def _band(big: np.ndarray, spec: InputSpec, angle: float,
          fill: tuple[float, ...]) -> np.ndarray:
    """Rotate a (S, S, C<=4) square by ``angle`` and cut the hull-aligned band from it."""
    big_side = big.shape[0]
    c = (big_side - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)  # rotates the hull axis onto +x
    m[1, 2] -= (big_side - spec.height) / 2  # keep the central band of `height` rows
    band = cv2.warpAffine(big, m, (big_side, spec.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    if big_side != spec.width:
        band = cv2.resize(band, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(band.reshape(spec.height, spec.width, -1), dtype=np.float32)


def view_maps(maps: np.ndarray, spec: InputSpec, axis_deg: float) -> np.ndarray:
    """Carry per-pixel maps of a chip (the renderer's part layers) into its view.

    The same square, resize, rotation and band as ``prepare_view`` applied with rotation
    ``axis_deg`` (its ``View.axis_deg``); outside the chip the maps are 0.

    Args:
        maps: (H, W, C) float32 coverage maps in the chip's frame.
        spec: the view's input spec.
        axis_deg: the rotation the image's view applied.

    Returns:
        (height, width, C) float32.
    """
    n = maps.shape[2]
    # Padded with 0 (no part), where the image is padded with its border colour.
    sq = maps.astype(np.float32) if spec.policy == "stretch" else _square(maps, np.zeros(n))
    out = []
    for i in range(0, n, 4):  # OpenCV's area resize takes at most 4 channels
        part = np.ascontiguousarray(sq[..., i : i + 4])
        if spec.policy != "hull_aligned":
            out.append(_resize(part, spec).reshape(spec.height, spec.width, -1))
            continue
        big_side = int(round(spec.width * spec.across_scale))
        interp = cv2.INTER_AREA if sq.shape[0] > big_side else cv2.INTER_LINEAR
        big = cv2.resize(part, (big_side, big_side), interpolation=interp)
        out.append(_band(big.reshape(big_side, big_side, -1), spec, axis_deg,
                         (0.0,) * part.shape[2]))
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
