"""The physical bound: what a perfect reader of the chip's own pixels could achieve.

The renderer records, for every chip, the cue widths its geometry puts in the image (hull
shadow across the hull, visible hull side, antifouling band, accommodation-block shadow, beam),
in pixels at the chip's resolution. The oracle reads them to the nearest pixel, as a perfect
measurer of a raster would, together with the directions a reader sees (of the shadows and of
the layover, relative to the hull axis), and learns the best decision from them on the
training manifest: the class (laden iff load fraction >= 0.5) and the load fraction itself.
It does not know the sun elevation, the view angle or the superstructure's height, which the
image does not state. Its accuracy and load-fraction error per GSD band bound what any model
can reach from those cues.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shipload.bands import GSD_BANDS, Bands, band_masks

CUES = ("beam_px", "shadow_width_px", "side_width_px", "band_width_px", "super_shadow_len_px")


def _read(manifest: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cues (N, 7), labels (N,), GSD (N,), load fraction (N,)) from a rendered manifest."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in CUES] + [
        abs(np.sin(np.radians(float(r["sun_azimuth_deg"]) - float(r["heading_deg"])))),
        abs(np.sin(np.radians(float(r["sensor_azimuth_deg"]) - float(r["heading_deg"])))),
    ] for r in rows], dtype=np.float64)
    y = np.array([1 if r["label"] == "laden" else 0 for r in rows])
    g = np.array([float(r["gsd_m"]) for r in rows])
    lf = np.array([float(r["load_fraction"]) for r in rows])
    return x, y, g, lf


def features(cues: np.ndarray) -> np.ndarray:
    """Pixel-quantised cue widths, ratios, directions. (N, 7) → (N, 12) float32.

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
    """Train a small two-output MLP on the quantised cues of a rendered training set.

    Output 0 is the laden logit (cross-entropy); output 1 the load-fraction logit, fitted with
    an L1 loss, whose minimiser (the posterior median) is the best estimate under the MAE.

    Args:
        train_manifest: ``labels.csv`` written by ``shipload synth``.
        epochs: passes over the manifest.
        seed: initialisation and shuffling seed.
    """
    x, y, _, lf = _read(train_manifest)
    f = torch.from_numpy(features(x))
    t = torch.from_numpy(y).float()
    tl = torch.from_numpy(lf).float()
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(f.shape[1], 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 2))
    mu, sd = f.mean(0), f.std(0) + 1e-6
    mlp.register_buffer("mu", mu)
    mlp.register_buffer("sd", sd)
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(f))
        for i in range(0, len(f), 512):
            b = perm[i : i + 512]
            out = mlp((f[b] - mu) / sd)  # (b, 2)
            loss = (nn.functional.binary_cross_entropy_with_logits(out[:, 0], t[b])
                    + nn.functional.l1_loss(torch.sigmoid(out[:, 1]), tl[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return mlp


def oracle_scores(mlp: nn.Module, manifest: str | Path,
                  bands: Bands = GSD_BANDS
                  ) -> dict[str, dict[str, float]]:
    """The oracle's accuracy and load-fraction MAE, overall and per GSD band, on a rendered set.

    Returns:
        ``{"accuracy": {"all": ..., "0.3-0.6": ...}, "load_mae": {...}}``; bands without chips
        are left out.
    """
    x, y, g, lf = _read(manifest)
    f = torch.from_numpy(features(x))
    with torch.no_grad():
        out = torch.sigmoid(mlp((f - mlp.mu) / mlp.sd)).numpy()  # (N, 2)
    correct = (out[:, 0] >= 0.5).astype(int) == y
    err = np.abs(out[:, 1] - lf)
    acc, mae = {}, {}
    for name, m in {"all": np.ones_like(g, dtype=bool), **band_masks(g, bands)}.items():
        if m.any():
            acc[name] = float(correct[m].mean())
            mae[name] = float(err[m].mean())
    return {"accuracy": acc, "load_mae": mae}
