"""The contract between the parts: input geometry, geometry fields, ONNX I/O and row columns.

Everything that more than one module must agree on is defined here, once; this module imports
nothing of shipload's, so every arrow points down to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Policy = Literal["hull_aligned", "letterbox", "stretch"]

# The shipped input geometry; every other default refers to these.
DEFAULT_HEIGHT = 120
DEFAULT_WIDTH = 160
DEFAULT_ACROSS_SCALE = 2.0
# The hull-aligned view's estimates of the ship's axis and extent (``InputSpec.view_version``).
VIEW_VERSIONS = (1, 2)
# The keys that carry an InputSpec in checkpoint hyper-parameters and ONNX metadata.
SPEC_KEYS = ("input_height", "input_width", "resize_policy", "across_scale", "frame_scale",
             "view_version")

# The geometry contract (same names and conventions as the renderer's labels). Azimuths are in
# degrees clockwise from the chip's up; the sun's points from the ship toward the sun, the
# sensor's from the ship toward the satellite.
GEOMETRY_FIELDS = ("gsd_m", "sun_elevation_deg", "sun_azimuth_deg", "off_nadir_deg",
                   "sensor_azimuth_deg")
# Valid ranges (inclusive bounds; gsd_m excludes 0). Azimuths may be any finite number.
GEOMETRY_RANGES: dict[str, tuple[float, float]] = {
    "gsd_m": (0.0, 10.0), "sun_elevation_deg": (0.0, 90.0), "off_nadir_deg": (0.0, 60.0),
    "sun_azimuth_deg": (-math.inf, math.inf), "sensor_azimuth_deg": (-math.inf, math.inf),
    "heading_deg": (-math.inf, math.inf),
}
# Length of the encoded geometry vector, the model's second input (``view.encode_geometry``).
GEO_DIM = 16
# The parts the auxiliary segmentation head learns (training only; not an ONNX output), in
# channel order; ``synth.render.PART_GROUPS`` says which renderer layers make each.
PART_NAMES = ("shadow", "hull_side", "band", "deck", "superstructure")


@dataclass(frozen=True)
class InputSpec:
    """Model input geometry, recorded in checkpoints and ONNX metadata.

    Attributes:
        height: input rows.
        width: input columns (the chip side maps to this many pixels).
        policy: ``hull_aligned`` (rotate, crop a band around the hull), ``letterbox`` or
            ``stretch`` (plain resizes to ``height`` x ``width``).
        across_scale: for ``hull_aligned``, how many times finer the view samples across the
            hull than along it.
        frame_scale: for ``hull_aligned``, cut the view around the ship found in the chip, a
            square this many times its estimated length (0: the whole chip, as cut).
        view_version: for ``hull_aligned``, which estimate of the hull's axis and extent cuts
            the view (``shipload.view``): 1, the one every model up to stage 13 was trained
            on; 2, the coherent-edge axis and the run-through-the-centre length. A model is
            used with the version it was trained on: models that record none are version 1.
    """

    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    policy: Policy = "hull_aligned"
    across_scale: float = DEFAULT_ACROSS_SCALE
    frame_scale: float = 0.0
    view_version: int = 1

    def __post_init__(self) -> None:
        if not (16 <= self.height <= 1024 and 16 <= self.width <= 1024):
            raise ValueError("input height and width must lie in 16..1024")
        if self.policy not in ("hull_aligned", "letterbox", "stretch"):
            raise ValueError(f"unknown resize policy {self.policy!r}")
        if not 1.0 <= self.across_scale <= 4.0:
            raise ValueError("across_scale must lie in 1..4")
        if self.frame_scale != 0 and not 1.0 <= self.frame_scale <= 3.0:
            raise ValueError("frame_scale must be 0 (the whole chip) or lie in 1..3")
        if self.view_version not in VIEW_VERSIONS:
            raise ValueError(f"view_version must be one of {VIEW_VERSIONS}, not "
                             f"{self.view_version!r}; a newer shipload may read this model")

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> InputSpec:
        """From checkpoint hyper-parameters or ONNX metadata (``input_height`` ... keys)."""
        return cls(int(d.get("input_height", DEFAULT_HEIGHT)),
                   int(d.get("input_width", DEFAULT_WIDTH)),
                   d.get("resize_policy", "hull_aligned"),
                   float(d.get("across_scale", DEFAULT_ACROSS_SCALE)),
                   float(d.get("frame_scale", 0.0)),
                   int(d.get("view_version", 1)))


def describe(spec: InputSpec) -> dict[str, Any]:
    """A JSON-able description of the input policy for checkpoints and ONNX metadata."""
    return {"height": spec.height, "width": spec.width, "policy": spec.policy,
            "across_scale": spec.across_scale, "frame_scale": spec.frame_scale,
            "view_version": spec.view_version,
            "geometry_dim": GEO_DIM,
            "geometry_fields": list(GEOMETRY_FIELDS),
            "reader": "shipload.io.chips.read_chip v1 (8-bit /255; >8-bit p0.5-p99.5 stretch, "
                      "gamma 1/1.6; RGB = first three bands)"}


# ONNX graph names (inputs, then outputs).
ONNX_INPUTS = ("image", "geometry")
ONNX_OUTPUTS = ("probabilities", "load_fraction", "freeboard_m")

# A prediction row: name → Arrow type (Parquet schema). Manifest columns that are not here
# (vessel_id, acquired_utc, ...) are passed through after these, as strings.
ROW_COLUMNS: dict[str, str] = {
    "path": "string", "label": "string", "p_laden": "float64", "load_fraction": "float64",
    "freeboard_m": "float64", "geometry_used": "string", "axis_source": "string",
    "status": "string", "error": "string", "lon": "float64", "lat": "float64",
}


def parse_float(v: Any) -> float:
    """A manifest or row value as a float: blank, missing or not a number is NaN."""
    try:
        return float(v) if v not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan
