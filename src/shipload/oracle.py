"""The physical bound: what a perfect reader of the chip's own pixels could achieve.

The renderer records, for every chip, the cue widths its geometry puts in the image (hull
shadow across the hull, visible hull side, antifouling band, accommodation-block shadow, beam),
in pixels at the chip's resolution. The oracle reads them to the nearest pixel, as a perfect
measurer of a raster would, together with the directions a reader sees (of the shadows and of
the layover, relative to the hull axis), and learns the best decision from them on the
training manifest. It does not know the sun elevation, the view angle or the superstructure's
height, which the image does not state.
Its accuracy per GSD band bounds what any model can reach from those cues.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn

CUES = ("beam_px", "shadow_width_px", "side_width_px", "band_width_px", "super_shadow_len_px")


def _read(manifest: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in CUES] + [
        abs(np.sin(np.radians(float(r["sun_azimuth_deg"]) - float(r["heading_deg"])))),
        abs(np.sin(np.radians(float(r["sensor_azimuth_deg"]) - float(r["heading_deg"])))),
    ] for r in rows], dtype=np.float64)
    y = np.array([1 if r["label"] == "laden" else 0 for r in rows])
    g = np.array([float(r["gsd_m"]) for r in rows])
    return x, y, g


def features(cues: np.ndarray) -> np.ndarray:
    """Pixel-quantised cue widths, ratios, directions. (N, 7) → (N, 13) float32.

    Columns of ``cues``: the five ``CUES`` widths, then |sin| of the sun's and the sensor's
    azimuth relative to the hull axis (what the shadow and layover directions show).
    """
    q = np.round(cues[:, : len(CUES)])  # a perfect reader of a raster resolves whole pixels
    beam = np.maximum(q[:, :1], 1.0)
    ratios = q[:, 1:] / beam
    hull_vs_super = q[:, 1:2] / np.maximum(q[:, 4:5], 1.0)  # FB |sin| / (FB + H): no elevation
    return np.concatenate([np.log1p(q), ratios, hull_vs_super, cues[:, len(CUES):]],
                          axis=1).astype(np.float32)


def fit_oracle(train_manifest: str | Path, epochs: int = 60, seed: int = 0) -> nn.Module:
    """Train a small MLP on the quantised cues of a rendered training set."""
    x, y, _ = _read(train_manifest)
    f = torch.from_numpy(features(x))
    t = torch.from_numpy(y).float()
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(f.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 1))
    mu, sd = f.mean(0), f.std(0) + 1e-6
    mlp.register_buffer("mu", mu)
    mlp.register_buffer("sd", sd)
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(f))
        for i in range(0, len(f), 512):
            b = perm[i : i + 512]
            loss = nn.functional.binary_cross_entropy_with_logits(
                mlp((f[b] - mu) / sd).squeeze(1), t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mlp


def oracle_accuracy(mlp: nn.Module, manifest: str | Path,
                    bands: tuple[tuple[float, float], ...] = ((0.3, 0.6), (0.6, 1.2), (1.2, 3.0))
                    ) -> dict[str, float]:
    """Oracle accuracy overall and per GSD band on a rendered set."""
    x, y, g = _read(manifest)
    f = torch.from_numpy(features(x))
    with torch.no_grad():
        p = torch.sigmoid(mlp((f - mlp.mu) / mlp.sd).squeeze(1)).numpy()
    correct = (p >= 0.5).astype(int) == y
    out = {"all": float(correct.mean())}
    for i, (lo, hi) in enumerate(bands):
        m = (g >= lo) & ((g <= hi) if i == len(bands) - 1 else (g < hi))
        if m.any():
            out[f"{lo:g}-{hi:g}"] = float(correct[m].mean())
    return out
