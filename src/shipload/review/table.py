"""Predict's rows as the review page sees them: order, filters, counts and live accuracy."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipload.bands import GSD_BANDS, band_label
from shipload.batch import chip_file, read_rows
from shipload.contract import GEOMETRY_FIELDS, parse_float
from shipload.errors import UsageError
from shipload.inference import sidecar_path
from shipload.review.store import Event

PAGE_SIZE = 48
"""Chips per page of the grid."""

STATES = ("all", "unlabelled", "labelled", "disagree")
"""Label-state filters."""


def gsd_band(gsd: float) -> str:
    """The GSD band a chip falls in (``unknown`` without a GSD, ``other`` outside 0.3-3 m)."""
    if not math.isfinite(gsd):
        return "unknown"
    for i, (lo, hi) in enumerate(GSD_BANDS):
        if lo <= gsd < hi or (i == len(GSD_BANDS) - 1 and gsd == hi):
            return band_label(lo, hi)
    return "other"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of k successes in n (95 % by default); (nan, nan) for n=0."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


@dataclass
class Chip:
    """One prediction row.

    Attributes:
        i: its index in the predictions file (the id the app serves it by).
        key: its ``path`` exactly as the row names it (the labels' key).
        file: the chip file it resolves to.
        p_laden, load_fraction, freeboard_m, gsd_m: the model's outputs and the GSD (NaN
            when absent).
        call: ``empty``, ``laden``, or '' for an error row.
        error: predict's error for the row ('' when it was called).
        row: the whole row (geometry and passed-through columns included).
    """

    i: int
    key: str
    file: Path
    p_laden: float
    load_fraction: float
    freeboard_m: float
    gsd_m: float
    call: str
    error: str
    row: dict[str, str]

    def geometry(self) -> dict[str, float]:
        """The geometry fields the row carries, else those of the chip's sidecar JSON."""
        geo = {f: parse_float(self.row.get(f)) for f in (*GEOMETRY_FIELDS, "heading_deg")}
        geo = {k: v for k, v in geo.items() if math.isfinite(v)}
        side = sidecar_path(self.file)
        if not geo and side.is_file():
            try:
                data = json.loads(side.read_text())
            except (OSError, ValueError):
                return {}
            if isinstance(data, dict):
                for k in (*GEOMETRY_FIELDS, "heading_deg"):
                    v = parse_float(data.get(k))
                    if math.isfinite(v):
                        geo[k] = v
        return geo


class Table:
    """All prediction rows, in active-learning order (least sure first; error rows last).

    Args:
        predictions: predict's output (CSV, JSONL or Parquet).
        root: where relative chip paths are looked up when they do not resolve from the
            working folder (default: the predictions file's folder).

    Raises:
        UsageError: no such file, no rows, or rows without ``path`` and ``p_laden``.
    """

    def __init__(self, predictions: str | Path, root: str | Path | None = None) -> None:
        self.source = Path(predictions)
        rows = read_rows(self.source)
        if not rows:
            raise UsageError(f"{self.source}: no rows; give the output of `shipload predict`")
        missing = [c for c in ("path", "p_laden") if c not in rows[0]]
        if missing:
            raise UsageError(f"{self.source}: no {' or '.join(missing)} column; give the output "
                             "of `shipload predict`")
        base = Path(root) if root is not None else self.source.parent
        self.chips: list[Chip] = []
        self.by_key: dict[str, int] = {}
        for i, r in enumerate(rows):
            key = r.get("path", "")
            file = chip_file(key, base)
            prob = parse_float(r.get("p_laden"))
            ok = r.get("status", "ok") in ("ok", "") and math.isfinite(prob)
            call = ("laden" if prob >= 0.5 else "empty") if ok else ""
            self.chips.append(Chip(i, key, file, prob, parse_float(r.get("load_fraction")),
                                   parse_float(r.get("freeboard_m")), parse_float(r.get("gsd_m")),
                                   call, "" if ok else (r.get("error") or "no prediction"), r))
            self.by_key.setdefault(key, i)
        probs = np.array([c.p_laden for c in self.chips])
        margin = np.where(np.isfinite(probs), np.abs(probs - 0.5), np.inf)
        self.order = np.argsort(margin, kind="stable")  # least sure first
        self.bands = [gsd_band(c.gsd_m) for c in self.chips]
        self._text = [" ".join([c.key, c.error, *c.row.values()]).lower() for c in self.chips]
        self._by_file: dict[str, str] | None = None

    def key_of_file(self, file: str) -> str | None:
        """The predictions key of an absolute chip path, or None when it is not among them."""
        if self._by_file is None:  # built on first use: resolving 50k paths takes a while
            self._by_file = {str(c.file.resolve()): c.key for c in self.chips}
        return self._by_file.get(file)

    def select(self, labels: dict[str, Event], call: str = "all", band: str = "all",
               state: str = "all", text: str = "") -> list[int]:
        """Row indices passing the filters, in active-learning order.

        Args:
            labels: the current label of each labelled key.
            call: ``all``, ``empty``, ``laden`` or ``error``.
            band: ``all`` or a GSD band name (``gsd_band``).
            state: one of ``STATES``.
            text: a case-insensitive substring of any of the row's values.
        """
        t = text.strip().lower()
        out = []
        for i in self.order.tolist():
            c = self.chips[i]
            if call != "all" and (c.call or "error") != call:
                continue
            if band != "all" and self.bands[i] != band:
                continue
            if state != "all":
                lab = labels.get(c.key)
                if state == "unlabelled" and lab is not None:
                    continue
                if state == "labelled" and lab is None:
                    continue
                if state == "disagree" and not (lab and lab.label in ("empty", "laden")
                                                and c.call and lab.label != c.call):
                    continue
            if t and t not in self._text[i]:
                continue
            out.append(i)
        return out

    def counts(self, labels: dict[str, Event]) -> dict[str, Any]:
        """Labelled, unsure, agreements and disagreements, and the model's accuracy so far.

        The accuracy counts chips labelled empty or laden that the model called; its 95 %
        interval is Wilson's.
        """
        agree = disagree = unsure = labelled = 0
        for key, e in labels.items():
            i = self.by_key.get(key)
            if i is None:
                continue
            labelled += 1
            if e.label == "unsure":
                unsure += 1
                continue
            call = self.chips[i].call
            if call:
                agree += int(call == e.label)
                disagree += int(call != e.label)
        n = agree + disagree
        lo, hi = wilson(agree, n)
        return {"chips": len(self.chips), "labelled": labelled, "unsure": unsure,
                "agree": agree, "disagree": disagree,
                "accuracy": agree / n if n else None,
                "interval": [lo, hi] if n else None}
