"""Training throughput per backbone on CPU, and the data pipelines alone, side by side.

    python benchmarks/bench_train.py [--steps 6] [--batch 32]

Prints images/s of a full optimisation step (forward, backward, AdamW) for each backbone at
the shipped input (120 x 160, hull-aligned, with geometry), and images/s of three data
pipelines in one process: the fresh stream (render + view + augment: the shipped recipe),
chips read from files (decode + view + augment) and the view cache (augment only), so the
trade-off of fresh data shows. Each backbone runs in fp32 and under bf16 autocast; the row
``shipnet+parts`` is the shipped recipe's step (the part decoder too, on half the batch, as
the paired batches give it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from shipload.config import load_yaml
from shipload.data.datasets import CachedViewDataset, ChipDataset, load_records
from shipload.data.stream import RenderedStream
from shipload.data.transforms import InputSpec, TrainTransform, ViewTrainTransform
from shipload.model.backbones import BACKBONES, ShiploadNet
from shipload.synth import SynthConfig, write_dataset
from shipload.view import GEO_DIM

REPO = Path(__file__).resolve().parents[1]

SPEC = InputSpec()


def train_rate(name: str, steps: int, batch: int, device: str, bf16: bool) -> float:
    parts = name.endswith("+parts")
    net = ShiploadNet(name.removesuffix("+parts")).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, SPEC.height, SPEC.width, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    g = torch.rand(batch, GEO_DIM, device=device)
    t0 = 0.0
    for i in range(steps + 2):
        if i == 2:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            if parts:
                logits, _, _, maps = net.forward_parts(x, g, batch // 2)
                loss = torch.nn.functional.cross_entropy(logits.float(), y) + maps.float().mean()
            else:
                logits, _, _ = net(x, g)
                loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def data_rate(ds: torch.utils.data.Dataset, n: int) -> float:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backbones", default=",".join(["shipnet+parts", *BACKBONES]))
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cpu = torch.backends.cpu.get_cpu_capability()
    print(f"device {device} (CPU capability {cpu}), torch threads {torch.get_num_threads()}, input "
          f"{SPEC.height}x{SPEC.width}, batch {a.batch}")
    cfg = load_yaml(SynthConfig, REPO / "configs" / "synth_train.yaml")
    with tempfile.TemporaryDirectory() as d:
        root = write_dataset(cfg, Path(d) / "s", 200, seed=0, workers=2, progress=False)
        recs = load_records(root)
        stream = data_rate(RenderedStream(cfg, 0, SPEC), 200)
        raw = data_rate(ChipDataset(recs, TrainTransform(SPEC, 0)), 200)
        views = np.stack([np.zeros((SPEC.height, SPEC.width, 3), np.uint8)] * len(recs))
        geo = np.zeros((len(recs), GEO_DIM), np.float32)
        cached = data_rate(CachedViewDataset(recs, views, geo, ViewTrainTransform(0)), 400)
    print(f"data pipeline, 1 process: fresh stream (render+view+augment) {stream:7.1f} img/s; "
          f"files (decode+view+augment) {raw:7.1f} img/s ({raw / stream:.1f}x); "
          f"cached views+augment {cached:7.1f} img/s ({cached / stream:.0f}x)")
    base: float | None = None
    names = a.backbones.split(",")
    for name in names:
        r = train_rate(name, a.steps, a.batch, device, bf16=False)
        base = base or r
        line = f"  {name:<20} fp32 {r:8.1f} img/s ({r / base:5.2f}x {names[0]})"
        # bf16 autocast on a CPU too: with AMX or AVX512-BF16 oneDNN runs the convolutions
        # natively (--trainer.precision bf16-mixed); without, it emulates them and is slower.
        rb = train_rate(name, a.steps, a.batch, device, bf16=True)
        line += f"   bf16 {rb:8.1f} img/s ({rb / r:.2f}x fp32)"
        bottleneck = "model" if max(r, rb) < stream else "rendering"
        print(line + f"   bottleneck with the fresh stream: {bottleneck}")


if __name__ == "__main__":
    main()
