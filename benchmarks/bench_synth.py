"""Renderer throughput (chips/s) with 1 and 2 worker processes, measured side by side.

    python benchmarks/bench_synth.py [--n 600]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from shipload.synth import SynthConfig, write_dataset


def rate(n: int, workers: int, root: Path) -> float:
    t0 = time.perf_counter()
    write_dataset(SynthConfig(), root / f"w{workers}", n, seed=0, workers=workers, progress=False)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r1 = rate(a.n, 1, Path(d))
        r2 = rate(a.n, 2, Path(d))
    print(f"renderer, default size mix, {a.n} chips each")
    print(f"  1 worker : {r1:7.1f} chips/s")
    print(f"  2 workers: {r2:7.1f} chips/s  ({r2 / r1:.2f}x of 1 worker)")
    print(f"  50,000-chip training set at 2 workers: {50000 / r2 / 60:.1f} min")


if __name__ == "__main__":
    main()
