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

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_model import run  # noqa: E402
from prior_study import finish, skewed_sets, study_parser  # noqa: E402

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
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"adapt_study: unknown method {unknown}; known: {sorted(METHODS)}")
    res: dict[str, Any] = {"model": str(model), "seed": seed, "n": n, "subset": subset,
                           "epochs": epochs, "sets": {}}
    for k, subs in skewed_sets(model, seed, n, subset, sets, "adapt_study").items():
        rows: dict[str, Any] = {}
        for share, sub in subs.items():
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
            rows[share] = row
            print(f"{k} {share}: " + ", ".join(
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
    p = study_parser(__doc__)
    p.add_argument("--epochs", type=int, default=3, help="self-training passes")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    a = p.parse_args()
    t = time.time()
    finish(study(a.model, a.seed, a.n, a.subset, a.epochs, methods=tuple(a.methods)), a.out, t,
           report)


if __name__ == "__main__":
    main()
