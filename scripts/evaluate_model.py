"""Judge a model the way the project is judged: on appearance families it never trained on.

    python scripts/evaluate_model.py --model models/shipload.pt --baseline models/init/stage14.pt

Renders (seeded, nothing stored but the figures):
  * in-family: the training renderer's families (configs/synth_train.yaml), seed 2;
  * held-out: every axis drawn from its held-out family only (shipload.synth.appearance.HELD_OUT,
    of the axes the training renderer randomises);
  * base: the plain renderer (configs/synth.yaml), as the earlier cards' held-out set.
For each model, with and without the geometry input: accuracy (overall and per GSD band),
AUROC, the share called laden, load and freeboard errors. Then the physical bound with and
without geometry, framing invariance (the same ship cut tight and loose), and adaptation to the
held-out families (AdaBN on 2,000 unlabelled chips; fine-tuning on 50, 200, 1,000 labels),
and, for a model trained with the part task, how well its part head finds the parts.
Writes models/eval/metrics.json; make_card.py fills the model card from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from shipload.adapt import adabn, fine_tune, recalibrate  # noqa: E402
from shipload.bands import GSD_BANDS, band_masks  # noqa: E402
from shipload.config import load_yaml  # noqa: E402
from shipload.contract import PART_NAMES  # noqa: E402
from shipload.data.stream import (  # noqa: E402
    RenderedStream,
    chip_from_scene,
    reshoot,
    scene_geometry,
)
from shipload.export import load_model  # noqa: E402
from shipload.metrics import auroc  # noqa: E402
from shipload.oracle import oracle_bound  # noqa: E402
from shipload.synth import SynthConfig, recut, sample_scene, write_dataset  # noqa: E402
from shipload.synth.appearance import held_out_axes  # noqa: E402
from shipload.view import InputSpec, prepare_view  # noqa: E402


def probe_parser(doc: str | None, n: int, train_seed: int, test_seed: int
                 ) -> argparse.ArgumentParser:
    """The arguments every probe script shares: the model, chips a set, and its two seeds
    (fitted on one, scored on the other)."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    p.add_argument("--n", type=int, default=n, help="chips per set and seed")
    p.add_argument("--train-seed", type=int, default=train_seed)
    p.add_argument("--test-seed", type=int, default=test_seed)
    return p


def configs(train_config: Path | None = None) -> dict[str, SynthConfig]:
    """The judged renderers: the training looks (``train_config``, by default the recipe's
    configs/synth_train.yaml), the held-out families of the axes it randomises, the base."""
    train = load_yaml(SynthConfig, train_config or REPO / "configs" / "synth_train.yaml")
    held = dataclasses.replace(train, appearance=train.appearance.held_out())
    return {"in_family": train, "held_out": held,
            "base": load_yaml(SynthConfig, REPO / "configs" / "synth.yaml")}


def per_axis_configs(train: SynthConfig) -> dict[str, SynthConfig]:
    """One held-out family at a time, the other axes from the training families."""
    return {f"held_out_{a}": dataclasses.replace(train, appearance=train.appearance.held_out(a))
            for a in held_out_axes(train.appearance.families())}


def own_views(model: Path, baseline: Path) -> dict[str, InputSpec]:
    """The view each model is judged on: its own, so that a model of another ``view_version``
    is not judged on the other's views of the same scenes."""
    return {"model": load_model(model).spec, "baseline": load_model(baseline).spec}


def add_per_axis(res: dict[str, Any], model: Path, baseline: Path, n: int,
                 train_config: Path | None = None) -> None:
    """Accuracy on sets where a single axis comes from its held-out family (in place)."""
    cfgs = per_axis_configs(configs(train_config)["in_family"])
    specs = own_views(model, baseline)
    with mp.get_context("spawn").Pool(2) as pool:
        views = {s: {k: render_set(c, 2, n, s, pool) for k, c in cfgs.items()}
                 for s in set(specs.values())}
    for name, path in (("model", model), ("baseline", baseline)):
        net = load_model(path).net
        for k, d in views[specs[name]].items():
            res["sets"][name][k] = {"with_geometry": scores(d, run(net, d, True)),
                                    "without_geometry": scores(d, run(net, d, False))}


def _item(args: tuple[SynthConfig, int, int, InputSpec, float, float, bool]) -> tuple[Any, ...]:
    cfg, seed, i, spec, scale, offset, reshot = args
    s = sample_scene(cfg, seed, i)
    if scale > 0:  # framing: the same ship, cut at another side and shifted
        s = recut(s, scale, offset)
    if reshot:  # the same ship, look and cut; the renderer's textures and noise drawn anew
        s = reshoot(s)
    v = prepare_view(chip_from_scene(s, cfg.sensor.supersample), spec, scene_geometry(s))
    return (np.round(v.image * 255).astype(np.uint8), v.geometry, int(s.label == "laden"),
            s.load_fraction, s.freeboard_m, s.gsd_m)


def render_set(cfg: SynthConfig, seed: int, n: int, spec: InputSpec, pool: Any,
               scale: float = 0.0, offset: float = 0.0, reshot: bool = False
               ) -> dict[str, np.ndarray]:
    """n views with their geometry and truth: the set a model is judged on.

    ``scale`` > 0 recuts each chip to that many ship lengths, its centre ``offset`` of the side
    off the ship's; ``reshot`` draws the renderer's textures, neighbours and noise from another
    seed (``shipload.data.stream.reshoot``), keeping every scene's ship, look and geometry.
    """
    out = pool.map(_item, [(cfg, seed, i, spec, scale, offset, reshot) for i in range(n)],
                   chunksize=16)
    x = np.stack([o[0] for o in out]).transpose(0, 3, 1, 2)
    return {"x": x, "g": np.stack([o[1] for o in out]), "y": np.array([o[2] for o in out]),
            "lf": np.array([o[3] for o in out]), "fb": np.array([o[4] for o in out]),
            "gsd": np.array([o[5] for o in out])}


def run(net: Any, d: dict[str, np.ndarray], geometry: bool) -> dict[str, np.ndarray]:
    """p_laden, load fraction and freeboard of a network on a rendered set; with a cue readout
    also ``measure``, the log ratios it measured (N, 2)."""
    outs: dict[str, list[np.ndarray]] = {}
    net.eval()
    with torch.no_grad():
        for i in range(0, len(d["x"]), 256):
            x = torch.from_numpy(d["x"][i : i + 256].astype(np.float32) / 255)
            g = torch.from_numpy(d["g"][i : i + 256]) if geometry else None
            o = net.forward_train(x, g)
            o = {"p": torch.softmax(o["logits"], 1)[:, 1], "lf": torch.sigmoid(o["load"]),
                 "fb": torch.exp(o["log_fb"]), **({"measure": o["measure"]}
                                                  if "measure" in o else {})}
            for k, v in o.items():
                outs.setdefault(k, []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def scores(d: dict[str, np.ndarray], r: dict[str, np.ndarray]) -> dict[str, Any]:
    """Accuracy per GSD band, AUROC, laden share, load and freeboard errors."""
    call = (r["p"] >= 0.5).astype(int)
    out: dict[str, Any] = {"n": len(call), "accuracy": {}, "freeboard_mae_m": {}}
    for name, m in {"all": np.ones(len(call), bool), **band_masks(d["gsd"], GSD_BANDS)}.items():
        if m.any():
            out["accuracy"][name] = round(float((call[m] == d["y"][m]).mean()), 4)
            out["freeboard_mae_m"][name] = round(float(np.abs(r["fb"][m] - d["fb"][m]).mean()), 3)
    out["auroc"] = round(float(auroc(d["y"], r["p"])), 4)
    out["laden_share"] = round(float(call.mean()), 4)
    out["laden_share_truth"] = round(float(d["y"].mean()), 4)
    out["load_mae"] = round(float(np.abs(r["lf"] - d["lf"]).mean()), 4)
    return out


def framing_sets(cfg: SynthConfig, spec: InputSpec, pool: Any, n: int
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same n ships cut tight (1.1x their length, centred) and loose (2x, 10 % off)."""
    return (render_set(cfg, 31, n, spec, pool, scale=1.1, offset=0.0),
            render_set(cfg, 31, n, spec, pool, scale=2.0, offset=0.1))


def framing(net: Any, cuts: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
            geometry: bool) -> dict[str, float]:
    """Flip rate and mean |delta p| between the tight and the loose cut of each ship."""
    tight, loose = cuts
    n = len(tight["y"])
    a, b = run(net, tight, geometry)["p"], run(net, loose, geometry)["p"]
    return {"n": n, "flip_rate": round(float(((a >= 0.5) != (b >= 0.5)).mean()), 4),
            "mean_abs_dp": round(float(np.abs(a - b).mean()), 4)}


def adaptation_sets(held: SynthConfig, spec: InputSpec, pool: Any, adapt_n: int,
                    labels_n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The held-out-family chips ``adaptation`` adapts on: unlabelled (seed 3) and labelled
    (seed 4), apart from the judged set's seed 2."""
    return (render_set(held, 3, adapt_n, spec, pool), render_set(held, 4, labels_n, spec, pool))


def adaptation(path: Path, held_eval: dict[str, np.ndarray], unlabelled: dict[str, np.ndarray],
               labelled: dict[str, np.ndarray], sizes: tuple[int, ...]) -> dict[str, Any]:
    """``shipload adapt`` on held-out-family chips, as it runs: AdaBN on the unlabelled chips
    (balanced by the model's calls), then with n labels the default recalibration, and
    (``--epochs 5``) fine-tuning first."""
    def fresh() -> Any:
        net = load_model(path).net
        adabn(net, unlabelled["x"].astype(np.float32) / 255, unlabelled["g"], balance=True)
        return net

    f32 = np.float32
    base = scores(held_eval, run(load_model(path).net, held_eval, True))
    ada = scores(held_eval, run(fresh(), held_eval, True))
    recal, tuned = {}, {}
    for n in sizes:
        sl = slice(0, n)
        x, g, y = labelled["x"][sl].astype(f32) / 255, labelled["g"][sl], labelled["y"][sl]
        net = fresh()
        recalibrate(net, x, g, y)
        recal[str(n)] = scores(held_eval, run(net, held_eval, True))
        net = fresh()
        fine_tune(net, x, g, y, labelled["lf"][sl].astype(f32), epochs=5)
        recalibrate(net, x, g, y)
        tuned[str(n)] = scores(held_eval, run(net, held_eval, True))
    best = max(s["accuracy"]["all"] for s in (*recal.values(), *tuned.values()))
    gain = ada["accuracy"]["all"] - base["accuracy"]["all"]
    room = best - base["accuracy"]["all"]
    return {"before": base, "adabn": ada, "labels": recal, "labels_fine_tune": tuned,
            "unlabelled_n": len(unlabelled["y"]),
            "gap_closed_by_adabn": round(gain / room, 3) if room > 0 else None}


def part_iou(path: Path, cfg: SynthConfig, n: int) -> dict[str, float] | None:
    """IoU of the part head's maps (probability > 0.5) with the renderer's (coverage > 0.5),
    per part, on n chips of ``cfg`` (seed 5): does the model find the parts of a look it never
    saw? None for a model without a trained part head."""
    m = load_model(path)
    if m.net.part_head is None or not m.hparams.get("parts_loss_weight"):
        return None
    ds = RenderedStream(cfg, 5, m.spec, augment=False, geometry_dropout=0.0, field_dropout=0.0,
                        heading_prob=0.0, parts=True)
    inter = np.zeros(len(PART_NAMES))
    union = np.zeros(len(PART_NAMES))
    with torch.no_grad():
        for i in range(0, n, 64):
            items = [ds[j] for j in range(i, min(n, i + 64))]
            x = torch.stack([it["image"] for it in items])
            g = torch.stack([it["geometry"] for it in items])
            pred = torch.sigmoid(m.net.forward_parts(x, g, len(items))[3]).numpy() > 0.5
            true = torch.stack([it["parts"] for it in items]).numpy() > 0.5
            inter += (pred & true).sum(axis=(0, 2, 3))
            union += (pred | true).sum(axis=(0, 2, 3))
    return {p: round(float(a / b), 3) if b else math.nan
            for p, a, b in zip(PART_NAMES, inter, union)}


def earlier_results(path: Path) -> dict[str, Any]:
    """The figures of an earlier full run, which ``--per-axis-only`` and ``--adaptation-only``
    add to.

    Raises:
        SystemExit: ``path`` is missing or not the JSON this script writes.
    """
    try:
        res = json.loads(path.read_text())
    except FileNotFoundError:
        sys.exit(f"evaluate_model: {path} not found; --per-axis-only and --adaptation-only add "
                 "to the figures of a full run: run one first (without them) or give --out")
    except json.JSONDecodeError as e:
        sys.exit(f"evaluate_model: {path} is not this script's JSON ({e}); run a full "
                 "evaluation again to rewrite it")
    if not isinstance(res, dict) or "sets" not in res:
        sys.exit(f"evaluate_model: {path} holds no judged sets; run a full evaluation first")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shipload.pt")
    p.add_argument("--baseline", type=Path, default=REPO / "models" / "init" / "stage14.pt")
    p.add_argument("--n", type=int, default=1000, help="chips per judged set")
    p.add_argument("--oracle-n", type=int, default=3000, help="chips the oracle is fitted on")
    p.add_argument("--framing-n", type=int, default=300)
    p.add_argument("--adapt-n", type=int, default=2000, help="unlabelled chips for AdaBN")
    p.add_argument("--labels", type=int, nargs="+", default=[50, 200, 1000])
    p.add_argument("--parts-n", type=int, default=300,
                   help="chips per set for the part head's IoU (models trained with parts)")
    p.add_argument("--out", type=Path, default=REPO / "models" / "eval" / "metrics.json")
    p.add_argument("--train-config", type=Path, default=None,
                   help="the training renderer the judged sets derive from (default: "
                        "configs/synth_train.yaml, the recipe's)")
    p.add_argument("--per-axis-only", action="store_true",
                   help="only add the one-held-out-axis-at-a-time sets to an existing --out")
    p.add_argument("--adaptation-only", action="store_true",
                   help="only measure the adaptation again into an existing --out (the same "
                        "seeded chips as a full run)")
    a = p.parse_args()
    if a.adaptation_only:
        res = earlier_results(a.out)
        spec = load_model(a.model).spec
        held = configs(a.train_config)["held_out"]
        with mp.get_context("spawn").Pool(2) as pool:
            ev = render_set(held, 2, a.n, spec, pool)  # the judged set of a full run
            unl, lab = adaptation_sets(held, spec, pool, a.adapt_n, max(a.labels))
        res["adaptation"] = adaptation(a.model, ev, unl, lab, tuple(a.labels))
        a.out.write_text(json.dumps(res, indent=2) + "\n")
        report(res)
        return
    if a.per_axis_only:
        res = earlier_results(a.out)
        add_per_axis(res, a.model, a.baseline, a.n, a.train_config)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
        report(res)
        return
    for f in (a.model, a.baseline):
        if not f.is_file():
            sys.exit(f"evaluate_model: {f} not found")
    t0 = time.time()
    specs = own_views(a.model, a.baseline)
    spec = specs["model"]
    cfgs = configs(a.train_config)
    res: dict[str, Any] = {"model": str(a.model.relative_to(REPO) if a.model.is_relative_to(
        REPO) else a.model), "baseline": str(a.baseline.name), "n": a.n, "sets": {},
        "held_out_families": held_out_axes(cfgs["in_family"].appearance.families())}
    with mp.get_context("spawn").Pool(2) as pool:
        views = {s: ({k: render_set(c, 2, a.n, s, pool) for k, c in cfgs.items()},
                     {k: framing_sets(cfgs[k], s, pool, a.framing_n)
                      for k in ("in_family", "held_out")}) for s in set(specs.values())}
        print(f"rendered {3 * a.n} judged chips and {4 * a.framing_n} cuts in "
              f"{len(views)} view(s) in {time.time() - t0:.0f} s", flush=True)
        for name, path in (("model", a.model), ("baseline", a.baseline)):
            net = load_model(path).net
            own, cuts = views[specs[name]]
            res["sets"][name] = {
                k: {"with_geometry": scores(d, run(net, d, True)),
                    "without_geometry": scores(d, run(net, d, False))} for k, d in own.items()}
            # With geometry for both: an image-only baseline's geometry branch outputs zero.
            res.setdefault("framing", {})[name] = framing(net, cuts["in_family"], True)
            res["framing"][name + "_held_out"] = framing(net, cuts["held_out"], True)
        sets = views[spec][0]  # the model's own views, for adaptation
        print(f"scored in {time.time() - t0:.0f} s", flush=True)
        unl, lab = adaptation_sets(cfgs["held_out"], spec, pool, a.adapt_n, max(a.labels))
    res["adaptation"] = adaptation(a.model, sets["held_out"], unl, lab, tuple(a.labels))
    print(f"adapted in {time.time() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as td:
        tr = write_dataset(cfgs["in_family"], Path(td) / "oracle", a.oracle_n, 40, workers=2,
                           progress=False)
        ev = write_dataset(cfgs["in_family"], Path(td) / "eval", a.n, 2, workers=2,
                           progress=False)
        res["oracle"] = {"without_geometry": oracle_bound(tr / "labels.csv", ev / "labels.csv"),
                         "with_geometry": oracle_bound(tr / "labels.csv", ev / "labels.csv",
                                                       geometry=True)}
    add_per_axis(res, a.model, a.baseline, a.n, a.train_config)
    ious = {k: part_iou(a.model, cfgs[k], a.parts_n) for k in ("in_family", "held_out")}
    if all(v is not None for v in ious.values()):
        res["part_iou"] = {"n": a.parts_n, **ious}
    res["oracle_n"] = a.oracle_n
    res["seconds"] = round(time.time() - t0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    (a.out.parent / "headline.json").write_text(json.dumps(headline(res), indent=2) + "\n")
    report(res)


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The few figures the ONNX metadata carries (``shipload export --metrics``)."""
    s = res["sets"]["model"]
    return {
        "judged_on": f"{res['n']} rendered chips per set, seed 2 (scripts/evaluate_model.py)",
        "accuracy_in_family": s["in_family"]["with_geometry"]["accuracy"]["all"],
        "accuracy_held_out_families": s["held_out"]["with_geometry"]["accuracy"]["all"],
        "accuracy_held_out_families_no_geometry":
            s["held_out"]["without_geometry"]["accuracy"]["all"],
        "accuracy_base_renderer": s["base"]["with_geometry"]["accuracy"]["all"],
        "auroc_held_out_families": s["held_out"]["with_geometry"]["auroc"],
        "freeboard_mae_m_in_family": s["in_family"]["with_geometry"]["freeboard_mae_m"]["all"],
    }


def report(res: dict[str, Any]) -> None:
    """Print the card's tables."""
    bands = ["all"] + [f"{lo:g}-{hi:g}" for lo, hi in GSD_BANDS]
    print(f"\n{'set / model / geometry':<42}" + "".join(f"{b:>10}" for b in bands)
          + f"{'AUROC':>8}{'laden%':>8}{'FB MAE':>8}")
    for model, sets in res["sets"].items():
        for k, modes in sets.items():
            for mode, s in modes.items():
                accs = "".join(f"{s['accuracy'].get(b, math.nan):>10.3f}" for b in bands)
                print(f"{k + ' / ' + model + ' / ' + mode:<42}{accs}{s['auroc']:>8.3f}"
                      f"{s['laden_share']:>8.2f}{s['freeboard_mae_m']['all']:>8.2f}")
    for k, o in res["oracle"].items():
        print(f"oracle {k}: " + ", ".join(f"{b} {v:.3f}" for b, v in o["accuracy"].items()))
    print("framing:", json.dumps(res["framing"]))
    if "part_iou" in res:
        print("part IoU:", json.dumps(res["part_iou"]))
    ad = res["adaptation"]
    print(f"adaptation (held-out families): before {ad['before']['accuracy']['all']:.3f}, "
          f"AdaBN {ad['adabn']['accuracy']['all']:.3f}, recalibrated on labels " + ", ".join(
              f"{n}: {s['accuracy']['all']:.3f}" for n, s in ad["labels"].items())
          + "; fine-tuned + recalibrated " + ", ".join(
              f"{n}: {s['accuracy']['all']:.3f}" for n, s in ad["labels_fine_tune"].items())
          + f"; AdaBN closes {ad['gap_closed_by_adabn']} of the gap")


if __name__ == "__main__":
    main()
