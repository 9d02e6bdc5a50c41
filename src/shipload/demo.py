"""``make demo``: render a held-out set, predict with the shipped model, evaluate, summarise."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    print(f"[2/3] shipload predict {chips} --output {out / 'predictions.csv'}")
    s = run_predict([str(chips / "images")], out / "predictions.csv", model=model,
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
    print(f"\nAUROC {o['auroc']}  ECE {o['ece']}  load-fraction MAE {o.get('load_fraction_mae')}")
    print(f"throughput {s['chips_per_s']} chips/s on {s['provider']}; errors {s['errors']}")
    print(f"report: {(out / 'report' / 'index.html').resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the demo."""
    p = argparse.ArgumentParser(prog="python -m shipload.demo", description=__doc__)
    p.add_argument("--out", default="demo_out")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--model", default=None)
    a = p.parse_args(argv)
    try:
        return run_demo(a.out, a.n, a.seed, a.model)
    except UsageError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
