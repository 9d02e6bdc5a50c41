"""Scene mode of the renderer: a terminal imaged on several passes, tankers calling at it.

Each pass is one georeferenced GeoTIFF (UTM) with its vendor-style metadata JSON and the
positions of the ships in it (as AIS would give); the true port calls and loads are written
beside them. Every ship is drawn by the chip renderer (``render``, the same physics) and
feathered into the pass's water, so ``shipload chips`` → ``predict`` → ``tally`` can be run
end to end against a known truth.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shipload.synth import scene as sc
from shipload.synth.params import SynthConfig, sample_scene
from shipload.synth.render import render
from shipload.synth.sensor import to_uint8

# Vostochny-like terminal, Sea of Japan (UTM zone 53N: off its central meridian, so the grid
# is turned ~1.3 degrees from true north and the azimuth conversion is exercised).
ORIGIN_LONLAT = (133.07, 42.74)
EPSG = 32653
BBL_PER_TONNE = 7.33


@dataclass
class Vessel:
    """A tanker of the demo fleet."""

    vessel_id: str
    length_m: float
    dwt_t: float
    berth_xy: tuple[float, float]  # metres from the scene's centre (east, north)
    heading_deg: float  # true


@dataclass
class PortCall:
    """A true call: times and loads."""

    call_id: str
    vessel: Vessel
    arrival: datetime
    departure: datetime
    arrival_load: float
    departure_load: float

    @property
    def capacity_bbl(self) -> float:
        """Cargo capacity: ~0.95 x DWT, in barrels of crude."""
        return 0.95 * self.vessel.dwt_t * BBL_PER_TONNE


def _fleet(rng: np.random.Generator, n: int) -> list[Vessel]:
    out = []
    for i in range(n):
        length = float(rng.uniform(60, 105))
        # Berths along a quay running east-west, 150 m apart, ships moored parallel to it.
        x = -300.0 + 150.0 * i
        out.append(Vessel(f"IMO{9100001 + i}", length, float(rng.uniform(1500, 6000)),
                          (x, -60.0 - 40.0 * (i % 2)), 90.0 + 180.0 * (i % 2)))
    return out


def _calls(rng: np.random.Generator, fleet: list[Vessel], start: datetime,
           days: int) -> list[PortCall]:
    calls: list[PortCall] = []
    for v in fleet:
        t = start + timedelta(hours=float(rng.uniform(6, 40)))
        k = 0
        while t < start + timedelta(days=days - 2):
            stay = timedelta(hours=float(rng.uniform(30, 60)))
            discharge = rng.random() < 0.25
            lo, hi = float(rng.uniform(0.0, 0.08)), float(rng.uniform(0.9, 1.0))
            calls.append(PortCall(f"{v.vessel_id}-{k}", v, t, t + stay,
                                  hi if discharge else lo, lo if discharge else hi))
            t = t + stay + timedelta(hours=float(rng.uniform(60, 110)))
            k += 1
    return calls


def write_port(out: str | Path, days: int = 8, n_vessels: int = 4, seed: int = 0,
               gsd_m: float = 0.5, size_px: int = 1600, skip_passes: tuple[int, ...] = (3,)
               ) -> dict[str, Any]:
    """Render the demo terminal: one scene per daily pass, ships, metadata and the truth.

    Args:
        out: output folder (``pass_NN.tif``, ``pass_NN.json``, ``ships_NN.csv``,
            ``calls.csv``, ``truth.csv``).
        days: days covered (one pass a day at 02:00 UTC).
        n_vessels: tankers in the fleet.
        seed: every draw follows from it.
        gsd_m: ground sample distance of the scenes.
        size_px: scene side in pixels.
        skip_passes: passes lost (cloud), so some calls are seen on one side only.

    Returns:
        A summary with the paths and the true totals.
    """
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform as warp

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    fleet = _fleet(rng, n_vessels)
    calls = _calls(rng, fleet, start, days)
    (cx,), (cy,) = warp("EPSG:4326", f"EPSG:{EPSG}", [ORIGIN_LONLAT[0]], [ORIGIN_LONLAT[1]])
    half = size_px * gsd_m / 2
    transform = from_origin(cx - half, cy + half, gsd_m, gsd_m)
    # The grid's up is turned from true north by the meridian convergence at the centre.
    (lx,), (ly,) = warp("EPSG:4326", f"EPSG:{EPSG}", [ORIGIN_LONLAT[0]], [ORIGIN_LONLAT[1] + 1e-3])
    conv = math.degrees(math.atan2(lx - cx, ly - cy))  # grid azimuth of true north
    cfg = SynthConfig()
    passes = []
    for d in range(days):
        if d in skip_passes:
            continue
        t = start + timedelta(days=d, hours=2)
        prng = np.random.default_rng([seed, d])
        geo = {"gsd": gsd_m, "sun_elevation": float(prng.uniform(20, 55)),
               "sun_azimuth": float(prng.uniform(120, 220)),
               "view_angle": float(prng.uniform(5, 30)),
               "satellite_azimuth": float(prng.uniform(0, 360)), "acquired": t.isoformat()}
        water_scene = dataclasses.replace(sample_scene(cfg, seed, 10_000 + d), chip_px=size_px,
                                          gsd_m=gsd_m, glint=0.0, water="coastal_green")
        canvas = sc.water(water_scene, prng)
        ships = []
        for c in calls:
            # In frame while in port, and within 20 h either side (anchored off its berth).
            if not (c.arrival - timedelta(hours=20) <= t <= c.departure + timedelta(hours=20)):
                continue
            mid = c.arrival + (c.departure - c.arrival) / 2
            load = c.arrival_load if t <= mid else c.departure_load
            v = c.vessel
            ships.append((v, load))
            _draw_ship(canvas, cfg, seed, d, v, load, geo, conv, gsd_m, size_px, water_scene)
        img8 = to_uint8(np.clip(canvas, 0, 1))
        name = f"pass_{d:02d}"
        with rasterio.open(out / f"{name}.tif", "w", driver="GTiff", width=size_px,
                           height=size_px, count=3, dtype="uint8", crs=f"EPSG:{EPSG}",
                           transform=transform, tiled=True, blockxsize=256, blockysize=256,
                           compress="deflate", photometric="RGB") as dst:
            dst.write(img8.transpose(2, 0, 1))
        (out / f"{name}.json").write_text(json.dumps({"type": "Feature", "id": name,
                                                      "properties": geo}, indent=2) + "\n")
        with open(out / f"ships_{d:02d}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["vessel_id", "lon", "lat", "length_m", "heading_deg"])
            for v, _ in ships:
                x, y = cx + v.berth_xy[0], cy + v.berth_xy[1]
                (lon,), (lat,) = warp(f"EPSG:{EPSG}", "EPSG:4326", [x], [y])
                w.writerow([v.vessel_id, f"{lon:.7f}", f"{lat:.7f}", f"{v.length_m:.1f}",
                            f"{v.heading_deg:.1f}"])
        passes.append(name)
    with open(out / "calls.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["call_id", "vessel_id", "port", "arrival_utc", "departure_utc", "dwt_t"])
        for c in calls:
            w.writerow([c.call_id, c.vessel.vessel_id, "Vostochny (synthetic)",
                        c.arrival.isoformat(), c.departure.isoformat(), f"{c.vessel.dwt_t:.0f}"])
    true_loaded = 0.0
    with open(out / "truth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["call_id", "arrival_load", "departure_load", "capacity_bbl", "barrels"])
        for c in calls:
            b = (c.departure_load - c.arrival_load) * c.capacity_bbl
            true_loaded += max(b, 0.0)
            w.writerow([c.call_id, f"{c.arrival_load:.3f}", f"{c.departure_load:.3f}",
                        f"{c.capacity_bbl:.0f}", f"{b:.0f}"])
    return {"passes": passes, "calls": len(calls),
            "loadings": sum(c.departure_load > c.arrival_load for c in calls),
            "true_barrels_loaded": round(true_loaded)}


def _draw_ship(canvas: np.ndarray, cfg: SynthConfig, seed: int, day: int, v: Any, load: float,
               geo: dict[str, Any], conv: float, gsd_m: float, size_px: int,
               water_scene: Any) -> None:
    """Render one ship with the pass's geometry and feather it into the canvas in place."""
    base = sample_scene(cfg, seed, 100 * day + int(v.vessel_id[-2:]))
    sc_cls = cfg.ship_classes["small"]
    pos = (v.length_m - sc_cls.length_m[0]) / (sc_cls.length_m[1] - sc_cls.length_m[0])
    fb_l = sc_cls.fb_laden_m[0] + pos * (sc_cls.fb_laden_m[1] - sc_cls.fb_laden_m[0])
    fb_b = sc_cls.fb_ballast_m[0] + pos * (sc_cls.fb_ballast_m[1] - sc_cls.fb_ballast_m[0])
    chip = int(round(1.8 * v.length_m / gsd_m)) // 2 * 2
    # The renderer's azimuths are from the image's up; the metadata's from true north.
    s = dataclasses.replace(
        base, ship_class="small", length_m=v.length_m, beam_m=v.length_m / 6.5,
        load_fraction=load, fb_laden_m=fb_l, fb_ballast_m=fb_b,
        trim_m=(1 - load) * 0.008 * v.length_m, heading_deg=v.heading_deg + conv,
        sun_elevation_deg=geo["sun_elevation"], sun_azimuth_deg=geo["sun_azimuth"] + conv,
        off_nadir_deg=geo["view_angle"], sensor_azimuth_deg=geo["satellite_azimuth"] + conv,
        gsd_m=gsd_m, chip_px=chip, centre_offset_px=(0.0, 0.0), water=water_scene.water,
        under_way=False, quay=False, neighbour=False, cloud=0.0, haze=0.0, glint=0.0,
        jpeg_quality=0, look=None)
    cx = size_px / 2 + v.berth_xy[0] / gsd_m
    cy = size_px / 2 - v.berth_xy[1] / gsd_m
    x0, y0 = int(round(cx - chip / 2)), int(round(cy - chip / 2))
    if x0 < 0 or y0 < 0 or x0 + chip > size_px or y0 + chip > size_px:
        raise ValueError(f"{v.vessel_id}: berth too close to the scene edge")
    # Drawn on the pass's own water, so the ship sits in the scene without a seam; the sensor
    # blur and noise of the chip renderer then apply to the ship's square only (mild here).
    s = dataclasses.replace(s, mtf_sigma_px=0.5, noise_std=0.004, white_balance=(1.0, 1.0, 1.0))
    win = (slice(y0, y0 + chip), slice(x0, x0 + chip))
    canvas[win] = render(s, background=canvas[win]).rgb
