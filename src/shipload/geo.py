"""Centre longitude/latitude of a georeferenced GeoTIFF chip (geographic or UTM), no GDAL."""

from __future__ import annotations

import io
import math
from pathlib import Path

GEOKEY_PROJECTED_CRS = 3072
GEOKEY_GEOGRAPHIC_CRS = 2048


def utm_to_lonlat(easting: float, northing: float, zone: int, north: bool) -> tuple[float, float]:
    """Inverse transverse Mercator on WGS 84 (Snyder's series; sub-metre for chips).

    Returns:
        (lon, lat) in degrees.
    """
    a, f, k0 = 6378137.0, 1 / 298.257223563, 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    x = easting - 500000.0
    y = northing if north else northing - 10000000.0
    m = y / k0
    mu = m / (a * (1 - e2 / 4 - 3 * e2**2 / 64 - 5 * e2**3 / 256))
    e1 = (1 - math.sqrt(1 - e2)) / (1 + math.sqrt(1 - e2))
    phi1 = (mu + (3 * e1 / 2 - 27 * e1**3 / 32) * math.sin(2 * mu)
            + (21 * e1**2 / 16 - 55 * e1**4 / 32) * math.sin(4 * mu)
            + (151 * e1**3 / 96) * math.sin(6 * mu) + (1097 * e1**4 / 512) * math.sin(8 * mu))
    s, c, t = math.sin(phi1), math.cos(phi1), math.tan(phi1)
    n1 = a / math.sqrt(1 - e2 * s * s)
    t1, c1 = t * t, ep2 * c * c
    r1 = a * (1 - e2) / (1 - e2 * s * s) ** 1.5
    d = x / (n1 * k0)
    lat = phi1 - (n1 * t / r1) * (d * d / 2 - (5 + 3 * t1 + 10 * c1 - 4 * c1 * c1 - 9 * ep2)
                                  * d**4 / 24 + (61 + 90 * t1 + 298 * c1 + 45 * t1 * t1
                                                 - 252 * ep2 - 3 * c1 * c1) * d**6 / 720)
    lon = (d - (1 + 2 * t1 + c1) * d**3 / 6 + (5 - 2 * c1 + 28 * t1 - 3 * c1 * c1 + 8 * ep2
                                                + 24 * t1 * t1) * d**5 / 120) / c
    lon0 = math.radians((zone - 1) * 6 - 180 + 3)
    return math.degrees(lon0 + lon), math.degrees(lat)


def centre_lonlat(source: str | Path | bytes) -> tuple[float, float] | None:
    """Centre (lon, lat) of a GeoTIFF in EPSG:4326 or a WGS 84 UTM zone; None otherwise.

    Args:
        source: the file, or its bytes when they are already in memory (no second read).
    """
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tf:
            page = tf.pages[0]
            tags = page.tags  # type: ignore[union-attr]
            tie = tags.get(33922)
            scale = tags.get(33550)
            keys = tags.get(34735)
            if tie is None or scale is None or keys is None:
                return None
            h, w = page.shape[:2] if page.planarconfig != 2 else page.shape[1:3]  # type: ignore[union-attr]
            tv, sv, kv = tie.value, scale.value, keys.value
    except Exception:
        return None
    geo = {kv[i]: kv[i + 3] for i in range(4, 4 + 4 * kv[3], 4)}
    x = tv[3] + (w / 2 - tv[0]) * sv[0]
    y = tv[4] - (h / 2 - tv[1]) * sv[1]
    epsg = geo.get(GEOKEY_PROJECTED_CRS) or geo.get(GEOKEY_GEOGRAPHIC_CRS)
    if epsg == 4326:
        return float(x), float(y)
    if epsg and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        return utm_to_lonlat(x, y, epsg % 100, epsg < 32700)
    return None
