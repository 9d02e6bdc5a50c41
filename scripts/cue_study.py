"""Does the model read the cue? Its accuracy against how wide the cue is in the chip's pixels.

    python scripts/cue_study.py [--model models/shipload.pt] [--seed 43] [--n 1500]
        [--sets in_family held_out base held_out_paint ...]

For every chip of the training looks, the held-out families and the base renderer, the cue is
how much wider a ballast hull's shadow and visible side are than a laden one's, in the chip's
own pixels (``shipload.synth.geometry.cue_gap_px``: 0.17 beams of freeboard through the sun and
view angles, over the GSD). A model that reads the freeboard gets surer as that width grows,
as the physical bound does; a model that calls by the look does not. Accuracy is taken on the
chips that are clearly laden or clearly in ballast (load fraction below 0.2 or above 0.8, 87 %
of the renderer's chips), with and without the geometry input, in bands of the cue's width,
and by ship size and state. ``--sets`` also takes one held-out family at a time (the other
axes from the training families), as ``compare_models.py`` names them.

For a model with a cue readout (``model.readout``), it also says how well the network measures
the shadow's and the side's widths in beams (``synth.geometry.cue_targets``): the mean absolute
error of the measured log ratios and their correlation with the renderer's truth, per set.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import numpy as np
from evaluate_model import (  # scripts/ is on the path
    REPO,
    configs,
    per_axis_configs,
    render_set,
    run,
)

from shipload.export import load_model
from shipload.model.physics import CUE_NAMES
from shipload.synth import SynthConfig, sample_scene
from shipload.synth.geometry import cue_gap_px, cue_targets

# Bands of the cue's width in chip pixels: below 1 px a reader must guess; from 4 px on a
# person sees it at a glance.
GAP_BANDS: tuple[tuple[float, float], ...] = ((0, 1), (1, 2), (2, 4), (4, 8), (8, np.inf))
# Ship lengths (m): the small product tankers, the Aframax/Suezmax sizes, the VLCCs.
SIZES: tuple[tuple[str, float, float], ...] = (("small", 0, 150), ("medium", 150, 290),
                                               ("vlcc", 290, np.inf))
CLEAR = (0.2, 0.8)  # load fractions outside this are clearly one state


def scene_facts(cfg: SynthConfig, seed: int, n: int) -> dict[str, np.ndarray]:
    """Per chip of ``render_set(cfg, seed, n, ...)``: the cue's width, length, load, freeboard."""
    scenes = [sample_scene(cfg, seed, i) for i in range(n)]  # render_set draws these very scenes
    return {"gap": np.array([cue_gap_px(s) for s in scenes]),
            "length": np.array([s.length_m for s in scenes]),
            "lf": np.array([s.load_fraction for s in scenes]),
            "fb": np.array([s.freeboard_m for s in scenes]),
            "cues": np.stack([cue_targets(s) for s in scenes])}


def _right_and_clear(y: np.ndarray, p: np.ndarray, facts: dict[str, np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(N,) the call is right, (N,) the chip is clearly laden or empty (``CLEAR``)."""
    return (p >= 0.5) == (y == 1), (facts["lf"] < CLEAR[0]) | (facts["lf"] > CLEAR[1])


def by_gap(y: np.ndarray, p: np.ndarray, facts: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Accuracy on the clear chips, per band of the cue's width (``GAP_BANDS``)."""
    ok, clear = _right_and_clear(y, p, facts)
    rows = []
    for lo, hi in GAP_BANDS:
        m = clear & (facts["gap"] >= lo) & (facts["gap"] < hi)
        rows.append({"band": (lo, hi), "n": int(m.sum()),
                     "accuracy": float(ok[m].mean()) if m.any() else float("nan")})
    return rows


def by_size(y: np.ndarray, p: np.ndarray, facts: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Accuracy on the clear chips, per ship size (``SIZES``) and true state."""
    ok, clear = _right_and_clear(y, p, facts)
    rows = []
    for name, lo, hi in SIZES:
        for state, label in (("empty", 0), ("laden", 1)):
            m = clear & (facts["length"] >= lo) & (facts["length"] < hi) & (y == label)
            rows.append({"size": name, "state": state, "n": int(m.sum()),
                         "accuracy": float(ok[m].mean()) if m.any() else float("nan")})
    return rows


def measure_table(m: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Per cue (``CUE_NAMES``): MAE of the log ratio and its correlation with the truth."""
    return [{"cue": name, "mae": float(np.abs(m[:, k] - truth[:, k]).mean()),
             "corr": float(np.corrcoef(m[:, k], truth[:, k])[0, 1])}
            for k, name in enumerate(CUE_NAMES)]


SETS = ("in_family", "held_out", "base")


def study(model: Path, seed: int, n: int, sets: tuple[str, ...] = SETS) -> dict[str, Any]:
    """Render the sets, call them with and without geometry, and tabulate.

    Raises:
        SystemExit: a set name that is neither a set of ``configs`` nor a one-axis one.
    """
    base = configs(None)
    cfgs = {**base, **per_axis_configs(base["in_family"])}
    bad = [k for k in sets if k not in cfgs]
    if bad:
        sys.exit(f"cue_study: unknown set(s) {bad}; choose from {sorted(cfgs)}")
    loaded = load_model(model)
    out: dict[str, Any] = {}
    with mp.get_context("spawn").Pool(2) as pool:
        for name in sets:
            d = render_set(cfgs[name], seed, n, loaded.spec, pool)
            facts = scene_facts(cfgs[name], seed, n)
            if not np.allclose(facts["fb"], d["fb"]):
                raise RuntimeError("cue_study: the scenes drawn differ from the ones rendered")
            out[name] = {}
            for mode, geo in (("with_geometry", True), ("without_geometry", False)):
                r = run(loaded.net, d, geo)
                out[name][mode] = {"gap": by_gap(d["y"], r["p"], facts),
                                   "size": by_size(d["y"], r["p"], facts)}
                if geo and "measure" in r:  # a readout measures from the image alone
                    out[name]["measure"] = measure_table(r["measure"], facts["cues"])
    return out


def report(res: dict[str, Any], model: Path, seed: int, n: int) -> None:
    """Print the two tables per set and geometry mode."""
    print(f"{model.name}, seed {seed}, {n} chips a set; accuracy on clearly laden or empty chips")
    for name, modes in res.items():
        if "measure" in modes:
            cues = "  ".join(f"{r['cue']} MAE {r['mae']:.3f} corr {r['corr']:.3f}"
                             for r in modes["measure"])
            print(f"  {name} / the readout's measured log ratios: {cues}")
        for mode, t in modes.items():
            if mode == "measure":
                continue
            gaps = "  ".join(f"{r['band'][0]:g}-{r['band'][1]:g} px {r['accuracy']:.3f} "
                             f"(n {r['n']})" for r in t["gap"])
            sizes = "  ".join(f"{r['size']} {r['state']} {r['accuracy']:.3f} (n {r['n']})"
                              for r in t["size"])
            print(f"  {name} / {mode}\n    by cue width: {gaps}\n    by size: {sizes}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    p.add_argument("--seed", type=int, default=43, help="the scenes' seed")
    p.add_argument("--n", type=int, default=1500, help="chips per set")
    p.add_argument("--sets", nargs="+", default=list(SETS),
                   help="sets to render (one held-out family alone: held_out_paint, ...)")
    a = p.parse_args()
    if not a.model.is_file():
        sys.exit(f"cue_study: {a.model} not found")
    report(study(a.model, a.seed, a.n, tuple(a.sets)), a.model, a.seed, a.n)


if __name__ == "__main__":
    main()
