"""End-to-end `shipload predict` throughput against baselines, measured side by side.

    python benchmarks/bench_predict.py [--n 2000] [--model models/shipload.onnx]

On the same renderer chips (mixed sizes, PNG/JPEG and 16-bit 4-band TIFF):
  ours      shipload predict (onnxruntime, decoding overlapped in worker processes)
  eager     the same weights in PyTorch eager with a torchvision-style DataLoader
  floor     decode + align (read_chip + prepare_chip) in one process, no model
  int8      the int8 QDQ model against fp32, model only and end to end
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.data import DataLoader, Dataset

from shipload.batch import collect_inputs, run_predict
from shipload.data.io import read_chip
from shipload.data.transforms import InputSpec, prepare_chip
from shipload.export import load_model, quantize_int8
from shipload.runtime import read_metadata
from shipload.synth import SynthConfig, write_dataset

REPO = Path(__file__).resolve().parents[1]


class Views(Dataset):  # type: ignore[type-arg]
    def __init__(self, paths: list[str], spec: InputSpec) -> None:
        self.paths, self.spec = paths, spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        v = prepare_chip(read_chip(self.paths[i]), self.spec)
        return torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1)))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "shipload.onnx")
    ap.add_argument("--weights", type=Path, default=REPO / "models" / "shipload.pt")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    meta = read_metadata(a.model)
    spec = InputSpec.from_mapping(meta)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = SynthConfig()
        n_tif = a.n // 10
        write_dataset(cfg, root / "rgb", a.n - n_tif, seed=77, workers=2, progress=False)
        cfg16 = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor,
                                                                    output="tiff16_rgbn"))
        write_dataset(cfg16, root / "tif", n_tif, seed=78, workers=2, progress=False)
        paths = collect_inputs([str(root / "rgb" / "images"), str(root / "tif" / "images")])
        n = len(paths)
        print(f"{n} chips ({n_tif} 16-bit RGBN TIFF, the rest PNG/JPEG, 32-384 px), "
              f"{cores} cores, model {a.model.name} ({meta.get('backbone')}, input "
              f"{spec.height}x{spec.width} {spec.policy})")

        t_floor = timed(lambda: [prepare_chip(read_chip(p), spec) for p in paths])

        m = load_model(a.weights)
        net = m.net.eval()
        torch.set_num_threads(cores)

        def eager() -> None:
            loader = DataLoader(Views(paths, spec), batch_size=a.batch,
                                num_workers=max(1, cores - 1))
            with torch.no_grad():
                for x in loader:
                    net(x)

        t_eager = timed(eager)

        out = root / "p.csv"
        t_ours = timed(lambda: run_predict(paths, out, model=a.model, batch_size=a.batch,
                                           overwrite=True, quiet=True))

        q = root / "q.onnx"
        quantize_int8(a.model, q, root / "rgb", n_calib=256)
        views = np.stack([prepare_chip(read_chip(p), spec) for p in paths[:512]])
        x = np.ascontiguousarray(views.transpose(0, 3, 1, 2), dtype=np.float32)

        def model_only(path: Path) -> float:
            so = ort.SessionOptions()
            so.intra_op_num_threads = cores
            s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            s.run(None, {"image": x[: a.batch]})
            return timed(lambda: [s.run(None, {"image": x[i : i + a.batch]})
                                  for i in range(0, len(x), a.batch)])

        t32, t8 = model_only(a.model), model_only(q)
        t_ours8 = timed(lambda: run_predict(paths, out, model=q, batch_size=a.batch,
                                            overwrite=True, quiet=True))

    r = {k: n / v for k, v in {"floor": t_floor, "eager": t_eager, "ours": t_ours,
                               "ours_int8": t_ours8}.items()}
    print(f"  decode+align floor (1 process)  {r['floor']:8.1f} chips/s")
    print(f"  PyTorch eager + DataLoader      {r['eager']:8.1f} chips/s")
    print(f"  shipload predict (fp32)         {r['ours']:8.1f} chips/s   "
          f"{r['ours'] / r['eager']:.2f}x eager, {r['ours'] / r['floor']:.2f}x floor")
    print(f"  shipload predict (int8)         {r['ours_int8']:8.1f} chips/s   "
          f"{r['ours_int8'] / r['ours']:.2f}x fp32 end to end")
    print(f"  model only, onnxruntime: fp32 {len(x) / t32:8.1f} int8 {len(x) / t8:8.1f} "
          f"views/s  ({t32 / t8:.2f}x)")
    print(f"  provider: {ort.get_available_providers()}")


if __name__ == "__main__":
    main()
