"""The condition bands every report shares (training logs, evaluate, the oracle bound).

Bands are half-open ``[lo, hi)`` except the last of a set, which is closed, so a value at
the top of the range (GSD 3.0 m, sun 70 deg) still counts.
"""

from __future__ import annotations

from typing import Any

Bands = tuple[tuple[float, float], ...]

GSD_BANDS: Bands = ((0.3, 0.6), (0.6, 1.2), (1.2, 3.0))
"""Ground sample distance bands (m): small-tanker freeboard resolved / partly / shadow only."""

CONDITION_BANDS: dict[str, Bands] = {
    "gsd_m": GSD_BANDS,
    "sun_elevation_deg": ((15, 25), (25, 40), (40, 70)),
    "off_nadir_deg": ((0, 10), (10, 25), (25, 45)),
}
"""Manifest column → its report bands."""


def band_label(lo: float, hi: float) -> str:
    """A band's name in reports, e.g. ``0.3-0.6``."""
    return f"{lo:g}-{hi:g}"


def band_masks(values: Any, bands: Bands) -> dict[str, Any]:
    """Boolean mask of each band over ``values`` (a NumPy array or a torch tensor).

    Returns:
        ``{band_label: mask}`` in band order, empty bands included.
    """
    out = {}
    for i, (lo, hi) in enumerate(bands):
        upper = (values <= hi) if i == len(bands) - 1 else (values < hi)
        out[band_label(lo, hi)] = (values >= lo) & upper
    return out
