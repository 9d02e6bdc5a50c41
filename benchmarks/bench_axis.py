"""Hull-axis estimate: the structure tensor alone against the centre-line vote, side by side.

    python benchmarks/bench_axis.py [--n 200]

On renderer chips of three kinds (plain; a quay alongside and a neighbour; the training looks,
15 % with a jetty across the water), prints the share of chips whose estimated axis is more
than 10 degrees off the true heading, and the median error, for both estimators.
"""

from __future__ import annotations

import argparse
import dataclasses

import cv2
import numpy as np

from shipload.synth import SynthConfig, render, sample_scene
from shipload.synth.params import AppearanceConfig
from shipload.view import _orientation_tensor, axis_from_heading, hull_axis_deg


def tensor_only(img: np.ndarray) -> float:
    """The earlier estimator: one structure tensor over a centred Gaussian window."""
    s = img.shape[0]
    g = cv2.GaussianBlur(img.mean(axis=2, dtype=np.float32), (0, 0), 2.0 * s / 160)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    r = np.arange(s, dtype=np.float32) - (s - 1) / 2
    w1 = np.exp(-(r**2) / (2 * (0.2 * s) ** 2))
    return _orientation_tensor(gx, gy, w1[:, None] * w1[None, :] / (np.hypot(gx, gy) + 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    cfg = SynthConfig()
    kinds = {
        "plain": cfg,
        "quay + neighbour": dataclasses.replace(cfg, nuisance=dataclasses.replace(
            cfg.nuisance, quay=1.0, neighbour=0.5)),
        "training looks (15 % jetty)": dataclasses.replace(
            cfg, appearance=AppearanceConfig(randomize=True)),
    }
    print(f"{'chips':<30}{'tensor >10 deg':>16}{'median':>8}{'vote >10 deg':>14}{'median':>8}")
    for name, c in kinds.items():
        e_old, e_new = [], []
        for i in range(a.n):
            s = sample_scene(c, 11, i)
            sq = cv2.resize(render(s).rgb, (160, 160), interpolation=cv2.INTER_AREA)
            true = axis_from_heading(s.heading_deg)
            for est, errs in ((tensor_only, e_old), (hull_axis_deg, e_new)):
                errs.append(abs((est(sq) - true + 90) % 180 - 90))
        o, w = np.array(e_old), np.array(e_new)
        print(f"{name:<30}{(o > 10).mean():>16.3f}{np.median(o):>8.1f}{(w > 10).mean():>14.3f}"
              f"{np.median(w):>8.1f}")


if __name__ == "__main__":
    main()
