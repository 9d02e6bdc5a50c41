"""``shipload chips``: windowed reads, CRS handling, edge and nodata ships, vendor metadata."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp

from shipload.chips import cut_chips, up_rotation_deg
from shipload.errors import UsageError
from shipload.vendor import parse_maxar_imd, read_metadata_file
from tests.conftest import write_rows

GEO = {"gsd_m": 0.5, "sun_elevation_deg": 35.0, "sun_azimuth_deg": 150.0,
       "off_nadir_deg": 12.0, "sensor_azimuth_deg": 300.0, "acquired_utc": "2024-03-02T02:00Z"}


def _scene(path: Path, crs: str, origin: tuple[float, float], res: float, size: int = 400,
           nodata: float | None = None, dtype: str = "uint8", count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    data = rng.integers(20, 200, (count, size, size)).astype(dtype)
    if nodata is not None:
        data[:, :, : size // 4] = nodata  # a nodata strip on the west
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=count,
                       dtype=dtype, crs=crs, transform=from_origin(*origin, res, res),
                       nodata=nodata) as dst:
        dst.write(data)
    return path


_ships = write_rows


def _read(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def test_utm_scene_chips_georeference_and_geometry(tmp_path: Path) -> None:
    crs = "EPSG:32653"
    (x0,), (y0,) = warp("EPSG:4326", crs, [133.07], [42.74])
    scene = _scene(tmp_path / "s.tif", crs, (x0, y0), 0.5, nodata=0)
    # Ship at the scene's centre, by lon/lat; another by x/y; one by x/y at the edge.
    (lon,), (lat,) = warp(crs, "EPSG:4326", [x0 + 100], [y0 - 100])
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(GEO))
    ships = _ships(tmp_path / "ships.csv", [
        {"vessel_id": "A", "lon": lon, "lat": lat, "x": "", "y": "", "length_m": 60,
         "heading_deg": 10, "owner": "x1"},
        {"vessel_id": "B", "lon": "", "lat": "", "x": x0 + 150, "y": y0 - 120, "length_m": "",
         "heading_deg": "", "owner": "x2"},
        {"vessel_id": "C", "lon": "", "lat": "", "x": x0 + 199, "y": y0 - 100, "length_m": 40,
         "heading_deg": "", "owner": "x3"},
    ])
    s = cut_chips(scene, ships, tmp_path / "out", side_factor=1.5, default_length_m=50,
                  metadata=meta)
    rows = _read(Path(s["manifest"]))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"] and s["counts"] == {"ok": 3}
    a = rows[0]
    assert a["owner"] == "x1" and a["acquired_utc"] == "2024-03-02T02:00Z"  # passed through
    with rasterio.open(tmp_path / "out" / a["path"]) as c:
        assert c.width == c.height == round(1.5 * 60 / 0.5)  # side = factor x length / gsd
        assert c.crs.to_epsg() == 32653 and c.count == 3 and c.nodata == 0
        cx, cy = c.xy(c.height // 2, c.width // 2)
        assert abs(cx - (x0 + 100)) < 1 and abs(cy - (y0 - 100)) < 1
    # UTM zone 53 is centred on 135E: at 133.07E the grid is turned ~1.3 deg from true north,
    # and every azimuth moves into the chip's frame by that much.
    rot = float(a["sun_azimuth_deg"]) - GEO["sun_azimuth_deg"]
    assert 1.0 < rot < 1.6  # west of the central meridian: true north leans right of up
    assert float(a["sensor_azimuth_deg"]) == pytest.approx((300.0 + rot) % 360, abs=0.01)
    assert float(a["heading_deg"]) == pytest.approx(10.0 + rot, abs=0.02)
    assert float(a["gsd_m"]) == 0.5 and float(a["sun_elevation_deg"]) == 35.0
    # The edge ship's chip is padded with nodata beyond the scene.
    with rasterio.open(tmp_path / "out" / rows[2]["path"]) as c:
        arr = c.read()
        assert (arr[:, :, -5:] == 0).all() and (arr[:, :, :5] != 0).any()


def test_geographic_scene_and_bad_ships(tmp_path: Path) -> None:
    res = 0.5 / 111_320  # ~0.5 m in degrees of latitude
    scene = _scene(tmp_path / "g.tif", "EPSG:4326", (10.0, 54.0), res, nodata=0,
                   dtype="uint16", count=4)
    ships = _ships(tmp_path / "s.csv", [
        {"vessel_id": "ok", "lon": 10.0 + 300 * res, "lat": 54.0 - 200 * res, "length_m": 50},
        {"vessel_id": "far", "lon": 11.0, "lat": 54.0, "length_m": 50},
        {"vessel_id": "nodata", "lon": 10.0 + 20 * res, "lat": 54.0 - 200 * res,
         "length_m": 50},
        {"vessel_id": "nan", "lon": "abc", "lat": 54.0, "length_m": 50},
        {"vessel_id": "range", "lon": 200, "lat": 54.0, "length_m": 50},
        {"vessel_id": "len", "lon": 10.0 + 300 * res, "lat": 54.0 - 200 * res,
         "length_m": "huge"},
    ])
    s = cut_chips(scene, ships, tmp_path / "o")
    rows = _read(Path(s["manifest"]))
    assert [r["status"] for r in rows] == ["ok", "off_scene", "nodata", "bad_position",
                                           "bad_position", "bad_length"]
    assert all(r["error"].startswith("s.csv:") for r in rows[1:])  # names file and line
    with rasterio.open(tmp_path / "o" / rows[0]["path"]) as c:
        assert c.dtypes[0] == "uint16" and c.count == 4 and c.crs.to_epsg() == 4326
        # A square of 1.6 x 50 m on the ground: 0.497 m pixels north-south, 0.294 m east-west
        assert c.height == round(80 / 0.4967) and c.width == round(80 / 0.2944)
    assert rows[1]["path"] == "" and not list((tmp_path / "o" / "chips").glob("*far*"))


def test_geojson_ships_and_existing_output(tmp_path: Path) -> None:
    res = 0.5 / 111_320
    scene = _scene(tmp_path / "g.tif", "EPSG:4326", (10.0, 54.0), res)
    gj = tmp_path / "ships.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point",
                                         "coordinates": [10.0 + 200 * res, 54.0 - 200 * res]},
         "properties": {"vessel_id": "G1", "length_m": 40}}]}))
    s = cut_chips(scene, gj, tmp_path / "o")
    assert s["counts"] == {"ok": 1}
    with pytest.raises(UsageError, match="exists"):
        cut_chips(scene, gj, tmp_path / "o")
    bad = tmp_path / "line.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
         "properties": {}}]}))
    with pytest.raises(UsageError, match="Point"):
        cut_chips(scene, bad, tmp_path / "o2")
    nocols = _ships(tmp_path / "n.csv", [{"vessel_id": "x", "easting": 1}])
    with pytest.raises(UsageError, match="lon,lat"):
        cut_chips(scene, nocols, tmp_path / "o3")
    with pytest.raises(UsageError, match="cannot open scene"):
        cut_chips(tmp_path / "n.csv", gj, tmp_path / "o4")


def test_rotated_geotransform_turns_azimuths(tmp_path: Path) -> None:
    """A scene whose grid is turned 90 degrees: true north points to the chips' right."""
    from affine import Affine

    p = tmp_path / "r.tif"
    t = Affine(0.0, 0.5, 500000.0, 0.5, 0.0, 4700000.0)  # columns go north, rows go east
    with rasterio.open(p, "w", driver="GTiff", width=100, height=100, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=t) as dst:
        dst.write(np.full((1, 100, 100), 7, np.uint8))
    with rasterio.open(p) as ds:
        (lon,), (lat,) = warp("EPSG:32633", "EPSG:4326", [500025.0], [4700025.0])
        assert up_rotation_deg(ds, lon, lat) == pytest.approx(90.0, abs=0.1)


def test_vendor_metadata(tmp_path: Path) -> None:
    # Maxar .IMD, written from its documented layout (key = value; in BEGIN_GROUP blocks).
    imd = tmp_path / "scene.IMD"
    imd.write_text(textwrap.dedent("""\
        version = "28.3";
        satId = "WV03";
        BEGIN_GROUP = IMAGE_1
            firstLineTime = 2024-03-02T02:01:13.123456Z;
            meanCollectedGSD = 0.34;
            meanSunAz = 161.2;
            meanSunEl = 31.5;
            meanSatAz = 284.9;
            meanSatEl = 70.1;
            meanOffNadirView = 17.6;
        END_GROUP = IMAGE_1
        END;
        """))
    g = read_metadata_file(imd)
    assert g == {"gsd_m": 0.34, "sun_elevation_deg": 31.5, "sun_azimuth_deg": 161.2,
                 "off_nadir_deg": 17.6, "sensor_azimuth_deg": 284.9,
                 "acquired_utc": "2024-03-02T02:01:13.123456Z"}
    assert parse_maxar_imd("meanSatEl = 70.0;")["off_nadir_deg"] == pytest.approx(20.0)
    # Planet item JSON (properties of its metadata).
    pl = tmp_path / "planet.json"
    pl.write_text(json.dumps({"type": "Feature", "id": "20240302_020113_1234", "properties": {
        "acquired": "2024-03-02T02:01:13Z", "gsd": 3.7, "sun_elevation": 28.0,
        "sun_azimuth": 158.0, "view_angle": 4.1, "satellite_azimuth": 101.0,
        "item_type": "PSScene"}}))
    g = read_metadata_file(pl)
    assert g["gsd_m"] == 3.7 and g["off_nadir_deg"] == 4.1 and g["sensor_azimuth_deg"] == 101.0
    for text, match in (("{", "not JSON"), ('{"sun_elevation_deg": 99}', "out of range"),
                        ('{"foo": 1}', "no geometry")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(UsageError, match=match):
            read_metadata_file(bad)
    with pytest.raises(UsageError, match="no such file"):
        read_metadata_file(tmp_path / "missing.json")


def test_windowed_reads_keep_memory_flat_on_a_multi_gb_scene(tmp_path: Path) -> None:
    """A 60,000 x 60,000 x 3 tiled GeoTIFF (10.8 GB uncompressed, sparse on disk): chips are
    cut with the process's peak RSS far below the scene's size."""
    big = tmp_path / "big.tif"
    n = 60_000
    with rasterio.open(big, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8",
                       crs="EPSG:32653", transform=from_origin(500000, 4800000, 0.5, 0.5),
                       tiled=True, blockxsize=512, blockysize=512, sparse_ok=True,
                       compress="deflate", nodata=0) as dst:
        for r, c in ((30_000, 30_000), (300, 59_600)):
            win = rasterio.windows.Window(c - 256, r - 256, 512, 512)  # tile-aligned or not
            dst.write(np.full((3, 512, 512), 90, np.uint8), window=win)
    assert big.stat().st_size < 50_000_000
    ships = _ships(tmp_path / "s.csv", [
        {"vessel_id": "mid", "x": 500000 + 30_000 * 0.5, "y": 4800000 - 30_000 * 0.5,
         "length_m": 100},
        {"vessel_id": "corner", "x": 500000 + 59_750 * 0.5, "y": 4800000 - 150 * 0.5,
         "length_m": 100},
    ])
    # VmHWM, this process's own peak: ru_maxrss would carry over the forking parent's peak
    # across exec (the pytest process, gigabytes after the training tests).
    code = textwrap.dedent(f"""
        import json, re
        from shipload.chips import cut_chips
        s = cut_chips({str(big)!r}, {str(ships)!r}, {str(tmp_path / 'o')!r})
        hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
        print(json.dumps([s["counts"], hwm]))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    counts, rss_kb = json.loads(res.stdout.strip().splitlines()[-1])
    assert counts == {"ok": 2}
    # Measured 89 MB (Python, NumPy, rasterio and GDAL's block cache); the scene
    # would need 10.8 GB.
    assert rss_kb < 400_000, rss_kb
