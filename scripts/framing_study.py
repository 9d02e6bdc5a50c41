"""Why calls flip between a tight and a loose cut: how near the threshold the flips are, and
what averaging over the view's flips (`predict --tta`) changes.

    python scripts/framing_study.py [--model models/shipload.pt] [--n 300] [--scales 1 1.1 1.3]
        [--reshoot]

The same ships as the card's framing rows (scripts/evaluate_model.py: seed 31, cut at 1.1x their
length centred and at 2x, 10 % off centre), on the training looks and on the held-out
families, with geometry. For each: the flip rate and mean |dp| with and without TTA, the
accuracy of each cut, and the share of flips where either cut's p_laden is within 0.1 of 0.5
(calls a reader would treat as unsure), against the share of ships with such a p.

``--reshoot`` also renders the tight cut again with the renderer's own random draws taken
anew (water texture, paint masks, neighbour, noise; the ship, its look and the cut kept): the
flips between two such exposures are the part of the framing flips that no cut could remove.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
import torch
from evaluate_model import REPO, configs, framing_sets, render_set  # scripts/ is on the path

from shipload.export import load_model
from shipload.inference import tta_views
from shipload.view import InputSpec

UNSURE = 0.1  # |p - 0.5| below this is an unsure call


def p_laden(net: torch.nn.Module, d: dict[str, np.ndarray], tta: bool) -> np.ndarray:
    """(N,) p_laden on a rendered set, with geometry; the mean over the 4 flips with ``tta``."""
    x = d["x"].astype(np.float32) / 255  # (N, 3, H, W)
    views = tta_views(x, d["g"], "hull_aligned") if tta else [(x, d["g"])]
    ps = []
    with torch.no_grad():
        for xv, gv in views:
            z = net(torch.from_numpy(np.ascontiguousarray(xv)),
                    torch.from_numpy(np.ascontiguousarray(gv)))[0]
            ps.append(torch.softmax(z, 1)[:, 1].numpy())
    return np.mean(ps, axis=0)


def scale_specs(spec: InputSpec, scales: list[float] | None) -> list[InputSpec]:
    """``spec`` with each frame scale of ``scales`` (none: an empty list).

    Raises:
        SystemExit: a scale the view does not take (it cuts 1 to 3 ship lengths).
    """
    try:
        return [dataclasses.replace(spec, frame_scale=s) for s in scales or ()]
    except ValueError as e:
        sys.exit(f"framing_study: --scales {' '.join(f'{s:g}' for s in scales or ())}: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    ap.add_argument("--n", type=int, default=300, help="ships per set")
    ap.add_argument("--scales", type=float, nargs="+", default=None,
                    help="also average the calls of views cut at these frame scales (each "
                         "1-3 ship lengths; the model's own is 1.1): does a multi-scale "
                         "average agree between the two cuts more often?")
    ap.add_argument("--reshoot", action="store_true",
                    help="also compare the tight cut with a second exposure of it (the "
                         "renderer's textures and noise drawn anew): the flips no cut removes")
    a = ap.parse_args()
    m = load_model(a.model)
    specs = scale_specs(m.spec, a.scales)  # a bad scale is refused before any rendering
    net = m.net.eval()
    cfgs = configs()
    with mp.get_context("spawn").Pool(2) as pool:
        cuts = {k: framing_sets(cfgs[k], m.spec, pool, a.n) for k in ("in_family", "held_out")}
        scaled = {k: [framing_sets(cfgs[k], sp, pool, a.n) for sp in specs] for k in cuts}
        again = {k: render_set(cfgs[k], 31, a.n, m.spec, pool, scale=1.1, reshot=True)
                 for k in cuts} if a.reshoot else {}
    print(f"{a.model.name}, {a.n} ships a set, tight (1.1x, centred) against loose (2x, 10 % off)")
    for name, (tight, loose) in cuts.items():
        if a.scales:
            p = np.mean([p_laden(net, t, False) for t, _ in scaled[name]], axis=0)
            q = np.mean([p_laden(net, lo, False) for _, lo in scaled[name]], axis=0)
            print(f"  {name:9s} scales {'/'.join(f'{s:g}' for s in a.scales)} flips "
                  f"{((p >= 0.5) != (q >= 0.5)).mean():6.1%}  mean |dp| "
                  f"{np.abs(p - q).mean():.3f}  accuracy tight "
                  f"{((p >= 0.5) == tight['y']).mean():.3f} loose "
                  f"{((q >= 0.5) == loose['y']).mean():.3f}")
        if a.reshoot:
            p, q = p_laden(net, tight, False), p_laden(net, again[name], False)
            print(f"  {name:9s} reshot flips {((p >= 0.5) != (q >= 0.5)).mean():6.1%}  mean |dp| "
                  f"{np.abs(p - q).mean():.3f}  (the tight cut against a second exposure of it)")
        for tta in (False, True):
            p, q = p_laden(net, tight, tta), p_laden(net, loose, tta)
            flips = (p >= 0.5) != (q >= 0.5)
            line = (f"  {name:9s} {'tta' if tta else 'plain':5s} flips {flips.mean():6.1%}  "
                    f"mean |dp| {np.abs(p - q).mean():.3f}  accuracy tight "
                    f"{((p >= 0.5) == tight['y']).mean():.3f} loose "
                    f"{((q >= 0.5) == loose['y']).mean():.3f}")
            if not tta:
                unsure = (np.abs(p - 0.5) < UNSURE) | (np.abs(q - 0.5) < UNSURE)
                with_unsure = (flips & unsure).sum() / max(1, flips.sum())
                line += (f"  | flips with an unsure cut {with_unsure:.0%}, ships with one "
                         f"{unsure.mean():.0%}, flips among the others "
                         f"{(flips & ~unsure).sum() / max(1, (~unsure).sum()):.1%}")
            print(line)


if __name__ == "__main__":
    main()
