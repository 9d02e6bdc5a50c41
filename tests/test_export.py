"""ONNX export: metadata, dynamic batch, parity, failure leaves no file, int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from shipload.errors import ExportError
from shipload.export import check_parity, export_onnx, load_model, quantize_int8, sample_views
from shipload.runtime import read_metadata, sha256_file
from shipload.view import GEO_DIM, InputSpec


def test_metadata_is_self_describing(smoke_onnx: Path) -> None:
    m = read_metadata(smoke_onnx)
    assert json.loads(m["classes"]) == ["empty", "laden"]
    assert (m["input_height"], m["input_width"], m["resize_policy"]) == ("32", "64", "hull_aligned")
    assert m["shipload_version"] and "training_data" in m and "backbone" in m
    assert json.loads(m["inputs"]) == ["image", "geometry"] and m["geometry_dim"] == str(GEO_DIM)
    # The recipe's framing travels with the model, so predict cuts the view the same way.
    assert m["frame_scale"] == "1.1" and InputSpec.from_mapping(m).frame_scale == 1.1


@pytest.mark.parametrize("batch", [1, 7, 8])
def test_two_inputs_three_outputs_dynamic_batch(smoke_onnx: Path, batch: int) -> None:
    s = ort.InferenceSession(str(smoke_onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["image", "geometry"]
    p, lf, fb = s.run(None, {"image": np.random.rand(batch, 3, 32, 64).astype(np.float32),
                             "geometry": np.zeros((batch, GEO_DIM), np.float32)})
    assert p.shape == (batch, 2) and lf.shape == (batch,) and fb.shape == (batch,)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert (fb > 0).all()


def test_parity_on_real_chips_with_and_without_geometry(smoke_onnx: Path,
                                                        smoke_ckpt: Path) -> None:
    m = load_model(smoke_ckpt)
    x, g = sample_views(m.spec, 4, seed=7)
    assert g[0].any() and not g[1].any()  # every other chip carries its geometry
    rep = check_parity(smoke_onnx, m.net, x, g)  # batches 4, 1 and 7
    assert rep["max_abs_diff"] < 1e-4


def test_failed_parity_leaves_no_file(smoke_ckpt: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Break parity for real: the PyTorch side of the check sees perturbed weights.
    import shipload.export as ex

    real = ex.check_parity

    def tampered(path: Path, net: torch.nn.Module, x: np.ndarray, g: np.ndarray,
                 atol: float = 1e-4) -> dict:
        with torch.no_grad():
            net.cls_head.bias[1] += 3.0  # both logits alike would leave softmax unchanged
        return real(path, net, x, g, atol)

    monkeypatch.setattr(ex, "check_parity", tampered)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="parity"):
        export_onnx(smoke_ckpt, out, recipe=None)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_int8_quantization(smoke_onnx: Path, synth_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    rep = quantize_int8(smoke_onnx, out, synth_set, n_calib=24, n_eval=24)
    assert out.is_file() and rep["n_eval"] == 24
    assert rep["accuracy_fp32"] - rep["accuracy_int8"] <= 0.005
    assert read_metadata(out)["quantization"].startswith("int8")


def test_int8_judged_on_another_folder(smoke_onnx: Path, synth_set: Path,
                                       tmp_path: Path) -> None:
    from shipload.synth.writer import write_dataset
    from tests.conftest import tiny_config

    judge = tmp_path / "judge"
    write_dataset(tiny_config(), judge, 12, seed=11, workers=1, progress=False)
    # The smoke model is near chance, so int8 may flip its calls: this test is about which
    # chips judge, not about the accuracy gate (tested below).
    rep = quantize_int8(smoke_onnx, tmp_path / "q.onnx", synth_set, n_calib=48, judge=judge,
                        max_accuracy_drop=1.0)
    # All 48 chips of synth_set calibrate; the 12 rendered with another seed judge.
    assert rep["n_eval"] == 12 and rep["judged_on"] == str(judge)


def test_int8_needs_chips_to_judge(smoke_onnx: Path, synth_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    with pytest.raises(ExportError, match="no chips left to judge"):
        quantize_int8(smoke_onnx, out, synth_set, n_calib=48)
    assert not out.exists()


def test_int8_refused_when_accuracy_drops(smoke_onnx: Path, synth_set: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    with pytest.raises(ExportError, match="int8 accuracy"):
        quantize_int8(smoke_onnx, out, synth_set, n_calib=24, n_eval=24, max_accuracy_drop=-1.0)
    assert not out.exists()


def test_weights_pt_roundtrip(smoke_ckpt: Path, tmp_path: Path) -> None:
    from shipload.export import save_weights

    m = load_model(smoke_ckpt)
    pt = save_weights(m, tmp_path / "w.pt")
    m2 = load_model(pt)
    x, g = torch.rand(2, 3, 32, 64), torch.rand(2, GEO_DIM)
    with torch.no_grad():
        a, b = m.net(x, g), m2.net(x, g)
    assert all(torch.allclose(u, v) for u, v in zip(a, b))


def test_fp16_refuses_without_cuda(smoke_onnx: Path, tmp_path: Path) -> None:
    from shipload.export import convert_fp16

    if "CUDAExecutionProvider" in ort.get_available_providers():
        out = tmp_path / "h.onnx"
        assert convert_fp16(smoke_onnx, out)["max_abs_diff_vs_fp32"] < 2e-3
        return
    with pytest.raises(ExportError, match="CUDA"):
        convert_fp16(smoke_onnx, tmp_path / "h.onnx")
    assert not list(tmp_path.iterdir())


def test_recipe_provenance_names_every_stage(tmp_path: Path) -> None:
    from shipload.errors import UsageError
    from shipload.export import recipe_digest

    a, b = tmp_path / "stage1.yaml", tmp_path / "stage2.yaml"
    a.write_text("model: {lr: 0.003}\n")
    b.write_text("model: {lr: 0.0015}\n")
    d = recipe_digest([a, b])
    files = json.loads(d["recipe"])
    assert list(files) == [a.as_posix(), b.as_posix()]
    assert files[a.as_posix()] == sha256_file(a) and len(d["recipe_sha256"]) == 64
    # any edit of any stage, or a different order, changes the joint digest
    assert recipe_digest([b, a])["recipe_sha256"] != d["recipe_sha256"]
    b.write_text("model: {lr: 0.002}\n")
    assert recipe_digest([a, b])["recipe_sha256"] != d["recipe_sha256"]
    with pytest.raises(UsageError, match="no such file"):
        recipe_digest([a, tmp_path / "missing.yaml"])
    assert list(json.loads(recipe_digest(str(a))["recipe"])) == [a.as_posix()]  # one path


def test_existing_output_needs_overwrite(smoke_ckpt: Path, tmp_path: Path) -> None:
    from shipload.errors import UsageError

    out = tmp_path / "m.onnx"
    out.write_text("keep me")
    with pytest.raises(UsageError, match="--overwrite"):
        export_onnx(smoke_ckpt, out, overwrite=False)
    assert out.read_text() == "keep me"
