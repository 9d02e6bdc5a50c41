"""Compare candidate models on a fresh seed, with paired confidence intervals.

    python scripts/compare_models.py --models models/shipload.pt runs/cand.ckpt --seed 7

``evaluate_model.py`` judges every candidate on the same 1,000 chips a set (seed 2). Picking
the best of many candidates on one fixed set favours whichever fits that set's noise (a
GSD band of it holds about 150 chips: ±4 points), so this script judges the pick again on
scenes no choice has seen (another ``--seed``), larger sets, and the two models' calls on the
*same* chips: the difference in accuracy with a 95 % paired bootstrap interval, and the chips
on which only one of the two is right. The first model is the reference.

Prints a table and, with ``--out``, writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_model import configs, per_axis_configs, render_set, run, scores  # noqa: E402

from shipload.export import load_model  # noqa: E402
from shipload.synth.appearance import HELD_OUT  # noqa: E402

# The held-out families together, the training looks, the base renderer, and one held-out
# family at a time (the other axes from the training families), as evaluate_model.py names them.
SETS = ("held_out", "in_family", "base", *(f"held_out_{a}" for a in HELD_OUT))


def paired(y: np.ndarray, p_ref: np.ndarray, p_new: np.ndarray, draws: int = 2000,
           seed: int = 0) -> dict[str, Any]:
    """Accuracy difference (new − reference) on the same chips, with a paired bootstrap CI.

    Args:
        y: (N,) truth, 1 = laden.
        p_ref: (N,) the reference model's p_laden.
        p_new: (N,) the other model's p_laden.
        draws: bootstrap resamples of the chips.
        seed: the resampling seed.

    Returns:
        ``diff``, ``ci95`` (low, high), ``only_new_right`` and ``only_ref_right`` (chip counts).
    """
    a = ((p_ref >= 0.5) == (y == 1)).astype(np.float64)
    b = ((p_new >= 0.5) == (y == 1)).astype(np.float64)
    d = b - a  # per chip: +1 only the new model is right, -1 only the reference
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(draws, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"diff": round(float(d.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "only_new_right": int((d > 0).sum()), "only_ref_right": int((d < 0).sum())}


def compare(models: list[Path], seed: int, n: int, sets: tuple[str, ...],
            train_config: Path | None = None) -> dict[str, Any]:
    """Score every model, with and without geometry, on fresh sets; pair each with the first.

    Each model is judged on its own view of the same scenes (as ``evaluate_model.py`` does).

    Args:
        models: the reference first, then the candidates.
        seed: the scenes' seed.
        n: chips per set.
        sets: names from ``SETS``.
        train_config: the training renderer the sets derive from (default: the recipe's).

    Raises:
        SystemExit: a model file that does not exist or is named twice, an unknown set, or a
            one-axis set of an axis the training renderer does not randomise.
    """
    for f in models:
        if not f.is_file():
            sys.exit(f"compare_models: {f} not found")
    if len({f.resolve() for f in models}) < len(models):
        sys.exit(f"compare_models: a model is named twice in {[str(f) for f in models]}")
    bad = [s for s in sets if s not in SETS]
    if bad:
        sys.exit(f"compare_models: unknown set(s) {bad}; choose from {list(SETS)}")
    loaded = [load_model(f) for f in models]
    base = configs(train_config)
    cfgs = {**base, **per_axis_configs(base["in_family"])}
    fixed = [k for k in sets if k not in cfgs]
    if fixed:
        sys.exit(f"compare_models: {fixed}: the training renderer does not randomise that axis, "
                 f"so it has no held-out family; name a --train-config that does")
    with mp.get_context("spawn").Pool(2) as pool:
        views = {spec: {k: render_set(cfgs[k], seed, n, spec, pool) for k in sets}
                 for spec in {m.spec for m in loaded}}
    res: dict[str, Any] = {"seed": seed, "n": n, "models": [str(f) for f in models], "sets": {}}
    for k in sets:
        out: dict[str, Any] = {}
        for mode, geo in (("with_geometry", True), ("without_geometry", False)):
            ps = [run(m.net, views[m.spec][k], geo)["p"] for m in loaded]
            row: dict[str, Any] = {}
            for f, m, p in zip(models, loaded, ps):
                d = views[m.spec][k]
                row[str(f)] = scores(d, {"p": p, "lf": p, "fb": p})
                row[str(f)].pop("freeboard_mae_m")  # placeholders above: only the call counts
                row[str(f)].pop("load_mae")
            y = views[loaded[0].spec][k]["y"]
            for f, p in zip(models[1:], ps[1:]):
                row[str(f)]["vs_reference"] = paired(y, ps[0], p)
            out[mode] = row
        res["sets"][k] = out
    return res


def report(res: dict[str, Any]) -> None:
    """Print one row per set, geometry mode and model."""
    print(f"seed {res['seed']}, {res['n']} chips a set; reference: {res['models'][0]}")
    print(f"{'set / geometry / model':<58}{'acc':>7}{'AUROC':>7}{'laden':>7}"
          f"{'vs ref':>8}  95 % CI           only this / only ref right")
    for k, modes in res["sets"].items():
        for mode, row in modes.items():
            for name, s in row.items():
                v = s.get("vs_reference")
                extra = (f"{v['diff']:>+8.3f}  [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]"
                         f"   {v['only_new_right']} / {v['only_ref_right']}") if v else ""
                print(f"{k + ' / ' + mode + ' / ' + Path(name).name:<58}"
                      f"{s['accuracy']['all']:>7.3f}{s['auroc']:>7.3f}{s['laden_share']:>7.2f}"
                      + extra)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, nargs="+", required=True,
                   help="the reference model first, then the candidates (.pt or .ckpt)")
    p.add_argument("--seed", type=int, default=7,
                   help="the scenes' seed; evaluate_model.py judges on 2, so not 2")
    p.add_argument("--n", type=int, default=3000, help="chips per set")
    p.add_argument("--sets", nargs="+", default=["held_out", "in_family"], choices=SETS)
    p.add_argument("--train-config", type=Path, default=None,
                   help="the training renderer the sets derive from (default: "
                        "configs/synth_train.yaml)")
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    a = p.parse_args()
    if len(a.models) < 2:
        sys.exit("compare_models: give the reference model and at least one candidate")
    t0 = time.time()
    res = compare(a.models, a.seed, a.n, tuple(a.sets), a.train_config)
    res["seconds"] = round(time.time() - t0)
    report(res)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
