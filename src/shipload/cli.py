"""shipload: tells from satellite chips of oil tankers whether each is empty or laden.

An analyst's path: chips (scene + ship positions -> chips) -> predict (call each chip) ->
adapt (fit the model to your sensor) -> tally (port calls -> loadings and barrels);
review (check calls and label chips in a local web page).
Also: evaluate (score calls against labels), synth (render labelled chips), export
(checkpoint -> ONNX).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shipload import __version__
from shipload.config import ConfigError
from shipload.errors import DataError, ExportError, UsageError


def _synth(a: argparse.Namespace) -> int:
    from shipload.config import load_yaml
    from shipload.synth.params import SynthConfig
    from shipload.synth.preview import contact_sheet
    from shipload.synth.writer import write_dataset

    cfg = load_yaml(SynthConfig, a.config) if a.config else SynthConfig()
    if a.output_format:
        import dataclasses

        sensor = dataclasses.replace(cfg.sensor, output=a.output_format)
        cfg = dataclasses.replace(cfg, sensor=sensor)
    out = write_dataset(cfg, a.out, a.n, a.seed, workers=a.workers, overwrite=a.overwrite,
                        progress=not a.quiet)
    print(f"wrote {a.n} chips and {out / 'labels.csv'}")
    if a.preview:
        print(f"preview: {contact_sheet(out, a.preview)}")
    return 0


def _export(a: argparse.Namespace) -> int:
    import json

    from shipload.export import convert_fp16, export_onnx, quantize_int8

    metrics = json.loads(Path(a.metrics).read_text()) if a.metrics else None
    rep = export_onnx(a.checkpoint, a.output, opset=a.opset, recipe=a.recipe, metrics=metrics,
                      parity_data=a.parity_data, weights_out=a.weights, command=a.train_command,
                      overwrite=a.overwrite)
    print(f"wrote {rep['path']} ({rep['bytes'] / 1e6:.2f} MB, sha256 {rep['sha256'][:16]}…); "
          f"parity with PyTorch: max |diff| {rep['max_abs_diff']:.1e}")
    if a.int8:
        if not a.calibration:
            raise UsageError("--int8 needs --calibration DIR (labelled or rendered chips)")
        out = Path(a.output)
        q = quantize_int8(out, out.with_name(out.stem + ".int8.onnx"), a.calibration,
                          judge=a.int8_judge)
        print(f"wrote {q['path']} ({q['bytes'] / 1e6:.2f} MB); on {q['n_eval']} chips of "
              f"{q['judged_on']} not used to calibrate: accuracy int8 "
              f"{q['accuracy_int8']:.4f} vs fp32 {q['accuracy_fp32']:.4f}, "
              f"same call on {q['agreement_with_fp32']:.2%}")
    if a.fp16:
        out = Path(a.output)
        h = convert_fp16(out, out.with_name(out.stem + ".fp16.onnx"))
        print(f"wrote {h['path']}; fp16 vs fp32 max |diff| {h['max_abs_diff_vs_fp32']:.1e} (CUDA)")
    return 0


def _predict(a: argparse.Namespace) -> int:
    from shipload.batch import run_predict

    geometry = {"gsd_m": a.gsd_m, "sun_elevation_deg": a.sun_elevation,
                "sun_azimuth_deg": a.sun_azimuth, "off_nadir_deg": a.off_nadir,
                "sensor_azimuth_deg": a.sensor_azimuth}
    s = run_predict(a.inputs, a.output, model=a.model, fmt=a.format, batch_size=a.batch_size,
                    device=a.device, threads=a.threads, resume=a.resume, overwrite=a.overwrite,
                    shard_spec=a.shard, tta=a.tta, quiet=a.quiet, workers=a.workers,
                    decode=a.decode, geometry=geometry)
    if not a.quiet:
        counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items())
        rate = f"{s['chips_per_s']} chips/s" if s["chips_per_s"] else "nothing new to predict"
        print(f"{s['inputs']} inputs: {counts}, errors {s['errors']}; {rate}; "
              f"provider {s['provider']}; rows in {s['output']}", file=sys.stderr)
    return 3 if s["errors"] else 0


def _evaluate(a: argparse.Namespace) -> int:
    from shipload.evaluate import evaluate

    abstain = None
    if a.abstain:
        try:
            lo, hi = (float(v) for v in a.abstain.split("-"))
        except ValueError as e:
            raise UsageError(f"--abstain must look like 0.4-0.6, got {a.abstain!r}") from e
        abstain = (lo, hi)
    m = evaluate(a.predictions, a.labels, a.out, abstain)
    o = m["overall"]
    def f3(v: float | None) -> str:  # a metric is None where it is undefined (one class)
        return "n/a" if v is None else f"{v:.3f}"

    print(f"{o['n']} chips: accuracy {f3(o['accuracy'])}, F1 {f3(o['f1'])}, AUROC "
          f"{f3(o['auroc'])}, ECE {f3(o['ece'])}; report {Path(a.out) / 'index.html'}")
    j = m["join"]
    if j["unmatched_predictions"] or j["unmatched_labels"] or j["duplicate_predictions"]:
        print(f"join: {j['unmatched_predictions']} predictions without label, "
              f"{j['unmatched_labels']} labels without prediction, "
              f"{j['duplicate_predictions']} duplicates (all in metrics.json)", file=sys.stderr)
        for k, v in j["examples"].items():
            if v:
                print(f"  {k.replace('_', ' ')}, e.g.: {', '.join(v[:3])}", file=sys.stderr)
    return 0


def _adapt(a: argparse.Namespace) -> int:
    from shipload.adapt import run_adapt, summary_line

    rep = run_adapt(a.chips, a.output, model=a.model, labels=a.labels, epochs=a.epochs,
                    overwrite=a.overwrite)
    print(summary_line(rep))
    return 0


def _chips(a: argparse.Namespace) -> int:
    from shipload.chips import cut_chips

    s = cut_chips(a.scene, a.ships, a.out, side_factor=a.side_factor,
                  default_length_m=a.default_length_m, metadata=a.metadata,
                  overwrite=a.overwrite)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items()))
    print(f"{s['ships']} ships: {counts}; manifest {s['manifest']} "
          f"(next: shipload predict {s['manifest']} --output calls.csv)")
    return 0 if s["counts"].get("ok", 0) == s["ships"] else 3


def _tally(a: argparse.Namespace) -> int:
    from shipload.tally import run_tally

    s = run_tally(a.predictions, a.calls, a.out, window_h=a.window_h,
                  bbl_per_tonne=a.bbl_per_tonne, load_sigma=a.load_sigma,
                  allow_unseen=a.allow_unseen)
    lo, hi = s["net_barrels_90"]
    print(f"{s['calls']} calls ({s['calls_with_both_states']} seen arriving and leaving): "
          f"{s['loadings']} loadings, {s['discharges']} discharges, {s['unclear']} unclear, "
          f"{s['one_sided']} one-sided, {s['not_seen']} not seen; "
          f"≈ {s['net_barrels']:,} barrels net loaded (90 % interval {lo:,} – {hi:,}); "
          f"{Path(a.out) / 'index.html'}")
    return 0


def _review(a: argparse.Namespace) -> int:
    from shipload.review.app import serve

    serve(a.predictions, a.labels, a.host, a.port, a.open, a.user, a.allow_remote)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    p = argparse.ArgumentParser(prog="shipload", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"shipload {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="render a labelled set of synthetic tanker chips")
    s.add_argument("--out", required=True, type=Path, help="output directory")
    s.add_argument("--n", required=True, type=int, help="number of chips")
    s.add_argument("--seed", type=int, default=0, help="run seed (same seed, same bytes)")
    s.add_argument("--config", type=Path, default=None,
                   help="renderer YAML (default: built-in, identical to configs/synth.yaml)")
    s.add_argument("--workers", type=int, default=1, help="rendering processes")
    s.add_argument("--format", dest="output_format", choices=["rgb8", "tiff16_rgb", "tiff16_rgbn"],
                   default=None, help="override sensor.output: 8-bit PNG/JPEG or 16-bit TIFF")
    s.add_argument("--preview", type=Path, default=None, help="also write a contact sheet PNG")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_synth)

    e = sub.add_parser("export", help="export a checkpoint to ONNX (checked before writing)")
    e.add_argument("checkpoint", type=Path, help="Lightning .ckpt or shipped .pt")
    e.add_argument("--output", type=Path, required=True, help="the .onnx to write")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    e.add_argument("--command", dest="train_command", default=None,
                   help="the training command, recorded in the metadata with --recipe")
    e.add_argument("--opset", type=int, default=18)
    e.add_argument("--int8", action="store_true", help="also write OUTPUT.int8.onnx (static QDQ)")
    e.add_argument("--calibration", type=Path, default=None, help="chips to calibrate int8 on")
    e.add_argument("--int8-judge", type=Path, default=None,
                   help="chips that judge int8 against fp32 (default: more of --calibration)")
    e.add_argument("--fp16", action="store_true",
                   help="also write OUTPUT.fp16.onnx for CUDA (parity checked on CUDA)")
    e.add_argument("--recipe", type=Path, nargs="+", default=None,
                   help="the training configs that made CKPT, in order (sha256 recorded)")
    e.add_argument("--metrics", type=Path, default=None, help="JSON of headline metrics to record")
    e.add_argument("--parity-data", type=Path, default=None,
                   help="chips for the parity batch (default: freshly rendered)")
    e.add_argument("--weights", type=Path, default=None, help="also save PyTorch weights (.pt)")
    e.set_defaults(func=_export)

    q = sub.add_parser(
        "predict", help="classify chips with the ONNX model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Classify tanker chips as empty or laden, with p_laden, the load fraction "
        "and the freeboard in metres.",
        epilog="""acquisition geometry (gsd_m, sun_elevation_deg, sun_azimuth_deg, off_nadir_deg,
sensor_azimuth_deg; azimuths clockwise from the chip's up, the sun's toward the sun, the
sensor's toward the satellite; optional heading_deg, the hull axis) comes from three sources,
field by field, highest precedence first:
  1. the chip's row in a CSV manifest (columns of those names),
  2. a sidecar JSON beside the chip (chip.png -> chip.json, same keys),
  3. the flags below, for a whole batch from one scene.
A value that is not a number or out of range (elevation 0-90, off-nadir 0-60, 0 < gsd <= 10)
makes an error row for that chip naming the field; a bad flag is a usage error.
Other manifest columns (vessel_id, acquired_utc, ...) pass through to the output rows.""")
    q.add_argument("inputs", nargs="+", help="files, folders, globs or a CSV manifest")
    q.add_argument("--model", type=Path, default=None, help="default: models/shipload.onnx")
    q.add_argument("--output", required=True, type=Path, help="results: .csv, .jsonl or .parquet")
    q.add_argument("--format", choices=["csv", "jsonl", "parquet"], default=None)
    q.add_argument("--batch-size", type=int, default=64)
    q.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    q.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    q.add_argument("--workers", type=int, default=None,
                   help="decoding workers (default: cores; 0 decodes inline)")
    q.add_argument("--decode", choices=["auto", "threads", "processes"], default="auto",
                   help="decoding workers are threads or spawned processes; auto: processes "
                        "from 4 workers on, for runs of 512 chips or more")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue an interrupted output")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output")
    q.add_argument("--shard", default=None, help="K/N: only the K-th of N interleaved slices")
    q.add_argument("--tta", action="store_true", help="average over flips/rotations")
    q.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    geo = q.add_argument_group("geometry for the whole batch (lowest precedence)")
    geo.add_argument("--gsd-m", type=float, default=None, help="ground sample distance, m")
    geo.add_argument("--sun-elevation", type=float, default=None, help="degrees above horizon")
    geo.add_argument("--sun-azimuth", type=float, default=None,
                     help="degrees clockwise from the chip's up, toward the sun")
    geo.add_argument("--off-nadir", type=float, default=None, help="view angle, degrees")
    geo.add_argument("--sensor-azimuth", type=float, default=None,
                     help="degrees clockwise from the chip's up, toward the satellite")
    q.set_defaults(func=_predict)

    v = sub.add_parser("evaluate", help="score predictions against labels; HTML report")
    v.add_argument("--predictions", required=True, type=Path)
    v.add_argument("--labels", required=True, type=Path, help="manifest CSV or ImageFolder root")
    v.add_argument("--out", required=True, type=Path, help="report folder")
    v.add_argument("--abstain", default=None, help="LOW-HIGH: p_laden inside → uncertain")
    v.set_defaults(func=_evaluate)

    d = sub.add_parser("adapt", help="fit the model to your own imagery (unlabelled chips, "
                       "optionally a few labels)")
    d.add_argument("chips", nargs="+", help="your chips: files, folders, globs or a manifest")
    d.add_argument("--output", required=True, type=Path, help="the adapted .onnx to write")
    d.add_argument("--model", type=Path, default=None,
                   help="base model (default: the shipped one); its .pt must lie beside it")
    d.add_argument("--labels", type=Path, default=None,
                   help="CSV path,label[,load_fraction] of some of the chips (e.g. from "
                        "shipload review); recalibrates the call on them")
    d.add_argument("--epochs", type=int, default=0,
                   help="with --labels, fine-tune the network this many epochs before "
                        "recalibrating (default 0: it did not help on held-out looks)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    d.set_defaults(func=_adapt)

    c = sub.add_parser("chips", help="cut one chip per ship from a satellite scene")
    c.add_argument("scene", type=Path, help="GeoTIFF or COG, any size (read by windows)")
    c.add_argument("--ships", required=True, type=Path,
                   help="CSV (lon,lat or x,y; vessel_id, length_m, heading_deg, acquired_utc) "
                        "or GeoJSON of points")
    c.add_argument("--out", required=True, type=Path, help="folder for chips/ and chips.csv")
    c.add_argument("--side-factor", type=float, default=1.6, help="chip side / ship length")
    c.add_argument("--default-length-m", type=float, default=250.0,
                   help="length of ships without length_m")
    c.add_argument("--metadata", type=Path, default=None,
                   help="scene geometry: JSON with the contract keys, a Planet metadata JSON or "
                        "a Maxar .IMD")
    c.add_argument("--overwrite", action="store_true", help="replace an existing chips.csv")
    c.set_defaults(func=_chips)

    t = sub.add_parser("tally", help="port calls + predictions → loadings and barrels")
    t.add_argument("--predictions", required=True, type=Path,
                   help="predict's output; rows carry vessel_id and acquired_utc")
    t.add_argument("--calls", required=True, type=Path,
                   help="CSV: call_id, vessel_id, port, arrival_utc, departure_utc, "
                        "capacity_bbl or dwt_t")
    t.add_argument("--out", required=True, type=Path, help="folder for calls.csv, "
                   "summary.json, index.html")
    t.add_argument("--window-h", type=float, default=48.0,
                   help="sightings this long before arrival / after departure count")
    t.add_argument("--bbl-per-tonne", type=float, default=7.33,
                   help="converts dwt_t (crude ~7.33; products 7.5-8.5)")
    t.add_argument("--load-sigma", type=float, default=0.2,
                   help="per-sighting load error (the card's load MAE x 1.25)")
    t.add_argument("--allow-unseen", action="store_true",
                   help="report calls of vessels in no prediction row as not_seen")
    t.set_defaults(func=_tally)

    r = sub.add_parser(
        "review", help="local web app: check calls, label chips (least sure first)",
        description="Serve a local page of the chips in PREDICTIONS, least sure first, to check "
                    "the calls and label chips by keyboard (E empty, L laden, U unsure, S skip, "
                    "arrows move, Z undo). Each label is saved to SQLite as it is made "
                    "(LABELS with .sqlite); Export writes LABELS as path,label for "
                    "`adapt --labels`, training and `evaluate`.")
    r.add_argument("predictions", type=Path, help="predict's output (.csv, .jsonl, .parquet)")
    r.add_argument("--labels", type=Path, default=None,
                   help="labels CSV that Export writes (default PREDICTIONS-stem.labels.csv "
                        "beside it); an existing one seeds a new label database")
    r.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    r.add_argument("--port", type=int, default=8765)
    r.add_argument("--allow-remote", action="store_true",
                   help="needed for any --host other than this machine's loopback")
    r.add_argument("--user", default=None, help="name saved with each label (default: OS user)")
    r.add_argument("--open", action="store_true", help="open the page in a browser")
    r.set_defaults(func=_review)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shipload`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, ConfigError, DataError, ExportError) as e:
        print(f"shipload {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shipload {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
