"""The sensor: area downsampling, MTF blur, white balance, noise, quantisation and encoding."""

from __future__ import annotations

import cv2
import numpy as np

from shipload.synth.params import Scene


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Area-average a supersampled (S*k, S*k, C) canvas to (size, size, C)."""
    if img.shape[0] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def expose(img: np.ndarray, s: Scene, rng: np.random.Generator) -> np.ndarray:
    """Apply MTF blur, white balance and noise to a float RGB radiance image.

    Args:
        img: (H, W, 3) float32 reflectance-like values.
        s: the scene (holds the sensor draws).
        rng: the chip's generator.

    Returns:
        (H, W, 3) float32 clipped to [0, 1].
    """
    if s.mtf_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), s.mtf_sigma_px, borderType=cv2.BORDER_REFLECT)
    img = img * np.array(s.white_balance, np.float32)
    # Shot-like noise grows with signal; read noise is flat. The floor keeps the root real
    # where a look's water or texture dips below zero radiance (a NaN there became 0 in
    # to_uint8's cast, a black pixel the renderer never meant).
    sig = s.noise_std * np.sqrt(np.maximum(0.3 + img, 0.0))
    img = img + sig * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] RGB → uint8 RGB with a display gamma (satellite products are stretched)."""
    return np.round(np.power(img, 1 / 1.6) * 255.0).astype(np.uint8)


def to_uint16(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] reflectance → uint16 scaled by 10,000 (the usual surface-reflectance DN)."""
    return np.round(img * 10000.0).astype(np.uint16)


def encode(img8: np.ndarray, jpeg_quality: int) -> tuple[bytes, str]:
    """Encode an (H, W, 3) uint8 RGB chip as PNG (quality 0) or JPEG.

    Returns:
        (bytes, file extension).
    """
    bgr = cv2.cvtColor(img8, cv2.COLOR_RGB2BGR)
    if jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        ext = ".jpg"
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        ext = ".png"
    if not ok:
        raise RuntimeError("OpenCV failed to encode a chip")
    return buf.tobytes(), ext
