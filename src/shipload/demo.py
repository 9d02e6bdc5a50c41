"""``make demo``: render a held-out set, predict with the shipped model, evaluate, summarise."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from shipload.contract import GEOMETRY_FIELDS
from shipload.errors import UsageError


def run_demo(out: str | Path = "demo_out", n: int = 300, seed: int = 2024,
             model: str | Path | None = None, workers: int = 2) -> int:
    """Run the main job end to end on a fresh synthetic set; return the exit code."""
    from shipload.batch import run_predict
    from shipload.evaluate import evaluate
    from shipload.synth import SynthConfig, write_dataset
    from shipload.synth.preview import contact_sheet

    out = Path(out)
    chips = out / "chips"
    print(f"[1/3] rendering {n} held-out chips (seed {seed}) into {chips}")
    write_dataset(SynthConfig(), chips, n, seed, workers=workers, overwrite=True, progress=False)
    contact_sheet(chips, out / "preview.png")
    # What an analyst's manifest would hold: each chip's acquisition geometry, no heading
    # (the hull axis is estimated from the image, as in the model card).
    manifest = chips / "geometry.csv"
    with open(chips / "labels.csv", newline="") as f, open(manifest, "w", newline="") as g:
        cols = ["path", *GEOMETRY_FIELDS]
        w = csv.DictWriter(g, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(csv.DictReader(f))
    print(f"[2/3] shipload predict {manifest} --output {out / 'predictions.csv'}")
    s = run_predict([str(manifest)], out / "predictions.csv", model=model,
                    overwrite=True, quiet=True)
    print(f"[3/3] shipload evaluate → {out / 'report'}")
    m = evaluate(out / "predictions.csv", chips, out / "report", abstain=(0.35, 0.65))
    o = m["overall"]
    print()
    print(f"{'GSD band (m)':<14}{'chips':>7}{'accuracy':>10}{'95% CI':>18}")
    for band, b in m["by"].get("gsd_m", {}).items():
        ci = b.get("accuracy_ci95") or [None, None]
        cis = f"{ci[0]:.3f}-{ci[1]:.3f}" if None not in ci else ""
        print(f"{band:<14}{b['n']:>7}{b['accuracy']:>10.3f}{cis:>18}")
    print(f"{'all':<14}{o['n']:>7}{o['accuracy']:>10.3f}")
    def f3(v: float | None) -> str:  # a metric is None where it is undefined (one class)
        return "n/a" if v is None else f"{v:.3f}"

    print(f"\nAUROC {f3(o['auroc'])}  ECE {f3(o['ece'])}  load-fraction MAE "
          f"{f3(o.get('load_fraction_mae'))}")
    print(f"throughput {s['chips_per_s']} chips/s on {s['provider']}; errors {s['errors']}")
    print(f"report: {(out / 'report' / 'index.html').resolve()}")
    return 0


def run_port_demo(out: str | Path = "demo_out/port", seed: int = 0,
                  model: str | Path | None = None) -> int:
    """Scene → chips → predict → tally on a rendered terminal, against the true calls."""
    import csv

    from shipload.batch import run_predict
    from shipload.chips import cut_chips
    from shipload.synth.port import write_port
    from shipload.tally import run_tally

    out = Path(out)
    scenes = out / "scenes"
    print(f"[1/4] rendering a terminal seen on daily passes into {scenes}")
    truth = write_port(scenes, seed=seed)
    manifests = []
    for name in truth["passes"]:
        day = name.split("_")[1]
        d = out / "chips" / name
        print(f"[2/4] shipload chips {scenes / (name + '.tif')} --ships "
              f"{scenes / f'ships_{day}.csv'} --metadata {scenes / (name + '.json')} --out {d}")
        cut_chips(scenes / f"{name}.tif", scenes / f"ships_{day}.csv", d,
                  metadata=scenes / f"{name}.json", overwrite=True)
        manifests.append(str(d / "chips.csv"))
    print(f"[3/4] shipload predict {out / 'chips'}/*/chips.csv --output "
          f"{out / 'predictions.csv'}")
    run_predict(manifests, out / "predictions.csv", model=model, overwrite=True, quiet=True)
    print(f"[4/4] shipload tally --predictions {out / 'predictions.csv'} --calls "
          f"{scenes / 'calls.csv'} --out {out / 'tally'}")
    s = run_tally(out / "predictions.csv", scenes / "calls.csv", out / "tally")
    with open(scenes / "truth.csv", newline="") as f:
        true = {r["call_id"]: r for r in csv.DictReader(f)}
    with open(out / "tally" / "calls.csv", newline="") as f:
        got = list(csv.DictReader(f))
    print()
    print(f"{'call':<15}{'status':<15}{'barrels':>10}{'90% interval':>22}{'truth':>10}")
    for r in got:
        iv = f"{r['barrels_lo']}..{r['barrels_hi']}" if r["barrels"] else ""
        print(f"{r['call_id']:<15}{r['status']:<15}{r['barrels'] or '-':>10}{iv:>22}"
              f"{float(true[r['call_id']]['barrels']):>10.0f}")
    lo, hi = s["net_barrels_90"]
    both = [r for r in got if r["barrels"]]
    true_both = sum(float(true[r["call_id"]]["barrels"]) for r in both)
    print(f"\n{s['calls']} calls, {s['calls_with_both_states']} seen on both sides: "
          f"{s['loadings']} loadings, {s['discharges']} discharges, {s['unclear']} unclear; "
          f"≈ {s['net_barrels']:,} barrels net loaded, 90 % interval {lo:,} – {hi:,} "
          f"(truth over those calls: {true_both:,.0f}; over all {truth['calls']} calls: "
          f"{truth['loadings']} loadings, {truth['true_barrels_loaded']:,} barrels)")
    print(f"report: {(out / 'tally' / 'index.html').resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the demo."""
    p = argparse.ArgumentParser(prog="python -m shipload.demo", description=__doc__)
    p.add_argument("--out", default="demo_out")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--model", default=None)
    p.add_argument("--port", action="store_true",
                   help="run the port example instead: scene → chips → predict → tally")
    a = p.parse_args(argv)
    try:
        if a.port:
            return run_port_demo(Path(a.out) / "port", model=a.model)
        return run_demo(a.out, a.n, a.seed, a.model)
    except UsageError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
