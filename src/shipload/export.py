"""ONNX export with self-describing metadata, checks before writing, and int8 quantization.

The exported graph takes ``image`` (B, 3, H, W) float RGB in [0, 1] and ``geometry`` (B, G),
both made by ``shipload.view.prepare_view``, with a dynamic batch axis; it normalises and
calibrates inside and returns ``probabilities`` (B, 2) over (empty, laden), ``load_fraction``
(B,) and ``freeboard_m`` (B,).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shipload import CLASSES, __version__
from shipload.contract import ONNX_INPUTS, ONNX_OUTPUTS
from shipload.errors import ExportError, UsageError
from shipload.model.backbones import ProbabilityHead, ShiploadNet
from shipload.model.task import load_weights
from shipload.runtime import make_session, read_metadata, sha256_file
from shipload.view import GEO_DIM, InputSpec, describe, prepare_view, stack_views

PARITY_ATOL = 1e-4


@dataclass
class LoadedModel:
    """A network rebuilt from a checkpoint or shipped ``.pt``, with what describes it."""

    net: ShiploadNet
    spec: InputSpec
    hparams: dict[str, Any]
    data_hparams: dict[str, Any] = field(default_factory=dict)
    best_score: float | None = None


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the network of a Lightning checkpoint or a shipped ``.pt`` (weights_only load).

    Raises:
        UsageError: the file is missing or is not a shipload checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"{p}: not a loadable checkpoint ({type(e).__name__}: {e})") from e
    hp = dict(state.get("hyper_parameters", {}))
    if "backbone" not in hp:
        raise UsageError(f"{p}: no shipload hyper-parameters inside; is it a shipload checkpoint?")
    net = ShiploadNet(hp["backbone"], hp.get("dropout", 0.2),
                      readout=str(hp.get("readout", "none")))
    load_weights(net, p)
    net.eval()
    spec = InputSpec.from_mapping(hp)
    best = None
    for k, v in state.get("callbacks", {}).items():
        if "ModelCheckpoint" in k and v.get("best_model_score") is not None:
            best = float(v["best_model_score"])
    return LoadedModel(net, spec, hp, dict(state.get("datamodule_hyper_parameters", {})), best)


def save_weights(m: LoadedModel, path: str | Path) -> Path:
    """Save the weights and hyper-parameters as a small ``.pt`` (for fine-tuning, weights_only)."""
    path = Path(path)
    torch.save({"state_dict": m.net.state_dict(), "hyper_parameters": m.hparams,
                "datamodule_hyper_parameters": m.data_hparams}, path)
    return path


def sample_views(spec: InputSpec, n: int = 8, seed: int = 12345,
                 data: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A real batch for parity checks: (n, 3, H, W) views and (n, G) geometry, float32.

    From the labelled chips in ``data`` when given (with their manifest geometry), else
    freshly rendered chips, every other one with its geometry.
    """
    views = []
    if data is not None:
        from shipload.data.datasets import load_records
        from shipload.data.io import read_chip

        for r in load_records(data)[:n]:
            views.append(prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg))
    else:
        import dataclasses

        from shipload.data.stream import chip_from_scene, scene_geometry
        from shipload.synth import SynthConfig, sample_scene

        cfg = SynthConfig()
        cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, max_chip_px=160))
        for i in range(n):
            s = sample_scene(cfg, seed, i)
            views.append(prepare_view(chip_from_scene(s, 2), spec,
                                      scene_geometry(s) if i % 2 == 0 else None))
    return stack_views(views)


def recipe_digest(recipe: str | Path | Sequence[str | Path]) -> dict[str, str]:
    """Provenance of a training recipe: its config files, each one's and their joint sha256.

    Args:
        recipe: the training configs, in the order they ran (stage 1, stage 2, ...), or one.

    Raises:
        UsageError: a config file is missing.
    """
    files = [Path(recipe)] if isinstance(recipe, str | Path) else [Path(r) for r in recipe]
    for f in files:
        if not f.is_file():
            raise UsageError(f"--recipe {f}: no such file; pass the training configs that "
                             "made this checkpoint, in the order they ran")
    joint = hashlib.sha256()
    each = {}
    for f in files:
        digest = sha256_file(f)
        each[f.as_posix()] = digest
        joint.update(digest.encode())
    return {"recipe": json.dumps(each), "recipe_sha256": joint.hexdigest()}


def build_metadata(m: LoadedModel, provenance: dict[str, str],
                   metrics: dict[str, Any] | None) -> dict[str, str]:
    """The ONNX metadata of DESIGN.md's contract: everything ``predict`` needs, and provenance."""
    dh = m.data_hparams
    data = {k: dh.get(k) for k in ("data", "synth_n", "synth_seed", "synth_config", "seed",
                                   "val_fraction", "test_fraction") if k in dh}
    meta = {
        "shipload_version": __version__,
        "classes": json.dumps(list(CLASSES)),
        "input_height": str(m.spec.height),
        "input_width": str(m.spec.width),
        "resize_policy": m.spec.policy,
        "across_scale": f"{m.spec.across_scale:g}",
        "frame_scale": f"{m.spec.frame_scale:g}",
        "view_version": str(m.spec.view_version),
        "input": json.dumps(describe(m.spec)),
        "input_range": "image: float32 RGB in [0, 1], NCHW, normalisation inside the graph; "
                       f"geometry: float32 (B, {GEO_DIM}) from shipload.view.encode_geometry",
        "inputs": json.dumps(list(ONNX_INPUTS)),
        "geometry_dim": str(GEO_DIM),
        "outputs": "probabilities (B, 2) over classes; load_fraction (B,) in [0, 1]; "
                   "freeboard_m (B,) midship freeboard in metres",
        "backbone": str(m.hparams.get("backbone")),
        "temperature": f"{float(m.net.temperature):.6f}",
        "laden_offset": f"{float(m.net.offset):.6f}",
        "training_data": json.dumps(data),
        "metrics": json.dumps(metrics or ({"best_val_acc": m.best_score} if m.best_score else {})),
    }
    meta.update(provenance)  # recipe_digest(...), or {} without a recipe
    return meta


def _session(path: str | Path, providers: list[str] | None = None) -> Any:
    return make_session(path, providers)


def check_parity(onnx_path: str | Path, net: torch.nn.Module, x: np.ndarray, g: np.ndarray,
                 atol: float = PARITY_ATOL) -> dict[str, float]:
    """Compare onnxruntime with PyTorch on batch (x, g) and on batch sizes 1 and 7.

    Raises:
        ExportError: an output differs by more than ``atol`` (relative for the freeboard) or
            the argmax differs.
    """
    sess = _session(onnx_path)
    head = ProbabilityHead(net).eval()
    worst = 0.0
    idx7 = np.arange(7) % len(x)
    for xb, gb in ((x, g), (x[:1], g[:1]), (x[idx7], g[idx7])):
        with torch.no_grad():
            ref = [t.numpy() for t in head(torch.from_numpy(xb), torch.from_numpy(gb))]
        out = sess.run(list(ONNX_OUTPUTS), {"image": xb, "geometry": gb})
        if out[0].shape != (len(xb), 2) or out[1].shape != (len(xb),) or out[2].shape != (
                len(xb),):
            raise ExportError(f"ONNX output shapes {[o.shape for o in out]} for batch {len(xb)}")
        d = float(max(np.abs(out[0] - ref[0]).max(), np.abs(out[1] - ref[1]).max(),
                      (np.abs(out[2] - ref[2]) / np.maximum(ref[2], 1e-3)).max()))
        worst = max(worst, d)
        if d > atol or not np.array_equal(out[0].argmax(1), ref[0].argmax(1)):
            raise ExportError(f"parity check failed at batch {len(xb)}: max |ONNX - PyTorch| = "
                              f"{d:.2e} > {atol:.0e} or a different argmax")
    return {"max_abs_diff": worst}


def export_onnx(ckpt: str | Path, output: str | Path, opset: int = 18,
                recipe: str | Path | Sequence[str | Path] | None = None,
                metrics: dict[str, Any] | None = None, parity_data: str | Path | None = None,
                weights_out: str | Path | None = None, command: str | None = None,
                overwrite: bool = True) -> dict[str, Any]:
    """Export a checkpoint to ONNX; write it only if every check passes.

    Checks: ``onnx.checker`` (full), an onnxruntime load, parity with PyTorch on a real batch
    (every output within 1e-4, same argmax) at batch sizes 8, 1 and 7.

    Args:
        ckpt: Lightning checkpoint or shipped ``.pt``.
        output: the ``.onnx`` to write.
        opset: ONNX opset.
        recipe: the training configs that made ``ckpt``; their sha256 go into the metadata.
        metrics: headline metrics to record in the metadata.
        parity_data: labelled chips for the parity batch (default: freshly rendered chips).
        weights_out: also save the PyTorch weights here (for fine-tuning and ``adapt``).
        command: the training command, recorded beside the recipe's digest.
        overwrite: replace an existing ``output`` (the CLI asks for ``--overwrite``).

    Returns:
        A report: path, sha256, size, parity figures.

    Raises:
        ExportError: a check failed (no file is left behind).
        UsageError: bad checkpoint or output path, an existing output without ``overwrite``.
    """
    provenance = recipe_digest(recipe) if recipe else {}  # a wrong --recipe fails now
    if command:
        provenance["recipe_command"] = command
    out = Path(output)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it or choose --output")
    m = load_model(ckpt)
    x, g = sample_views(m.spec, 8, data=parity_data)
    return export_loaded(m, out, opset, provenance, metrics, (x, g), weights_out)


def export_loaded(m: LoadedModel, output: str | Path, opset: int = 18,
                  provenance: dict[str, str] | None = None,
                  metrics: dict[str, Any] | None = None,
                  parity: tuple[np.ndarray, np.ndarray] | None = None,
                  weights_out: str | Path | None = None) -> dict[str, Any]:
    """Export a loaded network (see ``export_onnx``; ``adapt`` calls this directly).

    Args:
        m: the network and what describes it.
        output: the ``.onnx`` to write.
        opset: ONNX opset.
        provenance: metadata keys on where the weights came from.
        metrics: headline metrics to record in the metadata.
        parity: the (image, geometry) batch for the checks (default: rendered chips).
        weights_out: also save the PyTorch weights here; their sha256 goes in the metadata.
    """
    import onnx

    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out.parent}: {e.strerror}") from e
    x, g = parity if parity is not None else sample_views(m.spec, 8)
    if len(x) < 2:  # the dynamo exporter needs a batch of 2 or more to keep the axis free
        x, g = np.concatenate([x, x]), np.concatenate([g, g])
    prov = dict(provenance or {})
    if weights_out:
        save_weights(m, weights_out)
        prov["weights_sha256"] = sha256_file(weights_out)
    head = ProbabilityHead(m.net).eval()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        batch = torch.export.Dim("batch", min=1, max=65536)
        torch.onnx.export(head, (torch.from_numpy(x), torch.from_numpy(g)), str(tmp),
                          dynamo=True, input_names=list(ONNX_INPUTS),
                          output_names=list(ONNX_OUTPUTS),
                          dynamic_shapes=({0: batch}, {0: batch}), opset_version=opset,
                          external_data=False, optimize=True)
        model = onnx.load(str(tmp))
        for k, v in build_metadata(m, prov, metrics).items():
            model.metadata_props.add(key=k, value=v)
        model.doc_string = "shipload tanker load-state classifier"
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        parity_rep = check_parity(tmp, m.net, x, g)
        tmp.chmod(0o644)  # mkstemp makes it private
        tmp.replace(out)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"export failed: {type(e).__name__}: {e}") from e
    return {"path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
            **parity_rep}


class _Calibration:
    """onnxruntime CalibrationDataReader over prepared views.

    Feeds the geometry only if the model takes it, so an image-only release quantises too.
    """

    def __init__(self, views: tuple[np.ndarray, np.ndarray], batch: int = 16,
                 geometry: bool = True) -> None:
        x, g = views
        self._it: Iterator[dict[str, np.ndarray]] = (
            {"image": x[i : i + batch], **({"geometry": g[i : i + batch]} if geometry else {})}
            for i in range(0, len(x), batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_int8(fp32: str | Path, output: str | Path, calibration: str | Path,
                  n_calib: int = 256, n_eval: int = 1000,
                  max_accuracy_drop: float = 0.005,
                  judge: str | Path | None = None) -> dict[str, Any]:
    """Static QDQ int8 quantization calibrated on labelled or rendered chips in ``calibration``.

    Weights per-channel int8, activations uint8, MinMax calibration on the first ``n_calib``
    chips. ``n_eval`` chips never used to calibrate judge it: the first of ``judge`` when given
    (ideally chips the model never trained on), else the next ones of ``calibration``. The
    file is written only if int8 accuracy is at most ``max_accuracy_drop`` below fp32's there.

    Returns:
        A report: path, sha256, fp32 and int8 accuracy, agreement with fp32.

    Raises:
        ExportError: the accuracy check failed (nothing written).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from shipload.data.datasets import load_records
    from shipload.data.io import read_chip

    meta = read_metadata(fp32)
    spec = InputSpec.from_mapping(meta)
    recs = load_records(calibration)[: n_calib + n_eval]
    judged = load_records(judge)[:n_eval] if judge is not None else recs[n_calib:]
    if not judged:
        raise ExportError(f"no chips left to judge int8 in {judge or calibration}: give "
                          f"--int8-judge DIR or a calibration folder of more than {n_calib} chips")

    def views_of(rs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        return stack_views([prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg)
                            for r in rs])

    calib, held = views_of(recs[:n_calib]), views_of(judged)
    two = "geometry" in {i.name for i in _session(fp32).get_inputs()}
    feeds = {"image": held[0], **({"geometry": held[1]} if two else {})}
    y = np.array([r.label for r in judged])
    out = Path(output)
    with tempfile.TemporaryDirectory(dir=out.parent) as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        q = Path(td) / "q.onnx"
        quantize_static(str(pre), str(q), _Calibration(calib, geometry=two),
                        quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        import onnx

        model = onnx.load(str(q))
        del model.metadata_props[:]
        for k, v in {**meta, "quantization": "int8 static QDQ, per-channel weights"}.items():
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(q))
        p32 = _session(fp32).run(["probabilities"], feeds)[0]
        p8 = _session(q).run(["probabilities"], feeds)[0]
        acc32 = float((p32.argmax(1) == y).mean())
        acc8 = float((p8.argmax(1) == y).mean())
        agree = float((p32.argmax(1) == p8.argmax(1)).mean())
        if acc32 - acc8 > max_accuracy_drop:
            raise ExportError(f"int8 accuracy {acc8:.3f} is more than {max_accuracy_drop:.3f} "
                              f"below fp32's {acc32:.3f} on {len(y)} chips; not written")
        q.chmod(0o644)
        q.replace(out)
    return {"path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
            "accuracy_fp32": acc32, "accuracy_int8": acc8, "agreement_with_fp32": agree,
            "n_eval": len(y), "judged_on": str(judge or calibration),
            "max_abs_prob_diff": float(np.abs(p32 - p8).max())}


def convert_fp16(fp32: str | Path, output: str | Path, atol: float = 2e-3) -> dict[str, Any]:
    """fp16 weights and compute for the CUDA provider, fp32 input and outputs kept.

    onnxruntime's CPU provider has no fp16 convolutions, so parity (probabilities within
    ``atol`` of fp32, same argmax, on rendered chips) can only be checked where CUDA runs;
    elsewhere this refuses rather than write an unchecked file.

    Raises:
        ExportError: no CUDA provider to check on, or parity failed (nothing written).
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ExportError("--fp16 needs onnxruntime's CUDA provider to check parity; run the "
                          "export on a GPU machine (onnxruntime-gpu: pip install '.[gpu]' in "
                          "place of '.[cpu]')")
    meta = read_metadata(fp32)
    spec = InputSpec.from_mapping(meta)
    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    out = Path(output)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(model, str(tmp))
    try:
        x, g = sample_views(spec, 8)
        p32 = _session(fp32).run(["probabilities"], {"image": x, "geometry": g})[0]
        s16 = _session(tmp, ["CUDAExecutionProvider"])
        if s16.get_providers()[0] != "CUDAExecutionProvider":
            raise ExportError("the CUDA provider did not load; fp16 parity not checked")
        p16 = s16.run(["probabilities"], {"image": x, "geometry": g})[0]
        d = float(np.abs(p32 - p16).max())
        if d > atol or not np.array_equal(p32.argmax(1), p16.argmax(1)):
            raise ExportError(f"fp16 parity failed: max |fp16 - fp32| = {d:.1e}")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "sha256": sha256_file(out), "max_abs_diff_vs_fp32": d}
