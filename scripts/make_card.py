"""Write the model card (models/README.md) from the measured figures.

    python scripts/make_card.py [--metrics models/eval/metrics.json] [--bench models/eval/bench.txt]

Every figure in the card comes from models/eval/metrics.json (scripts/evaluate_model.py), the
ONNX metadata and the files themselves; the benchmark lines, when given, are pasted as printed
by benchmarks/bench_predict.py. Nothing here measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shipload.bands import GSD_BANDS  # noqa: E402
from shipload.runtime import read_metadata, sha256_file  # noqa: E402

BANDS = ["all"] + [f"{lo:g}-{hi:g}" for lo, hi in GSD_BANDS]
SETS = {"in_family": "in-family looks", "held_out": "held-out families", "base": "base renderer"}
AXES = {"held_out_paint": "paint two_tone", "held_out_water": "water blotchy",
        "held_out_sensor": "sensor harsh", "held_out_style": "style textured",
        "held_out_layout": "layout cluttered"}


def _row(label: str, s: dict[str, Any]) -> str:
    accs = " | ".join(f"{s['accuracy'].get(b, float('nan')):.3f}" for b in BANDS)
    return (f"| {label} | {accs} | {s['auroc']:.3f} | {s['laden_share']:.2f} "
            f"({s['laden_share_truth']:.2f}) |")


def baseline_name(m: dict[str, Any]) -> str:
    """The previous release's name in the tables: ``stage8.pt`` → ``stage 8``."""
    name = Path(str(m.get("baseline", "stage7.pt"))).stem
    return name.replace("stage", "stage ") if name.startswith("stage") else name


def image_only(m: dict[str, Any]) -> bool:
    """Whether the baseline is the image-only stage 7 (its geometry rows say nothing)."""
    return baseline_name(m) == "stage 7"


def accuracy_table(m: dict[str, Any]) -> str:
    head = ("| set · model · geometry | " + " | ".join(BANDS) + " | AUROC | called laden "
            "(truth) |\n|" + "---|" * (len(BANDS) + 3))
    rows = []
    for key, name in SETS.items():
        for model in ("model", "baseline"):
            for mode in ("with_geometry", "without_geometry"):
                if model == "baseline" and mode == "with_geometry" and image_only(m):
                    continue  # the image-only baseline ignores geometry
                who = "this model" if model == "model" else baseline_name(m)
                label = f"{name} · {who} · {mode.replace('_', ' ')}"
                rows.append(_row(label, m["sets"][model][key][mode]))
    return head + "\n" + "\n".join(rows)


def per_axis_table(m: dict[str, Any]) -> str:
    """Accuracy when a single axis comes from its held-out family (the axes that were judged:
    an axis the training renderer fixes has no held-out family)."""
    axes = {k: name for k, name in AXES.items() if k in m["sets"]["model"]}
    if not axes:
        return ""
    head = ("| only this axis held out | " + " | ".join(BANDS) + " | AUROC | called laden "
            "(truth) |\n|" + "---|" * (len(BANDS) + 3))
    rows = []
    for key, name in axes.items():
        rows.append(_row(f"{name} · this model · with geometry",
                         m["sets"]["model"][key]["with_geometry"]))
        mode = "without_geometry" if image_only(m) else "with_geometry"
        rows.append(_row(f"{name} · {baseline_name(m)}", m["sets"]["baseline"][key][mode]))
    return head + "\n" + "\n".join(rows)


def gap_table(m: dict[str, Any]) -> str:
    lines = ["| geometry | " + " | ".join(BANDS) + " |", "|" + "---|" * (len(BANDS) + 1)]
    for mode in ("with_geometry", "without_geometry"):
        a = m["sets"]["model"]["in_family"][mode]["accuracy"]
        b = m["sets"]["model"]["held_out"][mode]["accuracy"]
        lines.append(f"| {mode.replace('_', ' ')} | " + " | ".join(
            f"{100 * (a[k] - b[k]):+.1f}" for k in BANDS if k in a and k in b) + " |")
    return "\n".join(lines)


def oracle_table(m: dict[str, Any]) -> str:
    model = m["sets"]["model"]["in_family"]
    lines = ["| | " + " | ".join(BANDS) + " |", "|" + "---|" * (len(BANDS) + 1)]
    for mode in ("without_geometry", "with_geometry"):
        o = m["oracle"][mode]["accuracy"]
        lines.append(f"| bound, {mode.replace('_', ' ')} | " + " | ".join(
            f"{o.get(b, float('nan')):.3f}" for b in BANDS) + " |")
        a = model[mode]["accuracy"]
        lines.append(f"| this model, {mode.replace('_', ' ')} | " + " | ".join(
            f"{a.get(b, float('nan')):.3f} ({100 * (o.get(b, 0) - a.get(b, 0)):+.1f})"
            for b in BANDS) + " |")
    return "\n".join(lines)


def freeboard_table(m: dict[str, Any]) -> str:
    lines = ["| set | " + " | ".join(BANDS) + " |", "|" + "---|" * (len(BANDS) + 1)]
    for key, name in SETS.items():
        f = m["sets"]["model"][key]["with_geometry"]["freeboard_mae_m"]
        lines.append(f"| {name} | " + " | ".join(f"{f.get(b, float('nan')):.2f}" for b in BANDS)
                     + " |")
    return "\n".join(lines)


def adaptation_table(m: dict[str, Any]) -> str:
    ad = m["adaptation"]
    rows = [("as shipped", ad["before"]),
            (f"AdaBN (both calls weighed alike) on {ad['unlabelled_n']:,} unlabelled chips",
             ad["adabn"])]
    rows += [(f"AdaBN + recalibration on {n} labels (`adapt --labels`)", s)
             for n, s in ad["labels"].items()]
    rows += [(f"AdaBN + fine-tune 5 epochs + recalibration on {n} labels (`--epochs 5`)", s)
             for n, s in ad.get("labels_fine_tune", {}).items()]
    lines = ["| held-out families | accuracy | AUROC | called laden (truth) |", "|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['accuracy']['all']:.3f} | {s['auroc']:.3f} | "
                     f"{s['laden_share']:.2f} ({s['laden_share_truth']:.2f}) |")
    gc = ad.get("gap_closed_by_adabn")
    room = max(s["accuracy"]["all"] for _, s in rows[2:]) - ad["before"]["accuracy"]["all"] \
        if len(rows) > 2 else 0.0
    if gc is not None and room >= 0.02:  # a share of a gap smaller than the noise means nothing
        lines.append(f"\nAdaBN closes {100 * gc:.0f} % of the gap between the shipped model and "
                     "the best use of labels above.")
    else:
        lines.append("\nNo use of labels above beats the shipped model by 2 points (about the "
                     "noise of 1,000 chips), so there is no gap for AdaBN to close.")
    return "\n".join(lines)


def framing_table(m: dict[str, Any]) -> str:
    f = m["framing"]
    lines = ["| model · look | chips | calls that flip | mean abs. change of p_laden |",
             "|---|---|---|---|"]
    for key, name in (("model", "this model · in-family"),
                      ("model_held_out", "this model · held-out families"),
                      ("baseline", f"{baseline_name(m)} · in-family"),
                      ("baseline_held_out", f"{baseline_name(m)} · held-out families")):
        if key in f:
            lines.append(f"| {name} | {f[key]['n']} | {100 * f[key]['flip_rate']:.1f} % | "
                         f"{f[key]['mean_abs_dp']:.3f} |")
    return "\n".join(lines)


def part_table(m: dict[str, Any]) -> str:
    """The part head's IoU per part, in-family and held-out (empty for a model without one)."""
    iou = m.get("part_iou")
    if not iou:
        return ""
    parts = list(iou["in_family"])
    lines = ["| look | " + " | ".join(p.replace("_", " ") for p in parts) + " |",
             "|" + "---|" * (len(parts) + 1)]
    for key, name in (("in_family", "in-family"), ("held_out", "held-out families")):
        lines.append(f"| {name} | " + " | ".join(f"{iou[key][p]:.3f}" for p in parts) + " |")
    return f"""## Part head (training only)

The training-only part decoder's maps against the renderer's (IoU of probability > 0.5 with
coverage > 0.5, on {iou['n']} chips per look, seed 5). Whether the network finds the parts of
a look it never saw is what the part task is for; the decoder is not in the ONNX graph. A
part the head never marks above 0.5 scores 0: the thin ones (hull side, band, a pixel or two
across at coarse GSD) are learned, if at all, below that.

""" + "\n".join(lines)


def training_table(log: Path) -> str:
    """Per-epoch validation figures from the training run's CSV log (copied into the repo)."""
    import csv

    if not log.is_file():
        return ""
    rows = [r for r in csv.DictReader(open(log, newline="")) if r.get("val_acc")]
    parts = any(r.get("val_parts_loss") for r in rows)
    lines = ["| epoch | val accuracy | val AUROC | val freeboard MAE (m) | val load MAE |"
             + (" val part loss |" if parts else ""), "|---|---|---|---|---|" + (
                 "---|" if parts else "")]
    for r in rows:
        lines.append(f"| {r['epoch']} | {float(r['val_acc']):.3f} | {float(r['val_auroc']):.3f} | "
                     f"{float(r['val_freeboard_mae_m']):.2f} | {float(r['val_load_mae']):.3f} |"
                     + (f" {float(r['val_parts_loss']):.3f} |" if parts else ""))
    return ("Validation during training (1,024 in-family chips of another seed, half of them "
            f"without geometry; `{log.relative_to(REPO).as_posix()}`):\n\n" + "\n".join(lines))


def framing_words(meta: dict[str, str]) -> str:
    """How the view is framed, in words, from the ONNX metadata."""
    fs = float(meta.get("frame_scale", 0) or 0)
    if fs <= 0:
        return "the whole chip"
    return (f"cut around the ship found in the chip, {fs:g} times its estimated length, or the "
            f"whole chip when none is found")


def gpu_section(text: str) -> str:
    """The GPU checks' printout (scripts/gpu_checks.py on a lent GPU machine), pasted."""
    if not text.strip():
        return ""
    return ("### On a GPU\n\n`python scripts/gpu_checks.py --n 2048` (run by "
            "`scripts/gpu_stage.sh`) with this model's weights on a lent GPU machine, under "
            "that machine's own PyTorch: precision parity of the weights on CUDA against fp32 "
            "on the CPU, the network alone, and predict from files "
            "(`models/eval/gpu_checks.txt`). onnxruntime's CUDA provider was not there (the "
            "image has the CPU build, and `onnxruntime-gpu` is too large to carry to it), so "
            "the ONNX fp16 file and `predict --device cuda` are not measured:"
            "\n\n```\n" + text.strip() + "\n```")


def card(m: dict[str, Any], meta: dict[str, str], files: dict[str, str], bench: str,
         notes: str, training: str = "", gpu: str = "") -> str:
    """The model card's markdown."""
    sha = "\n".join(f"- `{k}`: sha256 `{v}`" for k, v in files.items())
    rec = json.loads(meta.get("recipe", "{}"))
    recipe = "\n".join(f"- `{k}` (sha256 `{v[:16]}…`)" for k, v in rec.items())
    return f"""# shipload default model: model card

Classifies a satellite chip of an oil tanker as **empty** (ballast) or **laden**, with a
calibrated p(laden), the load fraction and the midship **freeboard in metres**. It reads the
acquisition geometry (GSD, sun and sensor angles) as a second input when the image's metadata
gives it, and works without it. Backbone `{meta.get('backbone')}`, input
{meta.get('input_height')}x{meta.get('input_width')} hull-aligned view (`across_scale`
{meta.get('across_scale')}, `frame_scale` {meta.get('frame_scale', '0')}:
{framing_words(meta)}), temperature {float(meta.get('temperature', 'nan')):.3f} and laden-logit
offset {float(meta.get('laden_offset', 0)):+.3f} inside the graph.

{sha}

## Recipe

`{meta.get('recipe_command', 'python train.py fit --config configs/train.yaml')}`, then
`make export` (export, judge, int8 when it passes its gate, this card). The ONNX metadata
records the configs' sha256 (joint `{meta.get('recipe_sha256', '')}`):

{recipe}

{notes}

{training}

## How it is judged

On {m['n']:,} chips per set, rendered with seed 2 (never trained on): the training renderer's
own looks (**in-family**), looks drawn only from the **held-out families**
({', '.join(f'{a} {f}' for a, f in m['held_out_families'].items())}; the training stream never
draws them), and the plain **base renderer** of earlier releases. "Without geometry" gives the
model no metadata at all. The baseline is the previous release ({baseline_name(m)}).

{accuracy_table(m)}

In-family minus held-out-family accuracy, in points (goal: at most 2):

{gap_table(m)}

One held-out family at a time (the other axes drawn from the training families), which shows
which way of drawing the model has not learned to see through:

{per_axis_table(m)}

## The physical bound, with and without geometry

A perfect reader of the chip's own cue widths (`shipload.oracle`, mean of 3 fits on
{m.get('oracle_n', 'the')} in-family chips), scored on the in-family set. With the geometry it
can turn a shadow width into a freeboard. Points below the bound in brackets.

{oracle_table(m)}

## Freeboard

Mean absolute error of `freeboard_m` (midship freeboard, metres; the fleet spans 1-22 m),
with geometry:

{freeboard_table(m)}

## Framing

The same ship cut tight (1.1x its length, centred) and loose (2x, 10 % off centre):

{framing_table(m)}

## Adaptation to new imagery (held-out families)

{adaptation_table(m)}

{part_table(m)}


## Speed

`python benchmarks/bench_predict.py --n 1000` on this card's machine (ratios measured side
by side in one run):

{bench or 'not measured'}

{gpu_section(gpu)}

## History

Stage 14 (`models/init/stage14.pt`, this recipe's starting weights) is this recipe with the
part task at its old weight (1.0) on the renderer's seed 31: 4 passes of 16,000 cached chips
from stage 13, the first with the deck-layout axis; its card is in the repository's history at
commit 009e987. Stage 13 (`models/init/stage13.pt`) is stage 12's recipe on
the renderer's seed 22, on the standard deck only: 6 epochs of 5,000 fresh chips from stage 12
in fp32, with its calibration refitted to add the laden-logit offset; its card is in the
repository's history at commit 9dffbc3. Stage 12 (`models/init/stage12.pt`) is that recipe on
the renderer's seed 21: 5 epochs of 5,000 chips from stage 11, the first with look pairs, the
patched paint family and the extra sensor artefacts; its card is in the repository's history
at commit 300c614. Stage 11 (`models/init/stage11.pt`) had none of those three: 7 epochs of
5,000 chips from stage 10, the first with the view cut around the ship (`frame_scale` 1.1);
its card is at commit 8db1c66. Stage 10 (`models/init/stage10.pt`) is that recipe with the
view cut from the whole chip (no `frame_scale`): 9 epochs of 5,000 fresh chips with framing
pairs and the part task, from stage 9; its card is in the repository's history at commit
b4eccd5. Stage 9 (`models/init/stage9.pt`) had no part task: 7 epochs of 5,000 fresh chips
with framing pairs and the wide augmentation, from stage 8; its card is in the repository's
history at commit 609c022. Stage 8 (`models/init/stage8.pt`) was the first geometry-aware
model: the stage-7 weights fine-tuned for 14 epochs of 8,000 fresh chips without framing
pairs and with milder augmentation; its card is in the repository's history at commit
bb138f6. The image-only stages 1-7 (the last kept as `models/init/stage7.pt`) were trained on
the base renderer's look only; their card, configs and figures are in the history at commit
c616f5a (held-out accuracy 0.861 on the base renderer, as measured then; on the team's independent
renderer, by the team's own figures quoted in the robustness issue, 0.638, calling 23 % of
chips laden against a truth of 50 %).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", type=Path, default=REPO / "models" / "eval" / "metrics.json")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "shipload.onnx")
    ap.add_argument("--bench", type=Path, default=None,
                    help="text printed by benchmarks/bench_predict.py, pasted verbatim")
    ap.add_argument("--notes", type=Path, default=REPO / "models" / "eval" / "notes.md",
                    help="measured training notes (markdown) to include, if present")
    ap.add_argument("--gpu", type=Path, nargs="*",
                    default=[REPO / "models" / "eval" / n
                             for n in ("gpu_checks.txt", "cli_decode_h200.txt")],
                    help="measurements on a GPU machine (scripts/gpu_checks.py first), pasted "
                         "verbatim in order, those present")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "README.md")
    a = ap.parse_args()
    for f in (a.metrics, a.model):
        if not f.is_file():
            sys.exit(f"make_card: {f} not found; run scripts/evaluate_model.py first")
    m = json.loads(a.metrics.read_text())
    files = {p.relative_to(REPO).as_posix(): sha256_file(p) for p in (
        a.model, a.model.with_suffix(".pt"), a.model.with_name(a.model.stem + ".int8.onnx"))
        if p.is_file()}
    bench = a.bench.read_text() if a.bench and a.bench.is_file() else ""
    if bench:
        bench = "```\n" + bench.strip() + "\n```"
    notes = a.notes.read_text() if a.notes.is_file() else ""
    training = training_table(REPO / "models" / "eval" / "training_log.csv")
    gpu = "\n".join(f"{f.name}:\n{f.read_text()}" for f in a.gpu if f.is_file())
    a.out.write_text(card(m, read_metadata(a.model), files, bench, notes, training, gpu))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
