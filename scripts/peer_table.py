"""The card's peer comparison: accuracy from the peer runs, CPU speed measured side by side.

    python scripts/peer_table.py [--runs runs/peer] [--out models/eval/peer.json]

Reads the last validation accuracy of each ``configs/peer.yaml`` run (``runs/peer/<backbone>``,
its newest ``version_*``), then times every backbone's network in PyTorch eager on this CPU,
batch 64 at the 80x160 view the peer runs trained at (``InputSpec()``), in interleaved
rounds so that machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from shipload.data.transforms import InputSpec
from shipload.model.backbones import ShiploadNet

REPO = Path(__file__).resolve().parents[1]


def last_val_acc(run: Path) -> float | None:
    """Validation accuracy of the last epoch of the newest ``version_*`` under ``run``."""
    versions = sorted(run.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    if not versions:
        return None
    accs = [float(r["val_acc"]) for r in csv.DictReader(open(versions[-1])) if r.get("val_acc")]
    return accs[-1] if accs else None


def views_per_s(names: list[str], batch: int = 64, rounds: int = 5) -> dict[str, float]:
    """Eager CPU inference rate of each backbone, best of ``rounds`` interleaved timings."""
    spec = InputSpec()
    x = torch.rand(batch, 3, spec.height, spec.width)
    nets = {n: ShiploadNet(n).eval() for n in names}
    best = dict.fromkeys(names, float("inf"))
    with torch.no_grad():
        for n in names:
            nets[n](x)  # warm-up
        for _ in range(rounds):
            for n in names:
                t0 = time.perf_counter()
                nets[n](x)
                best[n] = min(best[n], time.perf_counter() - t0)
    return {n: batch / t for n, t in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "peer")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "eval" / "peer.json")
    ap.add_argument("--backbones", nargs="+", default=["shipnet", "resnet18", "resnet50"])
    a = ap.parse_args()
    speed = views_per_s(a.backbones)
    # A backbone without a run here keeps the accuracy measured before (if any).
    before = json.loads(a.out.read_text()) if a.out.exists() else {}
    table = {n: {"val_acc": last_val_acc(a.runs / n) or before.get(n, {}).get("val_acc"),
                 "cpu_views_per_s": round(speed[n], 1), "threads": torch.get_num_threads()}
             for n in a.backbones}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
