"""Split a rendered manifest by conditions held out of training (robustness experiment).

    python scripts/holdout_manifest.py data/train/labels.csv --out-train data/train/robust_train.csv

Held out: sun elevation below 25 deg, any haze, green deck paint, turbid water. Rows with any
of them are dropped from the training manifest; ``--out-heldout`` lists them.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def held_out(row: dict[str, str]) -> bool:
    """True when a chip shows a condition the robustness model never sees in training."""
    return (float(row["sun_elevation_deg"]) < 25 or float(row["haze"]) > 0
            or row["deck_paint"] == "green" or row["water"] == "turbid")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--out-train", type=Path, required=True)
    ap.add_argument("--out-heldout", type=Path, default=None)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.manifest, newline="")))
    keep = [r for r in rows if not held_out(r)]
    for path, sel in ((a.out_train, keep), (a.out_heldout, [r for r in rows if held_out(r)])):
        if path is None:
            continue
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(sel)
    print(f"{len(keep)} of {len(rows)} rows kept for training")


if __name__ == "__main__":
    main()
