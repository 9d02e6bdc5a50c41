"""Read any chip users have into float RGB (the model's view of it is ``shipload.view``).

Policy (documented in README, recorded in the ONNX metadata):

* PNG, JPEG (EXIF orientation applied), TIFF/GeoTIFF (strips or tiles, contiguous or planar).
* Bands: 1 band → grey replicated; 2 bands → grey + alpha, alpha dropped; 3 → RGB; 4 or more →
  RGB from ``bands`` (default the first three; pass e.g. ``(2, 1, 0)`` for BGRN products).
  An alpha channel in PNG is dropped.
* 8-bit data are display-ready: value / 255.
* 16-bit, 32-bit and float data are radiometric: a joint percentile stretch maps the 0.5th to
  the 99.5th percentile of the selected bands to [0, 1], then the display gamma 1/1.6 applies
  (the same gamma 8-bit products and the renderer's 8-bit chips carry).
* Images whose header declares more than ``MAX_PIXELS`` are refused before decoding.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 40_000_000  # a chip is ~100-2000 px a side; 40 MP is a scene, or a bomb
STRETCH_PERCENTILES = (0.5, 99.5)
DISPLAY_GAMMA = 1 / 1.6

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ChipError(ValueError):
    """A chip could not be read; the message names the file and what is wrong."""


def is_tiff(head: bytes) -> bool:
    """Whether ``head`` (the file's first bytes) starts a TIFF or BigTIFF."""
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _check_pixels(path: Path, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ChipError(f"{path}: image is {w}x{h} = {w * h / 1e6:.0f} MP, over the "
                        f"{max_pixels / 1e6:.0f} MP limit for a chip; cut it into chips first")


def _read_tiff(path: Path, data: bytes, max_pixels: int) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data), name=path.name) as tf:  # already read: no reopen
            page = tf.pages[0]
            shape = page.shape
            hw = [d for d in shape if d > 16][:2] or list(shape[:2])
            if len(hw) == 2:
                _check_pixels(path, int(hw[1]), int(hw[0]), max_pixels)
            arr = page.asarray()
            planar = page.planarconfig == 2 if hasattr(page, "planarconfig") else False
    except ChipError:
        raise
    except Exception as e:  # tifffile raises many types for broken files
        raise ChipError(f"{path}: not a readable TIFF ({e})") from e
    if arr.ndim == 3 and (planar or (arr.shape[0] <= 16 and arr.shape[0] < arr.shape[2])):
        arr = np.moveaxis(arr, 0, -1)  # (bands, H, W) → (H, W, bands)
    return arr


def _read_raster(path: Path, data: bytes, max_pixels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_pixels(path, im.width, im.height, max_pixels)
            fmt = im.format
            if fmt == "JPEG":
                oriented = ImageOps.exif_transpose(im)
                if oriented.mode not in ("L", "RGB"):
                    oriented = oriented.convert("RGB")
                return np.asarray(oriented)
    except ChipError:
        raise
    except Image.DecompressionBombError as e:
        raise ChipError(f"{path}: refused from its header, too many pixels (MP) for a chip; "
                        f"cut it into chips first ({e})") from e
    except Image.UnidentifiedImageError as e:
        raise ChipError(f"{path}: not a readable image: no PNG, JPEG or TIFF reader recognises "
                        "it (check that the file is complete and is an image)") from e
    except Exception as e:
        # PIL's messages can name the in-memory buffer ("<_io.BytesIO object at 0x...>").
        msg = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", str(e))
        raise ChipError(f"{path}: not a readable image ({type(e).__name__}: {msg})") from e
    # PNG and the rest: OpenCV keeps 16-bit and alpha, and is faster than PIL.
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ChipError(f"{path}: image data is corrupt or truncated")
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr


def to_rgb(arr: np.ndarray, bands: Sequence[int] | None = None, alpha: bool = False) -> np.ndarray:
    """Apply the band and bit-depth policy to a decoded array.

    Args:
        arr: (H, W) or (H, W, C) array of any integer or float dtype.
        bands: indices of the R, G, B bands when C >= 4 (default the first three).
        alpha: the last of 2 or 4 channels is alpha (PNG) and is dropped.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ChipError(f"unsupported image shape {arr.shape}")
    c = arr.shape[2]
    if c == 2 or (alpha and c == 4):
        arr, c = arr[..., : c - 1], c - 1
    if c == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif bands is not None:
        if len(bands) != 3 or max(bands) >= c or min(bands) < 0:
            raise ChipError(f"bands {list(bands)} do not select 3 of the image's {c} bands")
        arr = arr[..., list(bands)]
    else:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * np.float32(1 / 255)
    x = arr.astype(np.float32)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ChipError("image has no finite pixel values")
    lo, hi = np.percentile(finite, STRETCH_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    x = np.clip((np.nan_to_num(x, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.power(x, DISPLAY_GAMMA).astype(np.float32)


def read_bytes(path: str | Path) -> bytes:
    """A chip file's bytes, so that a caller can decode it and read its tags from one read.

    Raises:
        ChipError: missing or unreadable file (an empty one is refused by ``read_chip``).
    """
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError as e:
        raise ChipError(f"{p}: file not found") from e
    except OSError as e:
        raise ChipError(f"{p}: cannot read ({e.strerror})") from e


def read_chip(path: str | Path, bands: Sequence[int] | None = None,
              max_pixels: int = MAX_PIXELS, data: bytes | None = None) -> np.ndarray:
    """Read a chip file into float RGB.

    Args:
        path: PNG, JPEG or (Geo)TIFF file.
        bands: R, G, B band indices for images with 4 or more bands.
        max_pixels: refuse images whose header declares more pixels than this.
        data: the file's bytes when the caller has already read them (``read_bytes``);
            ``path`` then only names the file in errors.

    Returns:
        (H, W, 3) float32 in [0, 1].

    Raises:
        ChipError: missing, empty, truncated, corrupt, oversized or unsupported file.
    """
    p = Path(path)
    if data is None:
        data = read_bytes(p)
    if not data:
        raise ChipError(f"{p}: file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_tiff(data):
            arr = _read_tiff(p, data, max_pixels)
            alpha = False
        else:
            arr = _read_raster(p, data, max_pixels)
            alpha = True
    try:
        return to_rgb(arr, bands, alpha=alpha)
    except ChipError as e:
        raise ChipError(f"{p}: {e}") from e


def png_bytes(img: np.ndarray) -> bytes:
    """(H, W, 3) float RGB in [0, 1] → PNG bytes (for pages and the review app).

    Raises:
        ValueError: OpenCV could not encode the image.
    """
    im = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def thumbnail_uri(path: str | Path, size: int) -> str:
    """A ``size`` x ``size`` PNG data URI of a chip for a report page, or '' when unreadable."""
    import base64

    try:
        img = read_chip(path)
        im = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return "data:image/png;base64," + base64.b64encode(png_bytes(im)).decode()
    except (ChipError, ValueError, cv2.error):
        return ""

