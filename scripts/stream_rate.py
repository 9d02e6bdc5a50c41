"""Training samples/s a recipe's stream delivers on this machine, and the epochs that fit a budget.

    python scripts/stream_rate.py --seconds 30 --budget 400 --val-seconds 12 -- \
        --config configs/train.yaml --config configs/gpu.yaml [overrides...]

The stream is rendered by the CPUs, so on a GPU machine it, not the GPU, sets the pace of a
run; the one-cycle schedule spans the whole run, so the epoch count must be fixed before it
starts. This times the recipe's own training loader (its workers, pairs and parts) after its
first batch, then prints ``rate=<samples/s> epochs=<n>`` as its last line: the most epochs
of ``data.chips_per_epoch`` that fit ``--budget`` seconds, each epoch also paying
``--val-seconds`` for validation and its checkpoint.
"""

from __future__ import annotations

import argparse
import time

from shipload.training import cli_main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to time the stream")
    ap.add_argument("--budget", type=float, required=True, help="seconds the fit may take")
    ap.add_argument("--val-seconds", type=float, default=12.0)
    ap.add_argument("cli", nargs=argparse.REMAINDER, help="after --: the fit's config flags")
    a = ap.parse_args()
    args = [x for x in a.cli if x != "--"]
    cli = cli_main(args, run=False)
    dm = cli.datamodule
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)  # workers started and warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        try:
            n += len(next(it)["label"])
        except StopIteration:  # an epoch shorter than the probe: go on with the next
            it = iter(dm.train_dataloader())
    rate = n / (time.perf_counter() - t0)
    per_epoch = dm.hparams.chips_per_epoch / rate + a.val_seconds
    epochs = max(1, int(a.budget // per_epoch))
    print(f"{n} samples in {a.seconds:.0f} s with {dm.hparams.num_workers} workers; "
          f"an epoch of {dm.hparams.chips_per_epoch} takes ~{per_epoch:.0f} s")
    print(f"rate={rate:.1f} epochs={epochs}")


if __name__ == "__main__":
    main()
