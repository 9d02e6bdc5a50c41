"""GeoTIFF chip centres: geographic and UTM, from the file or its bytes, and in predict's rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from shipload.geo import centre_lonlat, utm_to_lonlat
from shipload.inference import Predictor

A, F, K0 = 6378137.0, 1 / 298.257223563, 0.9996


def lonlat_to_utm(lon: float, lat: float, zone: int) -> tuple[float, float]:
    """Forward transverse Mercator (Snyder 1987, eqs. 8-9 to 8-10): an independent check."""
    e2 = F * (2 - F)
    ep2 = e2 / (1 - e2)
    phi, lam = math.radians(lat), math.radians(lon - ((zone - 1) * 6 - 180 + 3))
    n = A / math.sqrt(1 - e2 * math.sin(phi) ** 2)
    t, c, a = math.tan(phi) ** 2, ep2 * math.cos(phi) ** 2, lam * math.cos(phi)
    m = A * ((1 - e2 / 4 - 3 * e2**2 / 64 - 5 * e2**3 / 256) * phi
             - (3 * e2 / 8 + 3 * e2**2 / 32 + 45 * e2**3 / 1024) * math.sin(2 * phi)
             + (15 * e2**2 / 256 + 45 * e2**3 / 1024) * math.sin(4 * phi)
             - (35 * e2**3 / 3072) * math.sin(6 * phi))
    x = K0 * n * (a + (1 - t + c) * a**3 / 6
                  + (5 - 18 * t + t * t + 72 * c - 58 * ep2) * a**5 / 120)
    y = K0 * (m + n * math.tan(phi) * (a * a / 2 + (5 - t + 9 * c + 4 * c * c) * a**4 / 24
                                       + (61 - 58 * t + t * t + 600 * c - 330 * ep2) * a**6 / 720))
    return x + 500000.0, y if lat >= 0 else y + 10000000.0


def write_geotiff(path: Path, epsg: int, x0: float, y0: float, pixel: float,
                  shape: tuple[int, int] = (40, 60)) -> None:
    """An RGB GeoTIFF whose top-left corner is (x0, y0) in ``epsg``, ``pixel`` units a pixel."""
    geographic = epsg == 4326
    keys = [1, 1, 0, 2,
            1024, 0, 1, 2 if geographic else 1,  # GTModelType: geographic or projected
            2048 if geographic else 3072, 0, 1, epsg]
    img = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    tifffile.imwrite(path, img, photometric="rgb", extratags=[
        (33550, "d", 3, (pixel, pixel, 0.0)),  # ModelPixelScale
        (33922, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0)),  # ModelTiepoint: pixel (0, 0) → (x0, y0)
        (34735, "H", len(keys), keys),  # GeoKeyDirectory
    ])


def test_utm_inverse_on_the_central_meridian_is_exact() -> None:
    lon, lat = utm_to_lonlat(500000.0, 0.0, 31, True)
    assert lon == pytest.approx(3.0, abs=1e-12) and lat == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("lon,lat,zone", [(51.3, 25.9, 39), (-74.0, 40.7, 18), (18.4, -33.9, 34),
                                          (103.8, 1.26, 48), (29.0, 60.5, 35)])
def test_utm_inverse_round_trips_the_forward_projection(lon: float, lat: float, zone: int) -> None:
    e, n = lonlat_to_utm(lon, lat, zone)
    got = utm_to_lonlat(e, n, zone, lat >= 0)
    # 1e-6 degrees is about 0.1 m: far below a chip's pixel.
    assert got == pytest.approx((lon, lat), abs=1e-6)


def test_centre_of_geographic_and_utm_chips(tmp_path: Path) -> None:
    write_geotiff(tmp_path / "g.tif", 4326, 51.0, 26.0, 1e-5)  # 40 x 60 pixels
    lon, lat = centre_lonlat(tmp_path / "g.tif")  # type: ignore[misc]
    assert lon == pytest.approx(51.0 + 30e-5) and lat == pytest.approx(26.0 - 20e-5)

    e, n = lonlat_to_utm(56.25, 26.5, 40)  # Strait of Hormuz, UTM 40N (EPSG:32640)
    write_geotiff(tmp_path / "u.tif", 32640, e - 30 * 0.5, n + 20 * 0.5, 0.5)  # centred there
    assert centre_lonlat(tmp_path / "u.tif") == pytest.approx((56.25, 26.5), abs=1e-6)
    # From the bytes already read, the same answer (predict reads each file once).
    assert centre_lonlat((tmp_path / "u.tif").read_bytes()) == centre_lonlat(tmp_path / "u.tif")


def test_no_centre_without_a_known_crs(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    write_geotiff(tmp_path / "mercator.tif", 3857, 0.0, 0.0, 1.0)  # web Mercator: not supported
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    for name in ("plain.tif", "mercator.tif", "broken.tif"):
        assert centre_lonlat(tmp_path / name) is None


def test_predict_rows_carry_the_centre(tmp_path: Path, smoke_onnx: Path) -> None:
    write_geotiff(tmp_path / "a.tif", 4326, 51.0, 26.0, 1e-5)
    # A GeoTIFF named as a PNG is still read by its content, tags and all.
    write_geotiff(tmp_path / "b.png", 4326, 10.0, 20.0, 1e-5)
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((40, 60, 3), np.uint8), photometric="rgb")
    paths = [str(tmp_path / n) for n in ("a.tif", "b.png", "c.tif")]
    rows = [r for batch in Predictor(smoke_onnx, device="cpu").predict(paths) for r in batch]
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert (rows[0]["lon"], rows[0]["lat"]) == pytest.approx((51.0003, 25.9998))
    assert (rows[1]["lon"], rows[1]["lat"]) == pytest.approx((10.0003, 19.9998))
    assert rows[2]["lon"] is None and rows[2]["lat"] is None
