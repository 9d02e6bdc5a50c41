"""Does re-estimating the laden share (EM, Saerens et al. 2002) help after ``shipload adapt``?

    python scripts/prior_study.py --model models/shipload.pt --seed 5 --n 3000

The robustness issue asks for a prior-adjustment option only if it helps on our held-out
families after adaptation, judged on sets 20 % and 80 % laden. This script measures it: it
renders ``--n`` scenes of the held-out families (and of the training looks, for reference),
draws from them subsets with 20 %, 50 % and 80 % laden, adapts the model to each subset without
labels as ``shipload adapt`` does (AdaBN on the subset's own chips), and compares the calls
before and after EM re-estimation of the laden share: accuracy, the share called laden and the
share EM estimates.

Prints a table and, with ``--out``, writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_model import REPO, configs, render_set, run  # noqa: E402

from shipload.adapt import adabn  # noqa: E402
from shipload.export import load_model  # noqa: E402

SHARES = (0.2, 0.5, 0.8)


def em_prior(p: np.ndarray, train_prior: float = 0.5, iters: int = 100,
             tol: float = 1e-6) -> tuple[float, np.ndarray]:
    """EM re-estimation of the positive-class share of a set (Saerens et al., 2002).

    Args:
        p: (N,) calibrated p(laden) under the training prior.
        train_prior: the laden share the probabilities were calibrated for.
        iters: at most this many EM steps.
        tol: stop when the share moves less than this.

    Returns:
        The estimated share and the (N,) probabilities adjusted to it.
    """
    if not 0 < train_prior < 1:
        raise ValueError(f"train_prior must lie in (0, 1), got {train_prior}")
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    share, q = train_prior, p
    for _ in range(iters):
        a = share / train_prior * p
        b = (1 - share) / (1 - train_prior) * (1 - p)
        q = a / (a + b)
        new = float(q.mean())
        if abs(new - share) < tol:
            share = new
            break
        share = new
    return share, q


def skewed(y: np.ndarray, share: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of n chips of which ``share`` are laden, drawn without replacement.

    Raises:
        ValueError: the set has too few chips of one class for that subset.
    """
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    k = int(round(share * n))
    if k > len(pos) or n - k > len(neg):
        raise ValueError(f"{n} chips at {share:.0%} laden need {k} laden and {n - k} empty; "
                         f"the set has {len(pos)} and {len(neg)}: render more (--n)")
    return np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, n - k,
                                                                        replace=False)])


def skewed_sets(model: Path, seed: int, n: int, subset: int, sets: tuple[str, ...],
                script: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Render ``n`` scenes of each judged set in ``model``'s view and draw from each a subset
    of ``subset`` chips per laden share of ``SHARES``: {set: {"20%": chips, ...}}.

    Raises:
        SystemExit: ``model`` is missing (named as ``script``).
    """
    if not model.is_file():
        sys.exit(f"{script}: {model} not found")
    spec = load_model(model).spec
    cfgs = configs()
    with mp.get_context("spawn").Pool(2) as pool:
        data = {k: render_set(cfgs[k], seed, n, spec, pool) for k in sets}
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for k, d in data.items():
        out[k] = {}
        for share in SHARES:
            idx = skewed(d["y"], share, subset, rng)
            out[k][f"{share:.0%}"] = {key: v[idx] for key, v in d.items()}
    return out


def study(model: Path, seed: int, n: int, subset: int,
          sets: tuple[str, ...] = ("held_out", "in_family")) -> dict[str, Any]:
    """Accuracy and laden share before and after EM, after AdaBN on each skewed subset."""
    res: dict[str, Any] = {"model": str(model), "seed": seed, "n": n, "subset": subset,
                           "sets": {}}
    for k, subs in skewed_sets(model, seed, n, subset, sets, "prior_study").items():
        rows: dict[str, Any] = {}
        for share, sub in subs.items():
            net = load_model(model).net
            adabn(net, sub["x"].astype(np.float32) / 255, sub["g"])
            p = run(net, sub, True)["p"]
            est, q = em_prior(p)
            y = sub["y"]
            rows[share] = {
                "accuracy_adapted": round(float(((p >= 0.5) == y).mean()), 4),
                "accuracy_adapted_em": round(float(((q >= 0.5) == y).mean()), 4),
                "called_laden_adapted": round(float((p >= 0.5).mean()), 4),
                "called_laden_adapted_em": round(float((q >= 0.5).mean()), 4),
                "em_estimated_share": round(est, 4), "truth_share": round(float(y.mean()), 4)}
        res["sets"][k] = rows
    return res


def report(res: dict[str, Any]) -> None:
    """One row per set and laden share."""
    print(f"{res['model']}: seed {res['seed']}, subsets of {res['subset']} chips, AdaBN on each")
    print(f"{'set / truth laden':<22}{'acc':>7}{'acc+EM':>8}{'called':>8}{'called+EM':>11}"
          f"{'EM share':>10}")
    for k, rows in res["sets"].items():
        for share, r in rows.items():
            print(f"{k + ' / ' + share:<22}{r['accuracy_adapted']:>7.3f}"
                  f"{r['accuracy_adapted_em']:>8.3f}{r['called_laden_adapted']:>8.2f}"
                  f"{r['called_laden_adapted_em']:>11.2f}{r['em_estimated_share']:>10.2f}")


def study_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options this study and scripts/adapt_study.py share."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    p.add_argument("--seed", type=int, default=5, help="the scenes' seed (the card judges on 2)")
    p.add_argument("--n", type=int, default=3000, help="scenes rendered per set")
    p.add_argument("--subset", type=int, default=1000, help="chips in each skewed subset")
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    return p


def finish(res: dict[str, Any], out: Path | None, started: float,
           show: Callable[[dict[str, Any]], None]) -> None:
    """Print the table and the time taken; write the figures to ``out`` as JSON."""
    show(res)
    print(f"({time.time() - started:.0f} s)")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))


def main() -> None:
    a = study_parser(__doc__).parse_args()
    t = time.time()
    finish(study(a.model, a.seed, a.n, a.subset), a.out, t, report)


if __name__ == "__main__":
    main()
