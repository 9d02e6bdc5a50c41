"""How much of the physical bound a hull-aligned view of each height can reach.

    python scripts/view_bound.py [--train data/train7/labels.csv] [--heights 80 96 120 160]

For each view height (160 columns, ``across_scale`` 2) the oracle reads the accommodation-block
shadow only as far as the view's band holds it (``shipload.oracle.super_shadow_in_chip``); the
last row reads all the chip holds. Each figure is the mean of three oracle fits, on the
5,000-chip held-out set. This chose stage 7's 120-row view (models/README.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from shipload.oracle import oracle_bound

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=REPO / "data" / "train7" / "labels.csv")
    ap.add_argument("--heldout", type=Path, default=REPO / "data" / "heldout" / "labels.csv")
    ap.add_argument("--heights", type=int, nargs="+", default=[80, 96, 120, 160])
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--across-scale", type=float, default=2.0)
    a = ap.parse_args()
    for p in (a.train, a.heldout):
        if not p.exists():
            raise SystemExit(f"{p} not found: render it with `shipload synth` (see the Makefile)")
    torch.set_num_threads(2)
    print("| view | band each side (chip) | all | " + " | ".join(
        ("0.3-0.6", "0.6-1.2", "1.2-3")) + " |")
    print("|---|---|---|---|---|---|")
    for h in [*a.heights, None]:
        band = None if h is None else h / (2 * a.across_scale * a.width)
        b = oracle_bound(a.train, a.heldout, view_band=band)["accuracy"]
        name = "whole chip" if h is None else f"{h}x{a.width}"
        print(f"| {name} | {'-' if band is None else f'{band:.3f}'} | "
              + " | ".join(f"{b[k]:.3f}" for k in ("all", "0.3-0.6", "0.6-1.2", "1.2-3")) + " |")


if __name__ == "__main__":
    main()
