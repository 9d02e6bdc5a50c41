"""The hull-aligned view's estimates, version 1 against version 2, side by side on the same chips.

    python benchmarks/bench_view.py [--n 200] [--seed 11]

For each kind of chip (the training looks and the held-out families, each cut tight: 1.1x the
ship's length, centred, and loose: 2x, 10 % off centre; plain chips with a quay alongside and a
neighbour, cut loose; ships under way with their wake, cut loose) prints, for both versions of
``InputSpec.view_version``: the share of chips whose estimated axis is more than 10 and 30
degrees off the true heading, and the window the view was cut from in true ship lengths
(10th, 50th and 90th percentiles; the target is the spec's ``frame_scale``, 1.1), and the
shares of windows under 0.9 ship lengths (the hull's ends cut off) and over 1.3. The windows
are measured with the true heading given, so that they judge the ship search alone. Last, the
time of one view (estimate, search, cut) for each version, timed alternately in one process on
the same chips, and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipload.config import load_yaml
from shipload.contract import InputSpec
from shipload.data.stream import chip_from_scene
from shipload.synth import SynthConfig, recut, sample_scene
from shipload.view import axis_from_heading, prepare_view

REPO = Path(__file__).resolve().parents[1]
CUTS = {"tight": (1.1, 0.0), "loose": (2.0, 0.1)}


def kinds() -> dict[str, tuple[SynthConfig, str]]:
    """Kind name → (renderer configuration, cut)."""
    train = load_yaml(SynthConfig, REPO / "configs" / "synth_train.yaml")
    held = dataclasses.replace(train, appearance=train.appearance.held_out())
    base = load_yaml(SynthConfig, REPO / "configs" / "synth.yaml")
    quay = dataclasses.replace(base, nuisance=dataclasses.replace(
        base.nuisance, quay=1.0, neighbour=0.5))
    wake = dataclasses.replace(train, nuisance=dataclasses.replace(train.nuisance, wake=1.0))
    return {"training looks, tight": (train, "tight"), "training looks, loose": (train, "loose"),
            "held-out families, tight": (held, "tight"),
            "held-out families, loose": (held, "loose"),
            "quay + neighbour, loose": (quay, "loose"), "under way (wake), loose": (wake, "loose")}


def _measure(a: tuple[Any, ...]) -> list[tuple[float, float]]:
    """One chip: (axis error in degrees, window in ship lengths) per view version."""
    cfg, cut, seed, i = a
    s = recut(sample_scene(cfg, seed, i), *CUTS[cut])
    img = chip_from_scene(s, cfg.sensor.supersample)
    true = axis_from_heading(s.heading_deg)
    out = []
    for v in (1, 2):
        spec = InputSpec(frame_scale=1.1, view_version=v)
        est = prepare_view(img, spec)
        given = prepare_view(img, spec, heading_deg=s.heading_deg)
        side = given.window[2] if given.window else max(img.shape[:2])
        out.append((abs((est.axis_deg - true + 90) % 180 - 90), side / (s.length_m / s.gsd_m)))
    return out


def view_seconds(cfg: SynthConfig, n: int, seed: int, rounds: int = 3) -> dict[int, float]:
    """Seconds per ``prepare_view`` (image estimate) for each version, the best of ``rounds``
    alternating passes over the same ``n`` chips, loose and tight cuts alike."""
    chips = [chip_from_scene(recut(sample_scene(cfg, seed, i), *CUTS[("tight", "loose")[i % 2]]),
                             cfg.sensor.supersample) for i in range(n)]
    best = {1: float("inf"), 2: float("inf")}
    for _ in range(rounds):
        for v in (1, 2):
            spec = InputSpec(frame_scale=1.1, view_version=v)
            t = time.perf_counter()
            for img in chips:
                prepare_view(img, spec)
            best[v] = min(best[v], (time.perf_counter() - t) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    print(f"{a.n} chips a kind, seed {a.seed}; axis: share off by >10 / >30 deg; window (true "
          f"heading given): side / true ship length, p10 / p50 / p90, shares < 0.9 and > 1.3 "
          f"(target 1.1)")
    print(f"{'chips':<28}{'ver':>4}{'>10':>7}{'>30':>7}{'win p10':>9}{'p50':>6}{'p90':>6}"
          f"{'<0.9':>7}{'>1.3':>7}")
    with mp.get_context("spawn").Pool(2) as pool:
        for name, (cfg, cut) in kinds().items():
            res = np.array(pool.map(_measure, [(cfg, cut, a.seed, i) for i in range(a.n)],
                                    chunksize=8))  # (n, 2 versions, 2)
            for v in (1, 2):
                err, win = res[:, v - 1, 0], res[:, v - 1, 1]
                print(f"{name:<28}{v:>4}{(err > 10).mean():>7.3f}{(err > 30).mean():>7.3f}"
                      f"{np.percentile(win, 10):>9.2f}{np.median(win):>6.2f}"
                      f"{np.percentile(win, 90):>6.2f}{(win < 0.9).mean():>7.3f}"
                      f"{(win > 1.3).mean():>7.3f}")
    t = view_seconds(kinds()["training looks, tight"][0], min(a.n, 100), a.seed + 1)
    print(f"one view (training looks, tight and loose cuts, 1 process): version 1 "
          f"{t[1] * 1e3:.2f} ms, version 2 {t[2] * 1e3:.2f} ms ({t[2] / t[1]:.2f}x)")


if __name__ == "__main__":
    main()
