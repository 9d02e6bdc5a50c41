"""The physical bound: what a perfect reader of the chip's own pixels could achieve.

The renderer records, for every chip, the cue widths its geometry puts in the image (hull
shadow across the hull, visible hull side, antifouling band, accommodation-block shadow, beam),
in pixels at the chip's resolution. The accommodation-block shadow is cut where it leaves the
chip (at low sun it can be longer than the ship), since no reader of the chip can measure more
of it than the chip holds (``view_band`` cuts it further, to what a model's view holds). The
oracle reads them to the nearest pixel, as a perfect
measurer of a raster would, together with the directions a reader sees (of the shadows and of
the layover, relative to the hull axis), and learns the best decision from them on the
training manifest: the class (laden iff load fraction >= 0.5) and the load fraction itself.
Without ``geometry`` it does not know the sun elevation, the view angle or the GSD, which the
image does not state; with ``geometry`` (what every vendor's metadata gives, and the model's
second input) it also reads them, and so can turn a shadow width into a freeboard in metres.
Its accuracy and load-fraction error per GSD band bound what any model can reach from those
cues. It never knows the superstructure's height.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shipload.bands import GSD_BANDS, Bands, band_masks

CUES = ("beam_px", "shadow_width_px", "side_width_px", "band_width_px", "super_shadow_len_px")


# Centre of the accommodation block, in ship lengths from midships (toward the stern): the
# block spans 0.04 L to 0.11-0.16 L from the stern end (shipload.synth.geometry.ship_shapes).
SUPER_CENTRE_L = -0.41


def super_shadow_in_chip(rows: list[dict[str, str]],
                         view_band: float | None = None) -> np.ndarray:
    """Length (px) of the accommodation-block shadow that lies inside the chip. Shape (N,).

    The shadow runs from the block, away from the sun, for ``super_shadow_len_px``; it is cut
    at the chip's edge. The ship is taken as centred (the renderer moves it by about 3 % of the
    chip), the block as a point at its centre, on the hull axis.

    Args:
        rows: manifest rows (``labels.csv`` of ``shipload synth``).
        view_band: if given, also cut the shadow where it leaves a band of this half-width
            (a fraction of the chip side) around the hull axis: what a hull-aligned view of
            ``height`` rows at ``across_scale`` a holds, with ``view_band = height / (2 a w)``
            for ``w`` columns (0.125 for 80x160 at a = 2).
    """
    def col(k: str) -> np.ndarray:
        return np.array([float(r[k]) for r in rows])

    length = col("super_shadow_len_px")
    half = col("chip_px") / 2
    hd, sun = np.radians(col("heading_deg")), np.radians(col("sun_azimuth_deg"))
    # image frame: x east, y south; azimuth a points along (sin a, -cos a)
    bow = np.stack([np.sin(hd), -np.cos(hd)], 1)  # (N, 2)
    start = bow * (SUPER_CENTRE_L * col("ship_length_m") / col("gsd_m"))[:, None]  # (N, 2) px
    away = -np.stack([np.sin(sun), -np.cos(sun)], 1)  # (N, 2) shadow direction
    reach = np.full(len(rows), np.inf)  # distance along ``away`` to the chip's edge
    for k in range(2):
        d = away[:, k]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d > 0, (half - start[:, k]) / d,
                         np.where(d < 0, (-half - start[:, k]) / d, np.inf))
        reach = np.minimum(reach, t)
    if view_band is not None:
        across = np.abs(np.sin(sun - hd))  # share of the shadow that runs across the hull
        with np.errstate(divide="ignore"):
            reach = np.minimum(reach, view_band * 2 * half / across)
    return np.minimum(length, np.maximum(reach, 0.0))


def _read(manifest: str | Path, view_band: float | None = None, geometry: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cues (N, 7 or 10), labels (N,), GSD (N,), load fraction (N,)) from a manifest.

    With ``geometry``, three more columns: GSD (m), tan(sun elevation), tan(off-nadir).
    """
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in CUES] + [
        abs(np.sin(np.radians(float(r["sun_azimuth_deg"]) - float(r["heading_deg"])))),
        abs(np.sin(np.radians(float(r["sensor_azimuth_deg"]) - float(r["heading_deg"])))),
    ] + ([float(r["gsd_m"]), np.tan(np.radians(float(r["sun_elevation_deg"]))),
          np.tan(np.radians(float(r["off_nadir_deg"])))] if geometry else [])
        for r in rows], dtype=np.float64)
    x[:, CUES.index("super_shadow_len_px")] = super_shadow_in_chip(rows, view_band)
    y = np.array([1 if r["label"] == "laden" else 0 for r in rows])
    g = np.array([float(r["gsd_m"]) for r in rows])
    lf = np.array([float(r["load_fraction"]) for r in rows])
    return x, y, g, lf


def features(cues: np.ndarray) -> np.ndarray:
    """Pixel-quantised cue widths, ratios, directions. (N, 7) → (N, 12), (N, 10) → (N, 19).

    Columns of ``cues``: the five ``CUES`` widths, then |sin| of the sun's and the sensor's
    azimuth relative to the hull axis (what the shadow and layover directions show), then
    optionally GSD, tan(sun elevation), tan(off-nadir): with them the widths become metres,
    and the shadow and the visible side each give a freeboard.
    """
    n = len(CUES)
    q = np.round(cues[:, :n])  # a perfect reader of a raster resolves whole pixels
    beam = np.maximum(q[:, :1], 1.0)
    ratios = q[:, 1:] / beam
    hull_vs_super = q[:, 1:2] / np.maximum(q[:, 4:5], 1.0)  # FB |sin| / (FB + H): no elevation
    parts = [np.log1p(q), ratios, hull_vs_super, cues[:, n : n + 2]]
    if cues.shape[1] > n + 2:
        gsd, tan_el, tan_on = cues[:, n + 2], cues[:, n + 3], cues[:, n + 4]
        s_sun, s_sen = cues[:, n], cues[:, n + 1]
        fb_shadow = q[:, 1] * gsd * tan_el / np.maximum(s_sun, 0.05)  # metres
        fb_side = q[:, 2] * gsd / np.maximum(tan_on * s_sen, 0.01)
        parts += [np.stack([np.log(gsd), np.log1p(q[:, 0] * gsd), 1 / np.maximum(tan_el, 0.05),
                            tan_on, np.log1p(np.minimum(fb_shadow, 100)),
                            np.log1p(np.minimum(fb_side, 100)),
                            np.log1p(q[:, 3] * gsd / np.maximum(tan_on * s_sen, 0.01))], 1)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def fit_oracle(train_manifest: str | Path, epochs: int = 60, seed: int = 0,
               view_band: float | None = None, geometry: bool = False) -> nn.Module:
    """Train a small two-output MLP on the quantised cues of a rendered training set.

    Output 0 is the laden logit (cross-entropy); output 1 the load-fraction logit, fitted with
    an L1 loss, whose minimiser (the posterior median) is the best estimate under the MAE.

    Args:
        train_manifest: ``labels.csv`` written by ``shipload synth``.
        epochs: passes over the manifest.
        seed: initialisation and shuffling seed.
        view_band: read only what a view of this half-width holds (``super_shadow_in_chip``).
        geometry: also read the acquisition geometry (GSD, sun elevation, off-nadir).
    """
    x, y, _, lf = _read(train_manifest, view_band, geometry)
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


def oracle_scores(mlp: nn.Module, manifest: str | Path, bands: Bands = GSD_BANDS,
                  view_band: float | None = None,
                  geometry: bool = False) -> dict[str, dict[str, float]]:
    """The oracle's accuracy and load-fraction MAE, overall and per GSD band, on a rendered set.

    Args:
        mlp: from ``fit_oracle``.
        manifest: ``labels.csv`` of the set to score.
        bands: GSD bands to report.
        view_band: as given to ``fit_oracle``.
        geometry: as given to ``fit_oracle``.

    Returns:
        ``{"accuracy": {"all": ..., "0.3-0.6": ...}, "load_mae": {...}}``; bands without chips
        are left out.
    """
    x, y, g, lf = _read(manifest, view_band, geometry)
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


def oracle_bound(train_manifest: str | Path, manifest: str | Path,
                 seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 30,
                 bands: Bands = GSD_BANDS, view_band: float | None = None,
                 geometry: bool = False) -> dict[str, Any]:
    """``oracle_scores`` averaged over fits from several seeds, with their spread.

    One fit's accuracy moves by about half a point overall, and more per band, with its seed;
    the mean of a few is the steadier bound to hold a model against. Arguments as
    ``fit_oracle`` and ``oracle_scores``.

    Returns:
        ``{"accuracy": {...}, "load_mae": {...}}`` as ``oracle_scores`` (the means), plus
        ``"accuracy_range"`` (per key, ``[min, max]`` over the fits) and ``"fits"``.
    """
    runs = [oracle_scores(fit_oracle(train_manifest, epochs, seed, view_band, geometry),
                          manifest, bands, view_band, geometry) for seed in seeds]
    out: dict[str, Any] = {
        k: {b: float(np.mean([r[k][b] for r in runs])) for b in runs[0][k]}
        for k in ("accuracy", "load_mae")}
    out["accuracy_range"] = {b: [min(r["accuracy"][b] for r in runs),
                                 max(r["accuracy"][b] for r in runs)]
                             for b in runs[0]["accuracy"]}
    out["fits"] = len(runs)
    return out
