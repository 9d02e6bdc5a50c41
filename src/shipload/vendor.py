"""Acquisition geometry from vendor metadata: a plain JSON, Maxar ``.IMD``, Planet JSON.

Every reader returns the geometry contract's fields (``shipload.contract.GEOMETRY_FIELDS``,
azimuths clockwise from *true north*) plus ``acquired_utc`` where the file has it. Turning the
azimuths into a chip's frame is the caller's job (``shipload.chips``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from shipload.errors import UsageError
from shipload.view import GeometryError, parse_geometry

# Maxar IMD keys (IMAGE_1 group) → contract fields.
_MAXAR = {"meanCollectedGSD": "gsd_m", "meanSunEl": "sun_elevation_deg",
          "meanSunAz": "sun_azimuth_deg", "meanOffNadirView": "off_nadir_deg",
          "meanSatAz": "sensor_azimuth_deg"}
# Planet / SkySat ``properties`` keys → contract fields.
_PLANET = {"gsd": "gsd_m", "sun_elevation": "sun_elevation_deg",
           "sun_azimuth": "sun_azimuth_deg", "view_angle": "off_nadir_deg",
           "satellite_azimuth": "sensor_azimuth_deg"}


def parse_maxar_imd(text: str) -> dict[str, Any]:
    """Geometry from a Maxar ``.IMD`` (``key = value;`` lines, ``BEGIN_GROUP = IMAGE_1``).

    Off-nadir comes from ``meanOffNadirView``, or ``90 - meanSatEl`` when absent (an
    approximation that ignores Earth curvature: within ~1 degree below 30 degrees).
    """
    values: dict[str, str] = {}
    for m in re.finditer(r"^\s*(\w+)\s*=\s*(.*?);?\s*$", text, re.MULTILINE):
        key, val = m.group(1), m.group(2).strip().strip('"')
        values.setdefault(key, val)  # the first IMAGE group wins
    out: dict[str, Any] = {_MAXAR[k]: values[k] for k in _MAXAR if k in values}
    if "off_nadir_deg" not in out and "meanSatEl" in values:
        out["off_nadir_deg"] = 90.0 - float(values["meanSatEl"])
    if "firstLineTime" in values:
        out["acquired_utc"] = values["firstLineTime"]
    return out


def parse_planet(data: dict[str, Any]) -> dict[str, Any]:
    """Geometry from a Planet / SkySat item (``properties`` of its metadata JSON)."""
    props = data.get("properties", data)
    out: dict[str, Any] = {_PLANET[k]: props[k] for k in _PLANET if k in props}
    if "acquired" in props:
        out["acquired_utc"] = props["acquired"]
    return out


def read_metadata_file(path: str | Path) -> dict[str, Any]:
    """Read scene geometry from a JSON (contract keys or Planet's) or a Maxar ``.IMD``.

    Returns:
        The checked contract fields (azimuths from true north) and ``acquired_utc`` if known.

    Raises:
        UsageError: a missing or unreadable file, an unknown layout, a value out of range.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--metadata {p}: no such file")
    text = p.read_text(errors="replace")
    if p.suffix.lower() == ".imd":
        raw = parse_maxar_imd(text)
        kind = "Maxar IMD"
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise UsageError(f"--metadata {p}: not JSON ({e}); give a JSON with the geometry "
                             "keys, a Planet metadata JSON or a Maxar .IMD") from None
        if not isinstance(data, dict):
            raise UsageError(f"--metadata {p}: expected a JSON object")
        props = data.get("properties", data)
        if any(k in props for k in _PLANET):
            raw, kind = parse_planet(data), "Planet"
        else:
            raw, kind = dict(data), "JSON"
    try:
        geo: dict[str, Any] = parse_geometry(raw, f"{kind} metadata {p.name}")
    except GeometryError as e:
        raise UsageError(f"--metadata {p}: {e}") from None
    geo.pop("heading_deg", None)
    if not geo:
        raise UsageError(f"--metadata {p}: no geometry fields found ({kind} layout); expected "
                         "gsd_m, sun_elevation_deg, sun_azimuth_deg, off_nadir_deg, "
                         "sensor_azimuth_deg or the vendor's names")
    if raw.get("acquired_utc"):
        geo["acquired_utc"] = str(raw["acquired_utc"])
    return geo
