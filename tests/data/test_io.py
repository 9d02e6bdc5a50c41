"""read_chip on the chips users have, and the errors on the ones they should not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from shipload.data.io import ChipError, read_bytes, read_chip
from shipload.view import InputSpec, prepare_chip


@pytest.fixture()
def rgb8() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def test_png_rgb8_exact(tmp_path: Path, rgb8: np.ndarray) -> None:
    p = tmp_path / "a.png"
    Image.fromarray(rgb8).save(p)
    out = read_chip(p)
    assert out.dtype == np.float32 and out.shape == (40, 60, 3)
    np.testing.assert_allclose(out, rgb8 / 255.0, atol=1e-6)


def test_grey_and_rgba(tmp_path: Path, rgb8: np.ndarray) -> None:
    Image.fromarray(rgb8[..., 0]).save(tmp_path / "g.png")
    g = read_chip(tmp_path / "g.png")
    assert g.shape == (40, 60, 3) and np.array_equal(g[..., 0], g[..., 2])
    rgba = np.concatenate([rgb8, np.full((40, 60, 1), 7, np.uint8)], 2)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_chip(tmp_path / "a.png"), rgb8 / 255.0, atol=1e-6)


def test_jpeg_exif_orientation(tmp_path: Path, rgb8: np.ndarray) -> None:
    im = Image.fromarray(rgb8)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    assert read_chip(tmp_path / "o.jpg").shape == (60, 40, 3)


def test_16bit_single_band_stretch(tmp_path: Path) -> None:
    arr = np.linspace(100, 4000, 50 * 50).reshape(50, 50).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), arr)
    out = read_chip(tmp_path / "g16.png")
    assert out.shape == (50, 50, 3)
    assert out.min() == 0.0 and out.max() == 1.0  # p0.5-p99.5 stretch saturates the ends
    assert np.all(np.diff(out[..., 0].ravel()) >= 0)  # monotone


def test_4band_16bit_tiff_planar_and_bands(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 10000, (4, 32, 48), dtype=np.uint16)  # (bands, H, W)
    tifffile.imwrite(tmp_path / "p.tif", arr, photometric="minisblack", planarconfig="separate")
    out = read_chip(tmp_path / "p.tif")
    assert out.shape == (32, 48, 3)
    bgr = read_chip(tmp_path / "p.tif", bands=(2, 1, 0))
    np.testing.assert_allclose(bgr[..., 0], out[..., 2], atol=1e-6)
    with pytest.raises(ChipError, match="bands"):
        read_chip(tmp_path / "p.tif", bands=(0, 1, 7))


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"this is not an image at all", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image|corrupt"),
])
def test_bad_files(tmp_path: Path, content: bytes, match: str) -> None:
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ChipError, match=match):
        read_chip(p)


def test_truncated_png(tmp_path: Path, rgb8: np.ndarray) -> None:
    p = tmp_path / "t.png"
    Image.fromarray(rgb8).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ChipError):
        read_chip(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ChipError, match="not found"):
        read_chip(tmp_path / "nope.png")


def test_decompression_bomb_refused_from_header(tmp_path: Path) -> None:
    # A 1-bit 30000 x 30000 PNG is tiny on disk but 900 MP when decoded.
    p = tmp_path / "bomb.png"
    Image.new("1", (30000, 30000)).save(p)
    assert p.stat().st_size < 2_000_000
    with pytest.raises(ChipError, match="MP"):
        read_chip(p)


def test_resize_policies() -> None:
    img = np.zeros((30, 60, 3), np.float32)
    img[:, :, 2] = 0.5
    lb = prepare_chip(img, InputSpec(32, 32, "letterbox"))
    assert lb.shape == (32, 32, 3)
    np.testing.assert_allclose(lb[0, 0], [0, 0, 0.5], atol=1e-6)  # padded with border colour
    assert prepare_chip(img, InputSpec(32, 32, "stretch")).shape == (32, 32, 3)


def test_decoding_bytes_already_read(tmp_path: Path, rgb8: np.ndarray) -> None:
    """predict reads each file once and decodes from those bytes: same pixels, same errors."""
    Image.fromarray(rgb8).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgb8, photometric="rgb")
    for name in ("a.png", "a.tif"):
        p = tmp_path / name
        np.testing.assert_array_equal(read_chip(p, data=read_bytes(p)), read_chip(p))
    with pytest.raises(ChipError, match="empty"):
        read_chip(tmp_path / "a.png", data=b"")
    with pytest.raises(ChipError, match="not found"):
        read_bytes(tmp_path / "missing.png")
    with pytest.raises(ChipError, match="corrupt|not a readable"):
        read_chip(tmp_path / "x.png", data=read_bytes(tmp_path / "a.png")[:60])


def test_thumbnail_uri_is_a_png_of_the_chip_or_empty_when_unreadable(tmp_path: Path) -> None:
    import base64

    from shipload.data.io import thumbnail_uri

    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = (0, 0, 255)  # right half red (BGR)
    cv2.imwrite(str(tmp_path / "c.png"), img)
    uri = thumbnail_uri(tmp_path / "c.png", 24)
    assert uri.startswith("data:image/png;base64,")
    png = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8),
                       cv2.IMREAD_COLOR)
    assert png.shape == (24, 24, 3) and png[12, 20, 2] > 200 and png[12, 2, 2] < 50
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert thumbnail_uri(tmp_path / "bad.png", 24) == ""
    assert thumbnail_uri(tmp_path / "missing.png", 24) == ""
