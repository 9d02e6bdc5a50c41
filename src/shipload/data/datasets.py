"""Labelled chips on disk: a CSV manifest or an ImageFolder tree → records → a torch Dataset."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from shipload import CLASSES
from shipload.contract import parse_float
from shipload.data.io import IMAGE_EXTENSIONS, read_chip
from shipload.errors import DataError
from shipload.view import GEO_DIM, GeometryError, View, parse_geometry

SPLITS = ("train", "val", "test")


@dataclass
class Record:
    """One labelled chip.

    Attributes:
        path: absolute path of the image.
        label: class index (0 empty, 1 laden).
        load_fraction: 0-1, or NaN when unknown (its loss is then masked).
        gsd_m: ground sample distance, or NaN when unknown.
        split: ``train``/``val``/``test`` or empty when not given.
        meta: other manifest columns, as strings.
    """

    path: Path
    label: int
    load_fraction: float = math.nan
    gsd_m: float = math.nan
    split: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    geometry: dict[str, float] = field(default_factory=dict)
    heading_deg: float | None = None
    freeboard_m: float = math.nan


def read_manifest(path: str | Path, check_files: bool = True) -> list[Record]:
    """Read a ``path,label[,load_fraction,split,gsd_m,...]`` CSV; paths are relative to it.

    Raises:
        DataError: no such file, missing columns, an unknown label or split, a path that
            escapes the manifest's folder, a missing image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    root = path.parent.resolve()
    records: list[Record] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in ("path", "label") if c not in cols]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; a manifest needs 'path,label' "
                            "and may add load_fraction, split, gsd_m")
        for line, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip()
            if label not in CLASSES:
                raise DataError(f"{path}:{line}: unknown label {label!r}; "
                                f"use one of {list(CLASSES)}")
            p = (root / row["path"]).resolve()
            if not p.is_relative_to(root):
                raise DataError(f"{path}:{line}: path {row['path']!r} escapes the manifest's "
                                f"folder {root}; keep images under it")
            if check_files and not p.is_file():
                raise DataError(f"{path}:{line}: image not found: {p}")
            split = (row.get("split") or "").strip()
            if split and split not in SPLITS:
                raise DataError(f"{path}:{line}: unknown split {split!r}; use {list(SPLITS)}")
            meta = {k: v for k, v in row.items()
                    if k not in ("path", "label", "load_fraction", "gsd_m", "split") and k}
            try:
                geo = parse_geometry(row, "manifest")
            except GeometryError as e:
                raise DataError(f"{path}:{line}: {e}") from None
            heading = geo.pop("heading_deg", None)
            records.append(Record(p, CLASSES.index(label), parse_float(row.get("load_fraction")),
                                  parse_float(row.get("gsd_m")), split, meta, geo, heading,
                                  parse_float(row.get("freeboard_m"))))
    if not records:
        raise DataError(f"{path}: manifest has no rows")
    return records


def read_image_folder(root: str | Path) -> list[Record]:
    """Read ``root/{empty,laden}/*`` or ``root/{train,val,test}/{empty,laden}/*``.

    Raises:
        DataError: a class folder missing or empty, or an unexpected folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    split_dirs = [d for d in subdirs if d in SPLITS]
    bases = [(root / s, s) for s in split_dirs] if split_dirs else [(root, "")]
    records: list[Record] = []
    for base, split in bases:
        names = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
        extra = [n for n in names if n not in CLASSES]
        if extra:
            raise DataError(f"{base}: unexpected folder(s) {extra}; class folders must be "
                            f"{list(CLASSES)}")
        for ci, cname in enumerate(CLASSES):
            d = base / cname
            if not d.is_dir():
                raise DataError(f"{base}: class folder '{cname}/' is missing; an ImageFolder tree "
                                f"needs {list(CLASSES)}")
            files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise DataError(f"{d}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
            records += [Record(p.resolve(), ci, split=split) for p in files]
    return records


def load_records(data: str | Path) -> list[Record]:
    """Records from a manifest CSV, a folder holding ``labels.csv``, or an ImageFolder tree."""
    p = Path(data)
    if p.suffix.lower() == ".csv":
        recs = read_manifest(p)
    elif (p / "labels.csv").is_file():
        recs = read_manifest(p / "labels.csv")
    else:
        recs = read_image_folder(p)
    present = {r.label for r in recs}
    if len(present) < 2:
        only = CLASSES[present.pop()] if present else "none"
        raise DataError(f"{data}: every chip is '{only}'; training needs both {list(CLASSES)}")
    return recs


def stratified_split(records: Sequence[Record], seed: int, val_fraction: float = 0.1,
                     test_fraction: float = 0.1) -> dict[str, list[Record]]:
    """Split by the records' own ``split`` when every record has one, else seeded and stratified.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.
    """
    if records and all(r.split for r in records):
        return {s: [r for r in records if r.split == s] for s in SPLITS}
    rng = np.random.default_rng(seed)
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for label in range(len(CLASSES)):
        group = [r for r in records if r.label == label]
        idx = rng.permutation(len(group))
        n_val = max(1, round(val_fraction * len(group))) if val_fraction > 0 else 0
        n_test = max(1, round(test_fraction * len(group))) if test_fraction > 0 else 0
        for j, i in enumerate(idx):
            s = "val" if j < n_val else "test" if j < n_val + n_test else "train"
            out[s].append(group[i])
    for s in SPLITS:
        out[s].sort(key=lambda r: str(r.path))
    return out


def write_splits(splits: dict[str, list[Record]], path: str | Path) -> None:
    """Write the split actually used (path, label, split) so a run can be audited and repeated."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for s, recs in splits.items():
            for r in recs:
                w.writerow([str(r.path), CLASSES[r.label], s])


def sample(r: Record, view: View, i: int) -> dict[str, Any]:
    """One training item from a record and its view."""
    return item(view, r.label, r.load_fraction, r.freeboard_m, r.gsd_m, i)


def item(view: View, label: int, load_fraction: float, freeboard_m: float, gsd_m: float,
         i: int) -> dict[str, Any]:
    """A training item, as the task reads it.

    ``image`` (3, H, W) float32 in [0, 1], ``geometry`` (G,) float32, ``label`` int64,
    ``load_fraction``, ``freeboard_m`` and ``gsd_m`` float32 (NaN when
    unknown: their losses and metrics are masked), ``index`` int64.
    """
    return {
        "image": torch.from_numpy(np.ascontiguousarray(view.image.transpose(2, 0, 1))),
        "geometry": torch.from_numpy(np.asarray(view.geometry, np.float32)),
        "label": torch.tensor(label, dtype=torch.long),
        "load_fraction": torch.tensor(load_fraction, dtype=torch.float32),
        "freeboard_m": torch.tensor(freeboard_m, dtype=torch.float32),
        "gsd_m": torch.tensor(gsd_m, dtype=torch.float32),
        "index": torch.tensor(i, dtype=torch.long),
    }


class ChipDataset(Dataset[dict[str, Any]]):
    """Reads chips and turns them (with their manifest geometry) into training items."""

    def __init__(self, records: Sequence[Record], transform: Callable[..., View]):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        return sample(r, self.transform(read_chip(r.path), r.geometry, r.heading_deg), i)


class CachedViewDataset(Dataset[dict[str, Any]]):
    """Like ``ChipDataset`` but over views prepared once: uint8 (N, H, W, 3) and (N, G).

    ``transform`` (if any) acts on the view. Cuts the per-epoch cost of decoding and aligning
    every chip, which dominates CPU training on a fixed data set.
    """

    def __init__(self, records: Sequence[Record], views: np.ndarray, geometry: np.ndarray,
                 transform: Callable[[View], View] | None = None):
        self.records = list(records)
        self.views = views
        self.geometry = geometry
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        v = View(self.views[i].astype(np.float32) * np.float32(1 / 255), self.geometry[i], 0.0,
                 "cache")
        if self.transform is not None:
            v = self.transform(v)
        return sample(r, v, i)


__all__ = ["GEO_DIM", "SPLITS", "CachedViewDataset", "ChipDataset", "Record", "item",
           "load_records", "read_manifest", "sample", "stratified_split", "write_splits"]
