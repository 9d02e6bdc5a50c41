"""Hull-axis estimate: three estimators side by side on the same chips.

    python benchmarks/bench_axis.py [--n 200]

  * tensor: one structure tensor over a centred Gaussian window (the first estimator);
  * energy vote: the tensor and the orientation histogram's modes, scored by the unsigned edge
    energy in a narrow band along each (the estimator until 2026-12-04);
  * shipload: ``shipload.view.prepare_view``'s estimate (those candidates and the blob's long
    axis, scored by coherent edges along each).

On renderer chips of several kinds (plain; a quay alongside and a neighbour; the training looks,
15 % with a jetty across the water; the held-out families, all together and the paint that runs
in bands across the hull alone; and the training looks cut loose, at 2x the ship's length and
10 % off centre), prints the share of chips whose estimated axis is more than 10 and more than
30 degrees off the true heading, and the median error, for each estimator.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from shipload.synth import SynthConfig, recut, render, sample_scene
from shipload.synth.appearance import HELD_OUT
from shipload.synth.params import AppearanceConfig
from shipload.view import (
    _axis_window,
    _centred_grid,
    _histogram_36,
    _orientation_tensor,
    axis_from_heading,
    border_colour,
    hull_axis_deg,
)


def _gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = img.shape[0]
    g = cv2.GaussianBlur(img.mean(axis=2, dtype=np.float32), (0, 0), 2.0 * s / 160)
    return cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)


def tensor_only(img: np.ndarray) -> float:
    """The first estimator: one structure tensor over a centred Gaussian window."""
    gx, gy = _gradients(img)
    _, win = _axis_window(img.shape[0])
    return _orientation_tensor(gx, gy, win / (np.hypot(gx, gy) + 1e-12))


def energy_vote(img: np.ndarray) -> float:
    """The estimator before the coherent-edge score: candidates scored by edge energy."""
    s = img.shape[0]
    gx, gy = _gradients(img)
    win1, win = _axis_window(s)
    mag = np.sqrt(gx * gx + gy * gy) + 1e-12
    cands = [_orientation_tensor(gx, gy, win / mag)]
    axis = np.fmod(cv2.phase(gx, gy, angleInDegrees=True) + np.float32(90), np.float32(180))
    hist = _histogram_36(axis, win * mag)
    hist = hist + 0.5 * (np.roll(hist, 1) + np.roll(hist, -1))
    cands += [((b + 0.5) * 5.0 + 90.0) % 180.0 - 90.0 for b in np.argsort(hist)[::-1][:4]]
    if all(abs((a - cands[0] + 90) % 180 - 90) < 10 for a in cands[1:]):
        return cands[0]
    yy, xx = _centred_grid(s)
    scores = []
    for a in cands:
        t = math.radians(a)
        band = (np.abs(-xx * math.sin(t) + yy * math.cos(t)) < 0.07 * s) & (
            np.abs(xx * math.cos(t) + yy * math.sin(t)) < 0.45 * s)
        across = gy[band] * math.cos(t) - gx[band] * math.sin(t)
        scores.append(float((across * across / mag[band]).sum()))
    best = cands[int(np.argmax(scores))]
    if abs((best - cands[0] + 90) % 180 - 90) < 10 or scores[0] >= 0.9 * max(scores):
        return cands[0]
    t = math.radians(best)
    dist = np.abs(-xx * math.sin(t) + yy * math.cos(t))
    soft = np.exp(-(dist**2) / (2 * (0.06 * s) ** 2)) * win1[:, None] ** 0.5 * win1[None, :] ** 0.5
    refined = _orientation_tensor(gx, gy, soft / mag)
    return refined if abs((refined - best + 90) % 180 - 90) < 6 else best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    cfg = SynthConfig()
    looks = dataclasses.replace(cfg, appearance=AppearanceConfig(randomize=True))
    kinds: dict[str, tuple[Any, float]] = {
        "plain": (cfg, 0.0),
        "quay + neighbour": (dataclasses.replace(cfg, nuisance=dataclasses.replace(
            cfg.nuisance, quay=1.0, neighbour=0.5)), 0.0),
        "training looks (15 % jetty)": (looks, 0.0),
        "held-out families": (dataclasses.replace(looks, appearance=dataclasses.replace(
            looks.appearance, **{k: (f,) for k, f in HELD_OUT.items()})), 0.0),
        "paint in bands across (two_tone)": (dataclasses.replace(
            looks, appearance=dataclasses.replace(looks.appearance, paint=("two_tone",))), 0.0),
        "training looks, cut loose (2x)": (looks, 2.0),
    }
    names = ("tensor", "energy vote", "shipload")
    print(f"{a.n} chips a kind; per estimator: share > 10 deg, share > 30 deg, median (deg)")
    print(f"{'chips':<34}" + "".join(f"{n:>24}" for n in names))
    for name, (c, scale) in kinds.items():
        errs: list[list[float]] = [[], [], []]
        for i in range(a.n):
            s = sample_scene(c, 11, i)
            if scale:
                s = recut(s, scale, 0.1)
            img = render(s).rgb
            side = max(img.shape[:2])  # square it as prepare_view does, then its 160 px
            sq = np.empty((side, side, 3), np.float32)
            sq[:] = border_colour(img)
            y0, x0 = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
            sq[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
            sq = cv2.resize(sq, (160, 160), interpolation=cv2.INTER_AREA)
            true = axis_from_heading(s.heading_deg)
            for k, est in enumerate((tensor_only, energy_vote, hull_axis_deg)):
                errs[k].append(abs((est(sq) - true + 90) % 180 - 90))
        cells = []
        for e in map(np.array, errs):
            cells.append(f"{(e > 10).mean():.3f} {(e > 30).mean():.3f} {np.median(e):5.1f}")
        print(f"{name:<34}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
