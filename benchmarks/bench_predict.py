"""End-to-end `shipload predict` throughput against baselines, measured side by side.

    python benchmarks/bench_predict.py [--n 2000] [--model models/shipload.onnx]
                                       [--compare earlier.onnx ...]

On the same renderer chips (mixed sizes, PNG/JPEG and 16-bit 4-band TIFF), predicted from
their manifests so that every chip carries its acquisition geometry:
  ours      shipload predict (onnxruntime; decoding overlapped in threads on a few cores,
            in processes on many: --decode auto), and the other decoding mode beside it
  eager     the same weights in PyTorch eager with a torchvision-style DataLoader
  floor     decode + view (read_chip + prepare_view with geometry) in one process, no model
  int8      the int8 QDQ model against fp32, model only and end to end
An image-only model (one input, e.g. an earlier release) runs through the same harness.
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

# Only light imports at the top: decoding processes (predict --decode processes) start by
# importing the caller's main module, this one, and torch there would cost seconds each.
from shipload.batch import run_predict
from shipload.data.io import read_chip
from shipload.inference import PROCESS_MIN_WORKERS
from shipload.runtime import read_metadata
from shipload.synth import SynthConfig, write_dataset
from shipload.view import InputSpec, prepare_view, stack_views

REPO = Path(__file__).resolve().parents[1]


class Views:
    """A map-style dataset of views, for the eager baseline's DataLoader."""

    def __init__(self, recs: list, spec: InputSpec) -> None:  # type: ignore[type-arg]
        self.recs, self.spec = recs, spec

    def __len__(self) -> int:
        return len(self.recs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        r = self.recs[i]
        v = prepare_view(read_chip(r.path), self.spec, r.geometry, r.heading_deg)
        return np.ascontiguousarray(v.image.transpose(2, 0, 1)), v.geometry


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
    ap.add_argument("--compare", type=Path, nargs="*", default=[],
                    help="other ONNX models (earlier releases) timed in the same run")
    a = ap.parse_args()
    import torch
    from torch.utils.data import DataLoader

    from shipload.data.datasets import load_records
    from shipload.export import load_model, quantize_int8

    meta = read_metadata(a.model)
    spec = InputSpec.from_mapping(meta)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = SynthConfig()
        n_tif = a.n // 10
        write_dataset(cfg, root / "rgb", a.n - n_tif, seed=77, workers=cores, progress=False)
        cfg16 = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor,
                                                                    output="tiff16_rgbn"))
        write_dataset(cfg16, root / "tif", n_tif, seed=78, workers=cores, progress=False)
        manifests = [str(root / "rgb" / "labels.csv"), str(root / "tif" / "labels.csv")]
        recs = load_records(manifests[0]) + load_records(manifests[1])
        n = len(recs)
        print(f"{n} chips ({n_tif} 16-bit RGBN TIFF, the rest PNG/JPEG, 32-384 px), "
              f"{cores} cores, model {a.model.name} ({meta.get('backbone')}, input "
              f"{spec.height}x{spec.width} {spec.policy})")

        def floor() -> None:
            for r in recs:
                prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg)

        t_floor = timed(floor)

        m = load_model(a.weights)
        net = m.net.eval()
        if len(ort.InferenceSession(str(a.model), providers=["CPUExecutionProvider"])
               .get_inputs()) == 1:
            image_only = net
            net = lambda x, g: image_only(x)  # noqa: E731  (an image-only release's weights)
        torch.set_num_threads(cores)

        def eager() -> None:
            loader = DataLoader(Views(recs, spec), batch_size=a.batch,
                                num_workers=max(1, cores - 1))
            with torch.no_grad():
                for x, g in loader:
                    net(x, g)

        t_eager = timed(eager)

        out = root / "p.csv"
        mode = "processes" if cores >= PROCESS_MIN_WORKERS else "threads"  # what auto picks
        alt = "threads" if mode == "processes" else "processes"
        t_ours = timed(lambda: run_predict(manifests, out, model=a.model, batch_size=a.batch,
                                           overwrite=True, quiet=True, decode=mode))
        t_alt = timed(lambda: run_predict(manifests, out, model=a.model, batch_size=a.batch,
                                            overwrite=True, quiet=True, decode=alt))

        q = root / "q.onnx"
        # Speed only: the accuracy gate (export's job) is off here.
        quantize_int8(a.model, q, root / "rgb", n_calib=256, max_accuracy_drop=1.0)
        x, g = stack_views([prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg)
                            for r in recs[:512]])

        def model_only(path: Path) -> float:
            so = ort.SessionOptions()
            so.intra_op_num_threads = cores
            s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            two = len(s.get_inputs()) == 2

            def feed(i: int) -> dict[str, np.ndarray]:
                f = {"image": x[i : i + a.batch]}
                if two:
                    f["geometry"] = g[i : i + a.batch]
                return f

            s.run(None, feed(0))
            return timed(lambda: [s.run(None, feed(i)) for i in range(0, len(x), a.batch)])

        t32, t8 = model_only(a.model), model_only(q)
        t_ours8 = timed(lambda: run_predict(manifests, out, model=q, batch_size=a.batch,
                                            overwrite=True, quiet=True))
        others = {}
        for other in a.compare:
            t_e2e = timed(lambda o=other: run_predict(manifests, out, model=o,  # type: ignore[misc]
                                                      batch_size=a.batch, overwrite=True,
                                                      quiet=True))
            others[other.name] = (n / t_e2e, len(x) / model_only(other))

    r = {k: n / v for k, v in {"floor": t_floor, "eager": t_eager, "ours": t_ours,
                               "ours_int8": t_ours8, "alt": t_alt}.items()}
    print(f"  decode+align floor (1 process)  {r['floor']:8.1f} chips/s")
    print(f"  PyTorch eager + DataLoader      {r['eager']:8.1f} chips/s")
    print(f"  shipload predict (fp32)         {r['ours']:8.1f} chips/s   "
          f"{r['ours'] / r['eager']:.2f}x eager, {r['ours'] / r['floor']:.2f}x floor "
          f"(decoding in {mode})")
    print(f"  the same, decoding in {alt:9s}  {r['alt']:8.1f} chips/s   "
          f"{r['alt'] / r['ours']:.2f}x the {mode}")
    print(f"  shipload predict (int8)         {r['ours_int8']:8.1f} chips/s   "
          f"{r['ours_int8'] / r['ours']:.2f}x fp32 end to end")
    print(f"  model only, onnxruntime: fp32 {len(x) / t32:8.1f} int8 {len(x) / t8:8.1f} "
          f"views/s  ({t32 / t8:.2f}x)")
    for name, (e2e, alone) in others.items():
        print(f"  {name:30s}  predict {e2e:8.1f} chips/s ({r['ours'] / e2e:.2f}x as fast "
              f"with this model), model only {alone:8.1f} views/s ({len(x) / t32 / alone:.2f}x)")
    print(f"  provider: {ort.get_available_providers()}")


if __name__ == "__main__":
    main()
