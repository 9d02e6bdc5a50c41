"""Where in the network is the cue in beams? A linear probe of each stage's features.

    python scripts/cue_probe.py [--model models/shipload.pt] [--n 800] [--train-seed 51]
        [--test-seed 53] [--sets in_family held_out base]

The cue readouts (``shipload.model.physics``) measured the hull shadow's and visible side's
widths in beams too loosely to use the geometry. This asks where a linear read of a model's
features finds them: for each ShipNet stage (strides 1 to 16), the stage's map pooled over
the view (max and mean per channel, as the network pools its last stage) is fitted by ridge
regression to the renderer's log ratios (``synth.geometry.cue_targets``) on chips of one
seed, and scored by correlation on chips of another, per set. A stage that carries the
widths much better than the last one is where a readout should read them.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from evaluate_model import configs, probe_parser, render_set  # scripts/ is on the path

from shipload.export import load_model
from shipload.model.backbones import ShipNet, pool_max_mean
from shipload.model.physics import CUE_NAMES
from shipload.synth import sample_scene
from shipload.synth.geometry import cue_targets

SETS = ("in_family", "held_out", "base")


def stage_features(net: Any, x: np.ndarray) -> list[np.ndarray]:
    """Per ShipNet stage, its map's global max and mean per channel. [(N, 2 C_i)] for 5 stages.

    Args:
        net: a ``ShiploadNet`` whose backbone is a ShipNet.
        x: (N, 3, H, W) uint8 views.

    Raises:
        SystemExit: the backbone is not a ShipNet (it has no stages to probe).
    """
    if not isinstance(net.backbone, ShipNet):
        sys.exit(f"cue_probe: the backbone {net.backbone_name!r} has no ShipNet stages")
    net.eval()
    out: list[list[np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(x), 200):
            xb = torch.from_numpy(x[i : i + 200].astype(np.float32) / 255)
            _, maps = net.backbone.pyramid((xb - net.mean) / net.std)
            out.append([pool_max_mean(m).numpy() for m in maps])  # per batch: per stage
    return [np.concatenate([b[k] for b in out]) for k in range(len(out[0]))]


def ridge_corr(f_train: np.ndarray, t_train: np.ndarray, f_test: np.ndarray,
               t_test: np.ndarray, l2: float = 10.0) -> float:
    """Correlation on the test chips of a ridge fit on the training chips (standardised)."""
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
    a = np.c_[(f_train - mu) / sd, np.ones(len(f_train))]
    b = np.c_[(f_test - mu) / sd, np.ones(len(f_test))]
    w = np.linalg.solve(a.T @ a + l2 * np.eye(a.shape[1]), a.T @ t_train)
    return float(np.corrcoef(b @ w, t_test)[0, 1])


def probe(model: Path, n: int, train_seed: int, test_seed: int,
          sets: tuple[str, ...] = SETS) -> dict[str, list[list[float]]]:
    """Per set: a row per stage, the test correlation per cue (``CUE_NAMES``).

    Raises:
        SystemExit: an unknown set name.
    """
    cfgs = configs(None)
    bad = [k for k in sets if k not in cfgs]
    if bad:
        sys.exit(f"cue_probe: unknown set(s) {bad}; choose from {sorted(cfgs)}")
    loaded = load_model(model)
    res: dict[str, list[list[float]]] = {}
    with mp.get_context("spawn").Pool(2) as pool:
        for name in sets:
            feats, truth = {}, {}
            for seed in (train_seed, test_seed):
                d = render_set(cfgs[name], seed, n, loaded.spec, pool)
                feats[seed] = stage_features(loaded.net, d["x"])
                truth[seed] = np.stack([cue_targets(sample_scene(cfgs[name], seed, i))
                                        for i in range(n)])
            res[name] = [[ridge_corr(feats[train_seed][k], truth[train_seed][:, c],
                                     feats[test_seed][k], truth[test_seed][:, c])
                          for c in range(len(CUE_NAMES))]
                         for k in range(len(feats[train_seed]))]
    return res


def main() -> None:
    p = probe_parser(__doc__, n=800, train_seed=51, test_seed=53)
    p.add_argument("--sets", nargs="+", default=list(SETS))
    a = p.parse_args()
    if not a.model.is_file():
        sys.exit(f"cue_probe: {a.model} not found")
    res = probe(a.model, a.n, a.train_seed, a.test_seed, tuple(a.sets))
    print(f"{a.model.name}: ridge probe fitted on seed {a.train_seed}, correlation on seed "
          f"{a.test_seed}, {a.n} chips a set and seed; stage (stride): {', '.join(CUE_NAMES)}")
    for name, rows in res.items():
        cells = "  ".join(f"{k} ({2 ** k}): {r[0]:.3f} {r[1]:.3f}" for k, r in enumerate(rows))
        print(f"  {name}: {cells}")


if __name__ == "__main__":
    main()
