"""``shipload adapt``: it changes the model, it is checked and self-describing, and bad input
is refused with no output written."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from shipload.adapt import mix_warning, run_adapt, summary_line
from shipload.errors import DataError, UsageError
from shipload.export import export_onnx
from shipload.inference import Predictor
from shipload.runtime import read_metadata, sha256_file


@pytest.fixture(scope="module")
def base(smoke_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapt") / "base.onnx"
    export_onnx(smoke_ckpt, out, weights_out=out.with_suffix(".pt"))
    return out


def _probs(model: Path, chips: list[str]) -> np.ndarray:
    rows = [r for b in Predictor(model).predict(chips) for r in b]
    return np.array([r["p_laden"] for r in rows], float)


def _labels(synth_set: Path, out: Path, n: int, only: str | None = None) -> Path:
    with open(synth_set / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if only is None or r["label"] == only][:n]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "load_fraction"])
        for r in rows:
            w.writerow([str(synth_set / r["path"]), r["label"], r["load_fraction"]])
    return out


def test_unlabelled_adaptation_changes_the_model(base: Path, synth_set: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "adapted.onnx"
    rep = run_adapt([str(synth_set / "images")], out, model=base)
    meta = read_metadata(out)
    assert meta["adapt_method"] == "adabn-balanced" and meta["adapt_chips"] == "48"
    assert meta["adapted_from_sha256"] == sha256_file(base)
    assert 0 <= rep["called_laden_before"] <= 1 and 0 <= rep["called_laden_after"] <= 1
    assert "called laden" in summary_line(rep)
    assert len(meta["adapt_chips_sha256"]) == 64 and rep["max_abs_diff"] < 1e-4
    chips = sorted(str(p) for p in (synth_set / "images").iterdir())[:16]
    assert np.abs(_probs(out, chips) - _probs(base, chips)).max() > 1e-3  # it really moved
    # The same inputs give the same file digest of the chips (deterministic provenance).
    run_adapt([str(synth_set / "images")], tmp_path / "again.onnx", model=base)
    assert read_metadata(tmp_path / "again.onnx")["adapt_chips_sha256"] == meta[
        "adapt_chips_sha256"]


def test_labelled_adaptation_fine_tunes(base: Path, synth_set: Path, tmp_path: Path) -> None:
    labels = _labels(synth_set, tmp_path / "labels.csv", 30)
    out = tmp_path / "ft.onnx"
    run_adapt([str(synth_set / "images")], out, model=base, labels=labels, epochs=2)
    meta = read_metadata(out)
    assert "fine-tune 2 epochs on 30 labels" in meta["adapt_method"]
    assert "recalibrated on 30 labels" in meta["adapt_method"]
    assert meta["adapt_labels"] == "30" and out.with_suffix(".pt").is_file()
    rc = tmp_path / "rc.onnx"  # the default: recalibration only
    run_adapt([str(synth_set / "images")], rc, model=base, labels=labels)
    assert "fine-tune" not in read_metadata(rc)["adapt_method"]


def test_recalibration_undoes_a_bias_toward_one_class() -> None:
    """A network that calls 9 chips in 10 'empty' on a balanced labelled set: the fitted
    offset moves its calls back toward the truth, and it is folded into the graph."""
    import torch

    from shipload.adapt import recalibrate
    from shipload.model.backbones import ShiploadNet
    from shipload.view import GEO_DIM

    torch.manual_seed(0)
    net = ShiploadNet("shipnet_small").eval()
    rng = np.random.default_rng(0)
    x = rng.random((200, 3, 32, 64), dtype=np.float32)
    g = np.zeros((200, GEO_DIM), np.float32)
    with torch.no_grad():
        z0 = net(torch.from_numpy(x), torch.from_numpy(g))[0]
        net.temperature.fill_(float((z0[:, 1] - z0[:, 0]).std()) / 2)  # logits of a trained net
        z0 = net(torch.from_numpy(x), torch.from_numpy(g))[0]
        d = (z0[:, 1] - z0[:, 0]).numpy()
        y = (d > np.quantile(d, 0.5)).astype(np.int64)  # truth: the upper half is laden
        # Biased: only the top tenth called laden.
        net.cls_head.bias[1] -= float(np.quantile(d, 0.9)) * float(net.temperature)
        z = net(torch.from_numpy(x), torch.from_numpy(g))[0]
    before = float((z.argmax(1).numpy() == 1).mean())
    a, b = recalibrate(net, x, g, y)
    with torch.no_grad():
        z2 = net(torch.from_numpy(x), torch.from_numpy(g))[0]
    after = float((z2.argmax(1).numpy() == 1).mean())
    assert before <= 0.15 and abs(after - 0.5) < 0.1 and b > 0
    assert float(((z2.argmax(1).numpy()) == y).mean()) > 0.9


def test_bad_input_is_refused_and_nothing_is_written(base: Path, synth_set: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    images = sorted((synth_set / "images").iterdir())
    few = tmp_path / "few"
    few.mkdir()
    for p in images[:5]:
        shutil.copy(p, few)
    with pytest.raises(DataError, match="at least 16"):
        run_adapt([str(few)], out, model=base)
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(20):
        (junk / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no readable chips"):
        run_adapt([str(junk)], out, model=base)
    other = tmp_path / "other.csv"
    other.write_text("path,label\n/elsewhere/chip.png,laden\n" * 10)
    with pytest.raises(DataError, match="not among the CHIPS"):
        run_adapt([str(synth_set / "images")], out, model=base, labels=other)
    one = _labels(synth_set, tmp_path / "one.csv", 12, only="laden")
    with pytest.raises(DataError, match="every label is 'laden'"):
        run_adapt([str(synth_set / "images")], out, model=base, labels=one)
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(base, lonely)  # no .pt beside it
    with pytest.raises(UsageError, match="PyTorch weights"):
        run_adapt([str(synth_set / "images")], out, model=lonely)
    with pytest.raises(UsageError, match="must differ"):
        run_adapt([str(synth_set / "images")], base, model=base, overwrite=True)
    assert not out.exists() and not out.with_suffix(".pt").exists()
    out.write_text("x")
    with pytest.raises(UsageError, match="exists"):
        run_adapt([str(synth_set / "images")], out, model=base)


def test_self_training_moves_only_the_batch_norm_affines(base: Path, synth_set: Path) -> None:
    """``self_train`` (measured in scripts/adapt_study.py, not shipped in `adapt`) lowers the
    entropy of the calls on the chips it sees, and nothing but the BN scales and shifts move."""
    from shipload.adapt import _prepare, adabn, self_train
    from shipload.export import load_model

    m = load_model(base.with_suffix(".pt"))
    chips = sorted(str(p) for p in (synth_set / "images").iterdir())
    _, x, g, _ = _prepare(chips, m.spec, {})
    adabn(m.net, x, g)

    def entropy() -> float:
        with torch.no_grad():
            p = torch.softmax(m.net(torch.from_numpy(x), torch.from_numpy(g))[0], 1)
        return float(-(p * p.clamp_min(1e-8).log()).sum(1).mean())

    before = {k: v.clone() for k, v in m.net.state_dict().items()}
    e0 = entropy()
    rep = self_train(m.net, x, g, epochs=4, lr=1e-2, diversity=0.0, batch=16)
    after = m.net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.endswith((".weight", ".bias")) for k in moved)
    bn = {n for n, mod in m.net.named_modules()
          if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)}
    assert all(k.rsplit(".", 1)[0] in bn for k in moved)  # no conv, no head, no statistics
    assert entropy() < e0 and 0 <= rep["laden_after"] <= 1
    assert all(p.requires_grad for p in m.net.parameters())  # flags restored as found


def test_a_one_sided_set_gets_a_warning_not_a_refusal() -> None:
    """AdaBN on chips of mostly one state lost 4-5 points (models/eval/adapt_study.txt)."""
    assert mix_warning(0.5) is None and mix_warning(0.2) is None and mix_warning(0.8) is None
    for share in (0.05, 0.95):
        w = mix_warning(share)
        assert w is not None and f"{share:.0%}" in w and "both states" in w
    rep = {"path": "a.onnx", "method": "adabn", "chips": 40, "unreadable": 0,
           "called_laden_before": 0.9, "called_laden_after": 0.8, "max_abs_diff": 1e-6,
           "mix_warning": mix_warning(0.9)}
    assert summary_line(rep).splitlines()[1].startswith("warning: the base model calls 90%")


def test_balanced_adabn_weighs_both_calls_alike() -> None:
    from shipload.adapt import balanced_order

    calls = np.zeros(400, bool)
    calls[:320] = True  # 80 % called laden
    order = balanced_order(calls, seed=1)
    assert len(order) == 400 and abs((order < 320).mean() - 0.5) < 0.08
    # every chip called laden: nothing to balance, the plain order
    assert np.array_equal(balanced_order(np.ones(400, bool)), np.arange(400))


class _ThresholdNet(torch.nn.Module):
    """A network whose call is 'laden' when the view's first pixel is bright."""

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = x[:, 0, 0, 0] - 0.5
        return torch.stack([-d, d], 1), d, d


def test_laden_calls_are_the_networks_argmax_in_batches() -> None:
    from shipload.adapt import called_laden, laden_calls

    x = np.zeros((300, 3, 4, 4), np.float32)  # more than one batch of 256
    x[:240, 0, 0, 0] = 1.0
    g = np.zeros((300, 16), np.float32)
    calls = laden_calls(_ThresholdNet(), x, g)
    assert calls.dtype == bool and np.array_equal(calls, np.arange(300) < 240)
    assert called_laden(_ThresholdNet(), x, g) == 0.8
