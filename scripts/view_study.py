"""How much of the framing flips the view's own errors explain: the same ships cut tight and
loose, with the view's estimates, with the true heading, and with the true heading and window.

    python scripts/view_study.py [--set in_family|held_out] [--mode plain|heading|truth] [--n 300]

The ships are the card's framing ships (scripts/evaluate_model.py: seed 31, cut at 1.1x their
length centred and at 2x, 10 % off centre). ``heading`` gives the view the renderer's true
heading (as AIS would); ``truth`` also replaces the ship search with the true centre and length
(a diagnostic: no reader of a chip has them). Prints the flip rate, the mean |dp|, each cut's
accuracy, and the view's window (in ship lengths) and axis error percentiles.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import torch
from evaluate_model import REPO, configs  # scripts/ is this script's path

import shipload.view as sv
from shipload.data.stream import chip_from_scene, scene_geometry
from shipload.export import load_model
from shipload.synth import recut, sample_scene


def _item(a: tuple[Any, ...]) -> tuple[Any, ...]:
    cfg, spec, i, scale, off, mode = a
    s = recut(sample_scene(cfg, 31, i), scale, off)
    img = chip_from_scene(s, cfg.sensor.supersample)
    side = max(img.shape[:2])
    if mode == "truth":  # the true centre and length, in the 320-px square's pixels
        k = round(spec.width * spec.across_scale) / side
        cx = ((side - 1) / 2 + s.centre_offset_px[0] + 0.5) * k - 0.5
        cy = ((side - 1) / 2 + s.centre_offset_px[1] + 0.5) * k - 0.5
        sv.hull_extent = lambda big, angle: (cx, cy, s.length_m / s.gsd_m * k)
    v = sv.prepare_view(img, spec, scene_geometry(s),
                        heading_deg=s.heading_deg if mode != "plain" else None)
    w = (v.window[2] if v.window else side) / (s.length_m / s.gsd_m)
    err = abs((v.axis_deg - sv.axis_from_heading(s.heading_deg) + 90) % 180 - 90)
    return v.image, v.geometry, int(s.label == "laden"), w, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    ap.add_argument("--set", default="in_family", choices=["in_family", "held_out"])
    ap.add_argument("--mode", default="plain", choices=["plain", "heading", "truth"])
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    m = load_model(a.model)
    cfg = configs()[a.set]
    with mp.get_context("spawn").Pool(2) as pool:
        cuts = [pool.map(_item, [(cfg, m.spec, i, scale, off, a.mode) for i in range(a.n)],
                         chunksize=16) for scale, off in ((1.1, 0.0), (2.0, 0.1))]
    net = m.net.eval()
    p = []
    for c in cuts:
        x = torch.from_numpy(np.stack([o[0] for o in c]).transpose(0, 3, 1, 2).copy())
        g = torch.from_numpy(np.stack([o[1] for o in c]))
        with torch.no_grad():
            p.append(torch.softmax(net(x, g)[0], 1)[:, 1].numpy())
    y = np.array([o[2] for o in cuts[0]])
    flips = (p[0] >= 0.5) != (p[1] >= 0.5)
    acc = [float(((q >= 0.5) == y).mean()) for q in p]
    print(f"{a.set} {a.mode}: flips {flips.mean():.3f}, mean |dp| "
          f"{np.abs(p[0] - p[1]).mean():.3f}, accuracy tight {acc[0]:.3f} loose {acc[1]:.3f}")
    for name, c in zip(("tight", "loose"), cuts):
        w, e = np.array([o[3] for o in c]), np.array([o[4] for o in c])
        wq = np.percentile(w, [5, 25, 50, 75, 95]).round(2)
        eq = np.percentile(e, [50, 75, 90, 95]).round(1)
        print(f"  {name}: window / ship length p5-p95 {wq}, axis error p50/p75/p90/p95 {eq} deg")


if __name__ == "__main__":
    main()
