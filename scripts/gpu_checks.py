"""GPU checks in one short run on a CUDA machine: precision parity and predict throughput.

    python scripts/gpu_checks.py [--n 2048] [--weights models/shipload.pt]

On N base-renderer chips (seed 77; predicted with their manifest geometry):
  parity  the weights on CUDA in fp32, and under fp16 and bf16 autocast, against fp32 on the CPU:
          the largest |change in p_laden| and the share of calls that change
  model   views/s of the network alone on CUDA (batch 256; fp32, fp16, bf16 autocast), and of
          the ONNX model in onnxruntime on every CPU core (the shipped CLI path), on the same views
  e2e     chips/s from files: decode + view in DataLoader workers feeding CUDA (fp16 autocast),
          against `shipload predict` (onnxruntime, the providers this machine has; decoding in
          threads, the library's default: this script imports torch, which every spawned
          decoding process would import again, so the CLI's processes are timed as whole
          commands instead) and the decode + view floor in one process
Everything is measured side by side in this one run; ratios are what carries to other machines.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.data import DataLoader

from shipload.batch import run_predict
from shipload.data.datasets import ChipDataset, load_records
from shipload.data.io import read_chip
from shipload.data.transforms import EvalTransform
from shipload.export import load_model
from shipload.runtime import usable_cores
from shipload.synth import SynthConfig, write_dataset
from shipload.view import prepare_view, stack_views

REPO = Path(__file__).resolve().parents[1]


def p_laden(net: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
            dtype: torch.dtype | None, batch: int = 256) -> np.ndarray:
    """(N,) p_laden of views x (N, 3, H, W) and geometry g (N, G) on the net's device."""
    dev = next(net.parameters()).device
    out = []
    with torch.no_grad(), torch.autocast(dev.type, dtype=dtype or torch.float32,
                                         enabled=dtype is not None):
        for i in range(0, len(x), batch):
            logits = net(x[i:i + batch].to(dev), g[i:i + batch].to(dev))[0]
            out.append(torch.softmax(logits.float(), 1)[:, 1].cpu())
    return torch.cat(out).numpy()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def views_per_s(net: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
                dtype: torch.dtype | None, batch: int = 256, reps: int = 50) -> float:
    """Network-alone throughput, views already on the net's device."""
    dev = next(net.parameters()).device
    xs, gs = x[:batch].to(dev), g[:batch].to(dev)
    with torch.no_grad(), torch.autocast(dev.type, dtype=dtype or torch.float32,
                                         enabled=dtype is not None):
        for _ in range(3):
            net(xs, gs)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            net(xs, gs)
        sync(dev)
    return reps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--weights", type=Path, default=REPO / "models" / "shipload.pt")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "shipload.onnx")
    ap.add_argument("--device", default="cuda", help="cpu: try the script where no GPU is")
    ap.add_argument("--reps", type=int, default=50, help="timed batches, model alone")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on a GPU machine")
    cores = usable_cores()
    m = load_model(a.weights)
    spec = m.spec
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, onnxruntime "
          f"{ort.__version__} providers {ort.get_available_providers()}, {cores} cores")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        t0 = time.perf_counter()
        write_dataset(SynthConfig(), root, a.n, seed=77, workers=cores, progress=False)
        recs = load_records(root / "labels.csv")
        print(f"{len(recs)} chips rendered in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        views = [prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg) for r in recs]
        floor = len(recs) / (time.perf_counter() - t0)
        xn, gn = stack_views(views)
        x, g = torch.from_numpy(xn), torch.from_numpy(gn)
        truth = np.array([r.label for r in recs])

        cpu_net = m.net.eval()
        ref = p_laden(cpu_net, x, g, None)
        gpu_net = load_model(a.weights).net.eval().to(dev)
        print(f"parity against fp32 on the CPU (p_laden), {dev.type} autocast:")
        for name, dt in (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
            p = p_laden(gpu_net, x, g, dt)
            flips = np.mean((p >= 0.5) != (ref >= 0.5))
            d = np.abs(p - ref)
            print(f"  {name}: max |dp| {d.max():.1e}, mean {d.mean():.1e}, "
                  f"calls changed {flips:.2%}, accuracy {np.mean((p >= 0.5) == truth):.3f} "
                  f"(CPU fp32 {np.mean((ref >= 0.5) == truth):.3f})")

        print("model alone, batch 256:")
        rates = {name: views_per_s(gpu_net, x, g, dt, reps=a.reps) for name, dt in
                 (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16))}
        so = ort.SessionOptions()
        so.intra_op_num_threads = cores
        s = ort.InferenceSession(str(a.model), so, providers=["CPUExecutionProvider"])
        s.run(None, {"image": xn[:64], "geometry": gn[:64]})
        t0 = time.perf_counter()
        for i in range(0, len(xn), 64):
            s.run(None, {"image": xn[i:i + 64], "geometry": gn[i:i + 64]})
        rates["onnxruntime CPU"] = len(xn) / (time.perf_counter() - t0)
        for k, v in rates.items():
            print(f"  {k:16s} {v:10.0f} views/s "
                  f"({v / rates['onnxruntime CPU']:.1f}x onnxruntime CPU)")

        def e2e_torch() -> float:
            loader = DataLoader(ChipDataset(recs, EvalTransform(spec)), batch_size=64,
                                num_workers=max(1, cores - 1))
            t0 = time.perf_counter()
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.float16):
                for b in loader:
                    torch.softmax(gpu_net(b["image"].to(dev, non_blocking=True),
                                          b["geometry"].to(dev))[0].float(), 1)
            sync(dev)
            return len(recs) / (time.perf_counter() - t0)

        t_torch = e2e_torch()
        t0 = time.perf_counter()
        summary = run_predict([str(root / "labels.csv")], root / "p.csv", model=a.model,
                              batch_size=64, overwrite=True, quiet=True)
        t_ours = len(recs) / (time.perf_counter() - t0)
        print("end to end, from files:")
        print(f"  decode+view floor (1 process)        {floor:8.1f} chips/s")
        print(f"  PyTorch {dev.type} fp16 + DataLoader ({cores - 1} w) {t_torch:8.1f} chips/s "
              f"({t_torch / floor:.2f}x floor)")
        print(f"  shipload predict ({summary.get('provider', '?')}) {t_ours:8.1f} chips/s "
              f"({t_ours / floor:.2f}x floor, {t_ours / t_torch:.2f}x PyTorch {dev.type})")


if __name__ == "__main__":
    main()
