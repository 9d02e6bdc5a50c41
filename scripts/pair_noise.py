"""Do the two renders of a look pair share their noise? (Why ``data.reshoot_pairs`` exists.)

    python scripts/pair_noise.py [--n 40] [--seed 33]

For n scenes of the recipe's renderer (the training looks): the correlation of the
high-frequency part (grey level minus a Gaussian blur of 2 px) of the chip with that of its
look pair's other render (``redraw_look``: same seed), and with that other render exposed
again (``reshoot``: another seed for noise, textures and neighbour). The ship's own edges
correlate in both; what the first has beyond the second is shared noise and texture, which
the consistency loss then never asks the model to see past.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from evaluate_model import configs  # scripts/ is this script's path

from shipload.data.stream import redraw_look, reshoot
from shipload.synth.params import sample_scene
from shipload.synth.render import render


def high_pass(rgb: np.ndarray) -> np.ndarray:
    """(H, W) grey level minus its Gaussian blur (sigma 2 px): noise, texture and edges."""
    g = rgb.mean(2)
    return g - cv2.GaussianBlur(g, (0, 0), 2)


def correlations(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) correlations of each chip's high-pass with its look pair's, same seed and reshot."""
    cfg = configs()["in_family"]
    same, shot = [], []
    for i in range(n):
        s = sample_scene(cfg, seed, i)
        other = redraw_look(s, cfg, i)
        a = high_pass(render(s).rgb).ravel()
        same.append(np.corrcoef(a, high_pass(render(other).rgb).ravel())[0, 1])
        shot.append(np.corrcoef(a, high_pass(render(reshoot(other)).rgb).ravel())[0, 1])
    return np.array(same), np.array(shot)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="scenes")
    ap.add_argument("--seed", type=int, default=33, help="the renderer stream's seed")
    a = ap.parse_args()
    same, shot = correlations(a.n, a.seed)
    print(f"{a.n} scenes of seed {a.seed}, high-pass correlation with the look pair's render:")
    for name, c in (("same seed (look_pairs)", same), ("reshot (reshoot_pairs)", shot)):
        print(f"  {name:24s} median {np.median(c):.2f}  share above 0.5 {(c > 0.5).mean():.2f}")


if __name__ == "__main__":
    main()
