"""Is the cue in a model's features on unseen looks? A linear probe, fitted per look.

    python scripts/probe_features.py --model models/shipload.pt

The held-out-family gap can sit in two places: the backbone's features may no longer carry the
freeboard cue under a look it never saw, or they may carry it while the heads, fitted on the
training looks, read it wrongly. This script renders chips of each set (the training families
and the held-out ones, ``evaluate_model.configs``), takes the backbone's pooled features
(``ShipNet.forward``: (N, 320) for the shipped model), and fits a logistic regression on them
with labels of one seed (``--train-seed``), then scores it on another (``--test-seed``):

  * ``head``: the model's own call (with geometry), for reference;
  * ``probe_same``: a probe fitted on the same set's look: what a linear read of these
    features can give there. Far above ``head``: the features carry the cue and the head is
    the problem (labels of the user's look can fix it). Near ``head``: the features lost it;
  * ``probe_from_in_family``: the probe fitted on the training families, applied to this set:
    does a linear read learnt on the training looks transfer?

Each probe also gets the encoded geometry appended to the features (``+geometry`` rows).
``--probe mlp`` fits a one-hidden-layer network instead of a logistic regression (the heads
themselves are not linear), and ``--pool profile`` probes the last stage's map averaged
along the hull only (which rows across the hull each channel fires on) instead of the
globally pooled features. ``--pool widths`` reads no features at all but the part head's maps:
each part's width across the hull (``part_widths``), and in the ``+geometry`` rows the
freeboards in metres that the shadow, the hull side and the band give with the geometry
(``width_physics``). If a probe on those holds up on unseen looks better than the heads do, a
head that measures the parts is the way to a model that reads physics rather than a look.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate_model import configs, probe_parser, render_set, run  # noqa: E402

from shipload.contract import PART_NAMES  # noqa: E402
from shipload.export import load_model  # noqa: E402

POOLS = ("global", "profile", "widths")
# The middle of the view along the hull (a share of its columns): the hull's parallel body,
# away from the bow's and stern's taper, where the part widths are the freeboard cue.
MIDSHIP = (0.3, 0.7)


def part_widths(parts: torch.Tensor) -> np.ndarray:
    """Widths across the hull of each part, read from part logits. (N, P, H, W) → (N, 5P).

    In a hull-aligned view the hull runs along the columns, so a part's width across it in
    one column is that column's sum of the part's probability (view rows). Over the midship
    columns: the median, mean, 25th and 75th percentiles of that width, then the log of each
    part's median width over the deck's (the beam's): ratios a view's scale does not change.
    """
    prob = torch.sigmoid(parts.float())
    w = prob.shape[-1]
    cols = prob[..., int(MIDSHIP[0] * w) : int(MIDSHIP[1] * w)].sum(dim=2)  # (N, P, cols)
    q = torch.quantile(cols, torch.tensor([0.25, 0.5, 0.75]), dim=2)  # (3, N, P)
    med = q[1]
    deck = med[:, PART_NAMES.index("deck")].clamp(min=1.0)
    ratio = torch.log((med + 0.5) / deck[:, None])  # (N, P)
    return torch.cat([med, cols.mean(dim=2), q[0], q[2], ratio], dim=1).numpy()


def width_physics(widths: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Freeboards in metres from part widths and the encoded geometry. (N, 5P), (N, 16) → (N, 4).

    The geometry's last two fields are the view pixels across the hull that the shadow and the
    layover move per metre of height (over 10, ``shipload.view.encode_geometry``), so a shadow
    or a hull-side width over them is a freeboard; the band likewise gives FB − FB_laden. The
    deck width times metres per view pixel is the beam. Logs of (1 + metres), clipped at 100.
    """
    n = len(PART_NAMES)
    med = widths[:, :n]
    shadow_px_per_m = np.maximum(np.abs(g[:, 14]) * 10, 0.05)
    layover_px_per_m = np.maximum(np.abs(g[:, 15]) * 10, 0.05)
    fb_shadow = med[:, PART_NAMES.index("shadow")] / shadow_px_per_m
    fb_side = med[:, PART_NAMES.index("hull_side")] / layover_px_per_m
    band = med[:, PART_NAMES.index("band")] / layover_px_per_m
    beam = med[:, PART_NAMES.index("deck")] * np.exp(g[:, 2]) * (g[:, 0] > 0)
    return np.log1p(np.minimum(np.stack([fb_shadow, fb_side, band, beam], 1), 100.0))


def features(net: Any, d: dict[str, np.ndarray], pool: str = "global") -> np.ndarray:
    """Backbone features of a rendered set (eval mode, no geometry).

    Args:
        net: the network (``ShiploadNet``).
        d: a rendered set (``render_set``).
        pool: ``global``: what the heads see, (N, F); ``profile``: the last stage's map
            averaged along the hull only, keeping the rows across it, (N, C * rows): where
            across the hull each channel fires, which global pooling discards; ``widths``:
            the part head's widths across the hull (``part_widths``, (N, 25)), a physical
            read of the image that no head of the model is trained on.

    Raises:
        SystemExit: ``widths`` for a model without a part head.
    """
    if pool == "widths" and getattr(net, "part_head", None) is None:
        sys.exit("probe_features: --pool widths needs a model with a part head (ShipNet)")
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(d["x"]), 256):
            raw = torch.from_numpy(d["x"][i : i + 256].astype(np.float32) / 255)
            x = (raw - net.mean) / net.std
            if pool == "profile":  # hull-aligned views: the hull runs along the columns
                out.append(net.backbone.pyramid(x)[1][-1].mean(dim=3).flatten(1).numpy())
            elif pool == "widths":
                out.append(part_widths(net.forward_parts(raw, None, len(raw))[3]))
            else:
                out.append(net.backbone(x).numpy())
    return np.concatenate(out)


class Probe:
    """L2-regularised logistic regression on standardised features (LBFGS, full batch).

    Args:
        l2: weight of the squared norm of the weights (not the bias).
    """

    def __init__(self, l2: float = 1e-3) -> None:
        self.l2 = l2

    def fit(self, z: np.ndarray, y: np.ndarray) -> Probe:
        """Fit on (N, F) features and (N,) 0/1 labels; returns self.

        Raises:
            ValueError: fewer than two chips of either class.
        """
        zs, yt = self._standardise(z, y, torch.float64)
        w = torch.zeros(zs.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(zs @ w + b, yt) + self.l2 * (w * w).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        self.w, self.b = w.detach(), b.detach()
        return self

    def _standardise(self, z: np.ndarray, y: np.ndarray, dtype: torch.dtype
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check both classes are there, keep the features' scale, return (z scaled, y)."""
        if min(int((y == 1).sum()), int((y == 0).sum())) < 2:
            raise ValueError("a probe needs at least two chips of each class")
        zt = torch.from_numpy(z).to(dtype)
        self.mu, self.sd = zt.mean(0), zt.std(0) + 1e-6
        return (zt - self.mu) / self.sd, torch.from_numpy(y).to(dtype)

    def accuracy(self, z: np.ndarray, y: np.ndarray) -> float:
        """Share of chips whose call (logit ≥ 0) matches the 0/1 label."""
        zs = (torch.from_numpy(z).double() - self.mu) / self.sd
        call = ((zs @ self.w + self.b) >= 0).numpy().astype(int)
        return round(float((call == y).mean()), 4)


class MLPProbe(Probe):
    """A one-hidden-layer probe (ReLU, weight decay, full-batch Adam) on standardised features:
    does a *non*-linear read of the features do better than the linear one?

    Args:
        hidden: hidden units.
        weight_decay: Adam's decoupled weight decay.
        steps: full-batch optimiser steps.
    """

    def __init__(self, hidden: int = 64, weight_decay: float = 1e-2, steps: int = 400) -> None:
        super().__init__()
        self.hidden, self.weight_decay, self.steps = hidden, weight_decay, steps

    def fit(self, z: np.ndarray, y: np.ndarray) -> MLPProbe:
        """Fit on (N, F) features and (N,) 0/1 labels (seeded); returns self.

        Raises:
            ValueError: fewer than two chips of either class.
        """
        zs, yt = self._standardise(z, y, torch.float32)
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(zs.shape[1], self.hidden),
                                       torch.nn.ReLU(), torch.nn.Linear(self.hidden, 1))
        opt = torch.optim.AdamW(self.net.parameters(), lr=3e-3, weight_decay=self.weight_decay)
        with torch.enable_grad():
            for _ in range(self.steps):
                opt.zero_grad()
                F.binary_cross_entropy_with_logits(self.net(zs).squeeze(1), yt).backward()
                opt.step()
        return self

    def accuracy(self, z: np.ndarray, y: np.ndarray) -> float:
        """Share of chips whose call (logit ≥ 0) matches the 0/1 label."""
        with torch.no_grad():
            logit = self.net((torch.from_numpy(z).float() - self.mu) / self.sd).squeeze(1)
        return round(float(((logit >= 0).numpy().astype(int) == y).mean()), 4)


def probe(model: Path, n: int, train_seed: int, test_seed: int,
          sets: tuple[str, ...] = ("in_family", "held_out"), pool: str = "global",
          kind: str = "linear") -> dict[str, Any]:
    """The head's accuracy and the probes' on each set (see the module docstring).

    Raises:
        SystemExit: the model file does not exist, or the seeds are equal (the probe would be
            scored on the chips it was fitted on).
    """
    if not model.is_file():
        sys.exit(f"probe_features: {model} not found")
    if train_seed == test_seed:
        sys.exit("probe_features: --train-seed and --test-seed must differ")
    m = load_model(model)
    cfgs = configs()
    keys = ("in_family", *[s for s in sets if s != "in_family"])
    with mp.get_context("spawn").Pool(2) as workers:
        data = {k: {s: render_set(cfgs[k], s, n, m.spec, workers)
                    for s in (train_seed, test_seed)} for k in keys}
    z = {k: {s: features(m.net, d, pool) for s, d in v.items()} for k, v in data.items()}

    def with_geo(k: str, s: int) -> np.ndarray:
        extra = [width_physics(z[k][s], data[k][s]["g"])] if pool == "widths" else []
        return np.concatenate([z[k][s], data[k][s]["g"], *extra], axis=1)

    make = MLPProbe if kind == "mlp" else Probe
    fitted = {geo: make().fit(with_geo("in_family", train_seed) if geo
                               else z["in_family"][train_seed],
                               data["in_family"][train_seed]["y"]) for geo in (False, True)}
    dim = int(z["in_family"][test_seed].shape[1])
    res: dict[str, Any] = {"model": str(model), "n": n, "train_seed": train_seed,
                           "test_seed": test_seed, "pool": pool, "probe": kind,
                           "feature_dim": dim, "sets": {}}
    for k in sets:
        test, y = data[k][test_seed], data[k][test_seed]["y"]
        head = float(((run(m.net, test, True)["p"] >= 0.5) == (y == 1)).mean())
        row: dict[str, Any] = {"head": round(head, 4)}
        for geo, tag in ((False, ""), (True, "+geometry")):
            zk_tr = with_geo(k, train_seed) if geo else z[k][train_seed]
            zk_te = with_geo(k, test_seed) if geo else z[k][test_seed]
            row["probe_same" + tag] = make().fit(zk_tr, data[k][train_seed]["y"]).accuracy(
                zk_te, y)
            row["probe_from_in_family" + tag] = fitted[geo].accuracy(zk_te, y)
        res["sets"][k] = row
    return res


def main() -> None:
    p = probe_parser(__doc__, n=3000, train_seed=11, test_seed=7)
    p.add_argument("--sets", nargs="+", default=["in_family", "held_out"],
                   choices=["in_family", "held_out", "base"])
    p.add_argument("--pool", choices=POOLS, default="global",
                   help="global: the features the heads see; profile: the last stage averaged "
                        "along the hull, keeping where across it each channel fires; widths: "
                        "the part head's widths across the hull (+geometry rows add the "
                        "freeboards in metres they give)")
    p.add_argument("--probe", choices=["linear", "mlp"], default="linear",
                   help="linear: logistic regression; mlp: one hidden layer of 64")
    p.add_argument("--out", type=Path, help="write the figures here as JSON")
    a = p.parse_args()
    res = probe(a.model, a.n, a.train_seed, a.test_seed, tuple(a.sets), a.pool, a.probe)
    cols = ["head", "probe_same", "probe_from_in_family", "probe_same+geometry",
            "probe_from_in_family+geometry"]
    print(f"{a.model}: {res['feature_dim']} {a.pool} features; {a.probe} probes fitted on seed "
          f"{a.train_seed}, scored on seed {a.test_seed}, {a.n} chips each")
    short = ["head", "same", "from in-fam", "same+geo", "from in-fam+geo"]
    print(f"{'set (accuracy)':<16}" + "".join(f"{c:>17}" for c in short))
    for k, row in res["sets"].items():
        print(f"{k:<16}" + "".join(f"{row[c]:>17.3f}" for c in cols))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
