"""Unlabelled adaptation past AdaBN: does self-training on the user's chips help?

    python scripts/adapt_study.py --model models/shipload.pt --seed 5 --n 3000

``shipload adapt`` without labels re-estimates the batch-norm statistics (AdaBN), on a
resampling of the chips in which the base model's two calls weigh alike (``adabn-balanced``;
plain ``adabn`` for comparison). This script also measures whether information maximisation
on the batch norms' affines after it
(``shipload.adapt.self_train``: TENT's entropy, a flip-consistency term and, with
``diversity`` > 0, SHOT's entropy of the mean call) calls the user's chips better. As
``scripts/prior_study.py`` does, it renders ``--n`` scenes of the held-out families and of the
training looks, draws subsets of ``--subset`` chips that are 20 %, 50 % and 80 % laden (a
user's mix is unknown, and the diversity term pulls the calls toward a half), adapts a fresh
copy of the model to each subset's own chips, and scores the calls on them.

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

from evaluate_model import REPO, configs, render_set, run  # noqa: E402
from prior_study import SHARES, skewed  # noqa: E402

from shipload.adapt import adabn, self_train  # noqa: E402
from shipload.export import load_model  # noqa: E402

# name -> (AdaBN on the calls' balanced resampling, self_train's settings or None)
METHODS: dict[str, tuple[bool, dict[str, float] | None]] = {
    "adabn": (False, None),
    "adabn-balanced": (True, None),
    "adabn+tent": (False, {"diversity": 0.0}),
    "adabn+im": (False, {"diversity": 1.0}),
}


def study(model: Path, seed: int, n: int, subset: int, epochs: int = 3,
          sets: tuple[str, ...] = ("held_out", "in_family"),
          methods: tuple[str, ...] = tuple(METHODS)) -> dict[str, Any]:
    """Accuracy and the share called laden after each method, per set and laden share."""
    if not model.is_file():
        sys.exit(f"adapt_study: {model} not found")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"adapt_study: unknown method {unknown}; known: {sorted(METHODS)}")
    spec = load_model(model).spec
    cfgs = configs()
    with mp.get_context("spawn").Pool(2) as pool:
        data = {k: render_set(cfgs[k], seed, n, spec, pool) for k in sets}
    res: dict[str, Any] = {"model": str(model), "seed": seed, "n": n, "subset": subset,
                           "epochs": epochs, "sets": {}}
    rng = np.random.default_rng(seed)
    for k, d in data.items():
        rows: dict[str, Any] = {}
        for share in SHARES:
            idx = skewed(d["y"], share, subset, rng)
            sub = {key: v[idx] for key, v in d.items()}
            x = sub["x"].astype(np.float32) / 255
            y = sub["y"]
            p0 = run(load_model(model).net, sub, True)["p"]
            row: dict[str, Any] = {"truth_share": round(float(y.mean()), 4), "before": {
                "accuracy": round(float(((p0 >= 0.5) == y).mean()), 4),
                "called_laden": round(float((p0 >= 0.5).mean()), 4)}}
            for name in methods:
                net = load_model(model).net
                balance, st = METHODS[name]
                adabn(net, x, sub["g"], balance=balance, seed=seed)
                if st is not None:
                    self_train(net, x, sub["g"], epochs=epochs, seed=seed, **st)
                p = run(net, sub, True)["p"]
                row[name] = {"accuracy": round(float(((p >= 0.5) == y).mean()), 4),
                             "called_laden": round(float((p >= 0.5).mean()), 4)}
            rows[f"{share:.0%}"] = row
            print(f"{k} {share:.0%}: " + ", ".join(
                f"{m} {v['accuracy']:.3f}" for m, v in row.items() if isinstance(v, dict)),
                flush=True)
        res["sets"][k] = rows
    return res


def report(res: dict[str, Any]) -> None:
    """One row per set and laden share: accuracy (share called laden) per method."""
    methods = [m for m in next(iter(next(iter(res["sets"].values())).values()))
               if m != "truth_share"]
    print(f"{res['model']}: seed {res['seed']}, subsets of {res['subset']} chips, each "
          f"adapted on its own chips ({res['epochs']} epochs of self-training)")
    print(f"{'set / truth laden':<22}" + "".join(f"{m:>20}" for m in methods))
    for k, rows in res["sets"].items():
        for share, r in rows.items():
            print(f"{k + ' / ' + share:<22}" + "".join(
                f"{r[m]['accuracy']:>13.3f} ({r[m]['called_laden']:.2f})" for m in methods))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    p.add_argument("--seed", type=int, default=5, help="the scenes' seed (the card judges on 2)")
    p.add_argument("--n", type=int, default=3000, help="scenes rendered per set")
    p.add_argument("--subset", type=int, default=1000, help="chips in each skewed subset")
    p.add_argument("--epochs", type=int, default=3, help="self-training passes")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    a = p.parse_args()
    t = time.time()
    res = study(a.model, a.seed, a.n, a.subset, a.epochs, methods=tuple(a.methods))
    report(res)
    print(f"({time.time() - t:.0f} s)")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
