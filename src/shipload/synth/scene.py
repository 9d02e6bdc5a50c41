"""The world around the tanker: water, waves, glint, wake, quay, haze and thin cloud.

Everything here is drawn at output resolution as float32 RGB in [0, 1], shape (H, W, 3).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from shipload.synth.geometry import Projector, azimuth_vector
from shipload.synth.params import WATER_COLOURS, Scene


def smooth_noise(rng: np.random.Generator, size: int, sigma: float, aniso: float = 1.0,
                 angle_deg: float = 0.0) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise, optionally stretched along ``angle_deg``.

    Returns:
        (size, size) float32.
    """
    n: np.ndarray = rng.standard_normal((size, size)).astype(np.float32)
    if aniso != 1.0:
        # Blur harder along the wind direction: waves are long-crested.
        k = max(3, int(6 * sigma * aniso) | 1)
        ker = np.zeros((k, k), np.float32)
        c = k // 2
        d = azimuth_vector(angle_deg)
        for t in np.linspace(-c, c, 2 * k):
            ker[int(round(c + t * d[1])), int(round(c + t * d[0]))] += 1
        n = cv2.filter2D(n, -1, ker / ker.sum(), borderType=cv2.BORDER_REFLECT)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    std = float(n.std())
    return n / std if std > 0 else n


def water(s: Scene, rng: np.random.Generator) -> np.ndarray:
    """Open water: colour, brightness, long-crested waves and optional sun glint."""
    size = s.chip_px
    base = np.array(WATER_COLOURS[s.water], np.float32) * rng.uniform(0.8, 1.25)
    wind = rng.uniform(0, 360)
    wave_px = max(0.6, rng.uniform(4.0, 14.0) / s.gsd_m / 4)  # wavelength scale in pixels
    waves = smooth_noise(rng, size, wave_px, aniso=1.6, angle_deg=wind)
    amp = rng.uniform(0.03, 0.10)
    img = base[None, None, :] * (1.0 + amp * waves[..., None])
    if s.glint > 0:
        # Specular facets: bright where wave slope faces the sun-sensor bisector.
        g = np.clip(waves - rng.uniform(0.8, 1.8), 0, None) ** 1.5
        img = img + s.glint * (0.06 + 0.35 * g[..., None]) * np.array([1.0, 0.98, 0.93], np.float32)
    return img.astype(np.float32)


def draw_wake(img: np.ndarray, s: Scene, proj: Projector, rng: np.random.Generator) -> None:
    """Turbulent track astern and the Kelvin wedge (19.5 deg half-angle), in place."""
    L, B = s.length_m, s.beam_m
    h = img.shape[0]
    alpha: np.ndarray = np.zeros((h, h), np.float32)
    ln = L * rng.uniform(0.8, 3.0)
    track = np.array([[-L / 2, -0.45 * B], [-L / 2 - ln, -1.2 * B], [-L / 2 - ln, 1.2 * B],
                      [-L / 2, 0.45 * B]])
    _fill(alpha, proj.ground(track) + h / 2, rng.uniform(0.25, 0.6))
    k = math.tan(math.radians(19.5))
    for side in (-1, 1):
        arm = np.array([[L / 2, side * B / 2], [L / 2 - ln, side * (B / 2 + k * ln)],
                        [L / 2 - ln, side * (B / 2 + k * ln - 0.6 * B)], [L / 2, side * 0.4 * B]])
        _fill(alpha, proj.ground(arm) + h / 2, rng.uniform(0.04, 0.15))
    sig = max(0.8, 0.08 * B / s.gsd_m)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sig)
    alpha *= np.clip(1.0 + 0.5 * smooth_noise(rng, h, sig), 0, 2)
    foam = np.array([0.75, 0.8, 0.8], np.float32)
    img += alpha[..., None] * (foam - img)


def draw_quay(img: np.ndarray, s: Scene, proj: Projector, rng: np.random.Generator) -> None:
    """A concrete quay alongside the ship (moored), with its own edge shadow, in place."""
    h = img.shape[0]
    side = 1 if rng.random() < 0.5 else -1
    gap = s.beam_m * rng.uniform(0.1, 0.6)
    far = 4 * s.length_m
    y0 = side * (s.beam_m / 2 + gap)
    poly = np.array([[-far, y0], [far, y0], [far, y0 + side * far], [-far, y0 + side * far]])
    mask = np.zeros((h, h), np.float32)
    _fill(mask, proj.ground(poly) + h / 2, 1.0)
    grey = rng.uniform(0.35, 0.6)
    tex = 1.0 + 0.05 * smooth_noise(rng, h, 1.5)
    concrete = (grey * tex)[..., None] * np.array([1.0, 0.98, 0.94], np.float32)
    img[:] = img * (1 - mask[..., None]) + concrete * mask[..., None]


def veil(img: np.ndarray, s: Scene, rng: np.random.Generator) -> np.ndarray:
    """Haze (uniform veil) and thin cloud (a smooth patch), returned as a new image."""
    out = img
    if s.haze > 0:
        colour = np.array([0.62, 0.66, 0.72], np.float32)
        out = out * (1 - s.haze) + s.haze * colour
    if s.cloud > 0:
        size = img.shape[0]
        a = smooth_noise(rng, size, size / rng.uniform(3, 8))
        a = np.clip((a + rng.uniform(-0.5, 1.0)) * 0.5, 0, 1) * s.cloud
        out = out * (1 - a[..., None]) + a[..., None] * np.float32(0.85)
    return out.astype(np.float32)


def _fill(canvas: np.ndarray, pts: np.ndarray, value: float | tuple[float, ...],
          scale: float = 1.0) -> None:
    """Fill polygon ``pts`` on ``canvas`` with sub-pixel (1/16 px) precision.

    ``pts`` are in output pixels with pixel i covering [i, i+1); ``scale`` is the supersampling
    factor of ``canvas``. OpenCV samples pixel centres at integers, hence the half-pixel shift.
    """
    p = np.round((pts * scale - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [p], value, lineType=cv2.LINE_8, shift=4)
