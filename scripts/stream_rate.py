"""Training samples/s a recipe's stream delivers on this machine, and the run that fits a budget.

    python scripts/stream_rate.py --seconds 30 --budget 400 --val-seconds 12 -- \
        --config configs/train.yaml --config configs/gpu.yaml [overrides...]

The stream is rendered by the CPUs, so on a GPU machine it, not the GPU, sets the pace of a
run; the one-cycle schedule spans the whole run, so the epoch count must be fixed before it
starts. This times the recipe's own training loader (its workers, pairs and parts) after its
first batch, then prints ``rate=<samples/s> epochs=<n>`` as its last line: the most epochs
of ``data.chips_per_epoch`` that fit ``--budget`` seconds, each epoch also paying
``--val-seconds`` for validation and its checkpoint.

With ``--cache-share s`` it sizes a run on a fixed, cached set instead (``data.stream_cache``):
the fill renders for ``s`` of the budget at the stream's rate, and the rest trains at the rate
the network itself trains on this device (timed on one of the loader's batches, repeated, with
the recipe's precision); the last line is then ``rate=<samples/s> cache=<items>
chips_per_epoch=<n> epochs=<--epochs>``, to pass on as ``--data.stream_cache``,
``--data.chips_per_epoch`` and ``--trainer.max_epochs``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import torch

from shipload.training import cli_main


def train_rate(task: Any, batch: dict[str, torch.Tensor], precision: str,
               seconds: float) -> float:
    """Samples/s of the task's training step (forward, losses, backward, AdamW) on one batch.

    Runs on CUDA when there is one, else on the CPU, under the autocast that ``precision``
    (Lightning's, e.g. ``bf16-mixed``) names; the first step (warm-up) is not timed.
    """
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    task = task.to(dev).train()
    b = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-6)
    dtype = (torch.bfloat16 if precision.startswith("bf16")
             else torch.float16 if precision.startswith("16") else None)

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = task._step(b, "train")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with warnings.catch_warnings():  # self.log without a trainer: a warning per call
        warnings.simplefilter("ignore")
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return n * len(b["label"]) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to time the stream")
    ap.add_argument("--budget", type=float, required=True, help="seconds the fit may take")
    ap.add_argument("--val-seconds", type=float, default=12.0)
    ap.add_argument("--cache-share", type=float, default=0.0,
                    help="size a cached run: the share of the budget spent rendering the cache")
    ap.add_argument("--epochs", type=int, default=8, help="epochs of a cached run")
    ap.add_argument("--train-seconds", type=float, default=15.0,
                    help="how long to time the network's training step (cached runs)")
    ap.add_argument("cli", nargs=argparse.REMAINDER, help="after --: the fit's config flags")
    a = ap.parse_args()
    args = [x for x in a.cli if x != "--"] + ["--data.stream_cache", "0"]  # time the stream
    cli = cli_main(args, run=False)
    dm = cli.datamodule
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    first = next(it)  # workers started and warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        try:
            n += len(next(it)["label"])
        except StopIteration:  # an epoch shorter than the probe: go on with the next
            it = iter(dm.train_dataloader())
    rate = n / (time.perf_counter() - t0)
    del it  # the rendering workers end before the network is timed
    print(f"{n} samples in {a.seconds:.0f} s with {dm.hparams.num_workers} workers")
    if a.cache_share <= 0:
        per_epoch = dm.hparams.chips_per_epoch / rate + a.val_seconds
        epochs = max(1, int(a.budget // per_epoch))
        print(f"an epoch of {dm.hparams.chips_per_epoch} takes ~{per_epoch:.0f} s")
        print(f"rate={rate:.1f} epochs={epochs}")
        return
    fill_s = a.cache_share * a.budget
    cache = max(dm.hparams.batch_size, int(rate * fill_s))
    trained = train_rate(cli.model, first, str(cli.trainer.precision), a.train_seconds)
    train_s = max(0.0, a.budget - fill_s - a.epochs * a.val_seconds)
    bs = dm.hparams.batch_size
    per_epoch = max(bs, int(trained * train_s / a.epochs) // bs * bs)
    print(f"the network trains {trained:.1f} samples/s ({cli.trainer.precision}); a cache of "
          f"{cache} renders in ~{fill_s:.0f} s, then {a.epochs} epochs of {per_epoch} "
          f"({a.epochs * per_epoch / cache:.1f} passes over it) in ~{train_s:.0f} s")
    print(f"rate={rate:.1f} cache={cache} chips_per_epoch={per_epoch} epochs={a.epochs}")


if __name__ == "__main__":
    main()
