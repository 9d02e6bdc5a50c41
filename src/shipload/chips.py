"""``shipload chips``: a satellite scene and ship positions → one GeoTIFF chip per ship.

Reads are windowed (rasterio): only each ship's square is read, so memory stays flat in the
scene's size. Chips keep the scene's pixel grid (north-up for a north-up scene), its CRS, its
georeference and its nodata; rows past the scene edge are padded as nodata. A chip is a square
on the ground; in a geographic (lon/lat) scene its pixels are not square, so it is not square
in pixels either, and the model sees the ship stretched: cut from a projected (UTM) scene.
The manifest ``DIR/chips.csv`` carries the geometry of the scene turned into each chip's
frame, so it goes straight into ``shipload predict``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipload.contract import GEOMETRY_FIELDS, parse_float
from shipload.errors import UsageError

AZIMUTHS = ("sun_azimuth_deg", "sensor_azimuth_deg")
MANIFEST_COLUMNS = ["path", "status", "error", "vessel_id", "lon", "lat", "length_m",
                    "heading_deg", "heading_true_deg", "acquired_utc", *GEOMETRY_FIELDS]
_KNOWN = {"lon", "lat", "x", "y", "vessel_id", "length_m", "heading_deg", "acquired_utc"}


@dataclass
class Ship:
    """One ship position from the SHIPS file.

    Attributes:
        line: where it came from (``file:line`` or ``file:feature N``), for messages.
        values: its columns (or GeoJSON properties plus lon/lat), as strings.
    """

    line: str
    values: dict[str, str] = field(default_factory=dict)


def read_ships(path: str | Path) -> list[Ship]:
    """Read a CSV (``lon,lat`` or ``x,y`` columns) or a GeoJSON of points.

    Raises:
        UsageError: a missing file, no position columns, a GeoJSON that is not points.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--ships {p}: no such file")
    if p.suffix.lower() in (".geojson", ".json"):
        try:
            data = json.loads(p.read_text())
        except ValueError as e:
            raise UsageError(f"--ships {p}: not valid GeoJSON ({e})") from None
        ships = []
        for i, feat in enumerate(data.get("features", []) if isinstance(data, dict) else []):
            geom = feat.get("geometry") or {}
            if geom.get("type") != "Point":
                raise UsageError(f"--ships {p}: feature {i} is a {geom.get('type')}; give Point "
                                 "features (lon, lat in EPSG:4326)")
            lon, lat = (geom.get("coordinates") or [None, None])[:2]
            props = {k: "" if v is None else str(v)
                     for k, v in (feat.get("properties") or {}).items()}
            ships.append(Ship(f"{p.name}:feature {i}", {**props, "lon": str(lon),
                                                        "lat": str(lat)}))
        if not ships:
            raise UsageError(f"--ships {p}: no Point features")
        return ships
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not ({"lon", "lat"} <= cols or {"x", "y"} <= cols):
            raise UsageError(f"--ships {p}: needs columns lon,lat (EPSG:4326) or x,y (the "
                             f"scene's CRS); found {sorted(cols)}")
        ships = [Ship(f"{p.name}:{n}", {k: v or "" for k, v in row.items() if k})
                 for n, row in enumerate(reader, start=2)]
    if not ships:
        raise UsageError(f"--ships {p}: no rows")
    return ships


def _num(v: str | None) -> float | None:
    x = parse_float(v)
    return x if math.isfinite(x) else None


def _metres_per_unit(crs: Any, lat: float) -> tuple[float, float]:
    """Metres per CRS unit along x and y at latitude ``lat``."""
    if crs.is_geographic:
        return 111_320.0 * math.cos(math.radians(lat)), 110_574.0
    factor = float(crs.linear_units_factor[1]) if crs.linear_units_factor else 1.0
    return factor, factor


def up_rotation_deg(ds: Any, lon: float, lat: float) -> float:
    """Where true north points in the scene's pixel grid, in degrees clockwise from up.

    An azimuth from true north becomes one from the chip's up by adding this. Non-zero for a
    rotated geotransform and, slightly, for grid convergence (a UTM scene off its central
    meridian).
    """
    from rasterio.warp import transform as warp

    xs, ys = warp("EPSG:4326", ds.crs, [lon, lon], [lat, min(lat + 1e-4, 89.9999)])
    inv = ~ds.transform
    c0, r0 = inv * (xs[0], ys[0])
    c1, r1 = inv * (xs[1], ys[1])
    return math.degrees(math.atan2(c1 - c0, -(r1 - r0)))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "ship"


def cut_chips(scene: str | Path, ships: str | Path, out: str | Path, side_factor: float = 1.6,
              default_length_m: float = 250.0, metadata: str | Path | None = None,
              max_nodata: float = 0.5, overwrite: bool = False) -> dict[str, Any]:
    """Cut one chip per ship from ``scene`` into ``out/chips/`` and write ``out/chips.csv``.

    Args:
        scene: GeoTIFF or COG, any size, 8- or 16-bit, any band count.
        ships: CSV or GeoJSON of ship positions (see ``read_ships``).
        out: output folder.
        side_factor: chip side as a multiple of the ship's length.
        default_length_m: length for ships without ``length_m``.
        metadata: the scene's geometry (``shipload.vendor.read_metadata_file``).
        max_nodata: a chip with more than this share of nodata pixels is not written.
        overwrite: replace an existing ``chips.csv``.

    Returns:
        A summary: counts per status, the manifest path.

    Raises:
        UsageError: unreadable scene, ships or metadata; bad arguments; existing output.
    """
    import rasterio
    from rasterio.warp import transform as warp
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from shipload.vendor import read_metadata_file

    if not 1.0 <= side_factor <= 4.0:
        raise UsageError(f"--side-factor must lie in 1..4, got {side_factor}")
    if not 5.0 <= default_length_m <= 500.0:
        raise UsageError(f"--default-length-m must lie in 5..500, got {default_length_m}")
    out = Path(out)
    manifest = out / "chips.csv"
    if manifest.exists() and not overwrite:
        raise UsageError(f"{manifest} exists; pass --overwrite or choose another --out")
    geo = read_metadata_file(metadata) if metadata else {}
    ship_list = read_ships(ships)
    try:
        ds = rasterio.open(scene)
    except Exception as e:
        raise UsageError(f"cannot open scene {scene}: {e}") from None
    (out / "chips").mkdir(parents=True, exist_ok=True)
    extra = sorted({k for s in ship_list for k in s.values} - _KNOWN - set(MANIFEST_COLUMNS))
    rows: list[dict[str, Any]] = []
    with ds:
        if ds.crs is None:
            raise UsageError(f"scene {scene} has no CRS; chips need a georeferenced scene")
        nodata = ds.nodata
        fill = nodata if nodata is not None else 0
        for i, ship in enumerate(ship_list):
            v = ship.values
            row: dict[str, Any] = {"path": "", "status": "ok", "error": "",
                                   "vessel_id": v.get("vessel_id", ""),
                                   "acquired_utc": v.get("acquired_utc") or geo.get(
                                       "acquired_utc", ""),
                                   **{k: v.get(k, "") for k in extra}}
            rows.append(row)

            def fail(status: str, msg: str, row: dict[str, Any] = row,
                     where: str = ship.line) -> None:
                row.update(status=status, error=f"{where}: {msg}")

            lon, lat, x, y = (_num(v.get(k)) for k in ("lon", "lat", "x", "y"))
            if lon is not None and lat is not None:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    fail("bad_position", f"lon/lat ({lon}, {lat}) out of range")
                    continue
                (x,), (y,) = warp("EPSG:4326", ds.crs, [lon], [lat])
            elif x is not None and y is not None:
                (lon,), (lat,) = warp(ds.crs, "EPSG:4326", [x], [y])
            else:
                fail("bad_position", "no numeric lon,lat or x,y")
                continue
            row.update(lon=round(lon, 7), lat=round(lat, 7))
            length = _num(v.get("length_m"))
            if v.get("length_m") and (length is None or not 5 <= length <= 500):
                fail("bad_length", f"length_m={v.get('length_m')!r} is not a length in 5..500 m")
                continue
            length = length or default_length_m
            row["length_m"] = round(length, 2)
            col, rr = ~ds.transform * (x, y)
            if not (0 <= col < ds.width and 0 <= rr < ds.height):
                fail("off_scene", f"position ({lon:.5f}, {lat:.5f}) is outside the scene")
                continue
            # A square on the ground: in a geographic scene, pixels are narrower east-west.
            mx, my = _metres_per_unit(ds.crs, lat)
            t = ds.transform
            px_w = math.hypot(t.a * mx, t.d * my)  # ground metres of one column step
            px_h = math.hypot(t.b * mx, t.e * my)  # ... of one row step
            side_m = side_factor * length
            w = max(16, int(round(side_m / px_w)))
            h = max(16, int(round(side_m / px_h)))
            c0, r0 = int(round(col - w / 2)), int(round(rr - h / 2))
            # Read only the part inside the scene; pad the rest as nodata.
            cc0, rr0 = max(c0, 0), max(r0, 0)
            cc1, rr1 = min(c0 + w, ds.width), min(r0 + h, ds.height)
            arr = np.full((ds.count, h, w), fill, dtype=ds.dtypes[0])
            arr[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = ds.read(
                window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
            empty = np.all(arr == fill, axis=0).mean() if (nodata is not None or (
                cc1 - cc0, rr1 - rr0) != (w, h)) else 0.0
            if empty > max_nodata:
                fail("nodata", f"{empty:.0%} of the chip is nodata (limit {max_nodata:.0%})")
                continue
            rot = up_rotation_deg(ds, lon, lat)
            for k in GEOMETRY_FIELDS:
                if k in geo:
                    val = float(geo[k]) + (rot if k in AZIMUTHS else 0.0)
                    row[k] = round(val % 360.0 if k in AZIMUTHS else val, 3)
            heading = _num(v.get("heading_deg"))
            if heading is not None:
                row["heading_true_deg"] = heading
                row["heading_deg"] = round((heading + rot) % 360.0, 2)
            name = f"chips/{i:05d}_{_safe(row['vessel_id'] or 'ship')}.tif"
            profile = {"driver": "GTiff", "height": h, "width": w, "count": ds.count,
                       "dtype": ds.dtypes[0], "crs": ds.crs, "nodata": fill,
                       "transform": window_transform(Window(c0, r0, w, h), ds.transform),
                       "compress": "deflate"}
            with rasterio.open(out / name, "w", **profile) as dst:
                dst.write(arr)
            row["path"] = name
    cols = MANIFEST_COLUMNS + extra
    tmp = manifest.with_name(".chips.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(manifest)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"manifest": str(manifest), "ships": len(rows), "counts": counts,
            "geometry": {k: geo[k] for k in geo}}
