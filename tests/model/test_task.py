"""The training path through the real LightningCLI on renderer data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from shipload.model.task import fit_calibration, fit_temperature
from shipload.training import cli_main

REPO = Path(__file__).resolve().parents[2]
TRAIN = str(REPO / "configs" / "train.yaml")
SMOKE = str(REPO / "configs" / "smoke.yaml")


def smoke_args(tmp: Path, *extra: str) -> list[str]:
    """The shipped recipe with the smoke override stacked on it (a stream of fresh chips)."""
    return ["fit", "--config", TRAIN, "--config", SMOKE,
            f"--trainer.default_root_dir={tmp}",
            f"--trainer.logger.init_args.save_dir={tmp}",
            f"--trainer.callbacks.init_args.dirpath={tmp / 'ckpt'}", *extra]


def file_args(tmp: Path, *extra: str) -> list[str]:
    """The same, on a rendered folder instead of the stream (fine-tuning on files, which
    carry no part maps: the part loss off, as configs/finetune.yaml sets it)."""
    return smoke_args(tmp, "--data.stream=false", f"--data.data={tmp / 'data'}",
                      "--data.synth_n=96", "--data.val_fraction=0.2", "--data.test_fraction=0.2",
                      "--model.parts_loss_weight=0", *extra)


def test_smoke_fit_streams_fresh_chips_and_writes_run_files(tmp_path: Path) -> None:
    cli = cli_main(smoke_args(tmp_path))
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    assert not (tmp_path / "data").exists()  # nothing rendered to disk
    log_dir = Path(cli.trainer.log_dir)
    assert (log_dir / "config.yaml").is_file()
    m = cli.trainer.callback_metrics
    assert "train_freeboard_mae_m" in m and "val_acc" in m


def test_file_fit_renders_its_data_and_writes_the_split(tmp_path: Path) -> None:
    cli = cli_main(file_args(tmp_path))
    assert (tmp_path / "data" / "labels.csv").is_file()
    assert (Path(cli.trainer.log_dir) / "splits.csv").is_file()
    # Checkpoints load with weights_only=True: no pickled code inside.
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["hyper_parameters"]["backbone"] == "shipnet_small"


def test_bf16_mixed_fit_on_cpu_keeps_fp32_weights(tmp_path: Path) -> None:
    """The README's CPU override (``--trainer.precision bf16-mixed``, for CPUs with AMX or
    AVX512-BF16): every loss (parts, consistency, freeboard) runs under CPU autocast, the
    weights and the refitted calibration stay fp32 and finite."""
    cli = cli_main(smoke_args(tmp_path, "--trainer.precision=bf16-mixed"))
    m = cli.trainer.callback_metrics
    assert torch.isfinite(m["train_loss"]) and torch.isfinite(m["val_acc"])
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    floats = [v for k, v in state.items() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)
    assert all(torch.isfinite(v).all() for v in floats)
    assert state["net.temperature"] > 0

class Crash(Callback):
    """Dies as the second epoch starts: the first epoch's checkpoint is on disk."""

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


def test_resume_continues_from_saved_step(tmp_path: Path) -> None:
    args = smoke_args(tmp_path, "--trainer.max_epochs=3")
    cli = cli_main(args[1:], run=False)  # without a subcommand when not run
    cli.trainer.callbacks.append(Crash())
    with pytest.raises(RuntimeError, match="simulated crash"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    step1 = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"]
    assert step1 > 0
    cli = cli_main(args + ["--ckpt_path=last"])
    assert cli.trainer.global_step == 3 * step1
    assert cli.trainer.current_epoch == 3


def test_unknown_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  bakbone: resnet18\n")
    with pytest.raises(SystemExit):
        cli_main(smoke_args(tmp_path, f"--config={bad}"))
    assert "bakbone" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(smoke_args(tmp_path, "--data.batchsize=3"))
    assert "batchsize" in capsys.readouterr().err


def test_finetune_from_weights(tmp_path: Path) -> None:
    cli_main(smoke_args(tmp_path))
    ck = tmp_path / "ckpt" / "last.ckpt"
    cli = cli_main(smoke_args(tmp_path / "ft", f"--model.init_from={ck}")[1:], run=False)
    src = torch.load(ck, weights_only=True)["state_dict"]
    got = cli.model.net.state_dict()
    k = "cls_head.weight"
    assert torch.equal(got[k], src["net." + k])


def test_finetune_refuses_another_view(tmp_path: Path) -> None:
    """Weights trained at 32x64 cannot be fine-tuned at another view size: the error says
    which flags give the weights' own view."""
    cli_main(smoke_args(tmp_path))
    ck = tmp_path / "ckpt" / "last.ckpt"
    with pytest.raises(ValueError, match="--model.input_height 32"):
        cli_main(smoke_args(tmp_path / "ft", f"--model.init_from={ck}",
                            "--model.input_height=48")[1:], run=False)


def test_small_validation_split_keeps_the_temperature(tmp_path: Path) -> None:
    cli = cli_main(file_args(tmp_path))  # 19 validation chips: too few to refit
    assert float(cli.model.net.temperature) == 1.0


def test_fit_temperature_recovers_scale() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 2, generator=g) * 2
    y = torch.distributions.Categorical(logits=z).sample()
    t = fit_temperature(z * 3.0, y)  # logits 3x too confident
    assert 2.5 < t < 3.5


def test_fit_calibration_recovers_scale_and_offset() -> None:
    """Logits 3x too confident and leaning 1.5 toward laden: both undone."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 2, generator=g) * 2
    y = torch.distributions.Categorical(logits=z).sample()
    t, off = fit_calibration(z * 3.0 + torch.tensor([0.0, 4.5]), y)
    assert 2.5 < t < 3.5
    assert -1.8 < off < -1.2  # 4.5 / 3 removed after the temperature
    t0, off0 = fit_calibration(z, y)  # already calibrated: nothing to move
    assert 0.9 < t0 < 1.1 and abs(off0) < 0.15


def test_validation_refit_sets_the_offset_and_the_graph_applies_it() -> None:
    """The task's end-of-validation refit sets T and the offset; the net then applies them."""
    from shipload.model.task import ShiploadTask

    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(400, 2, generator=g)
    y = (torch.rand(400, generator=g) < 0.2).long()  # 20 % laden; the logits know nothing
    t, off = task.refit_calibration(z, y)
    assert off < -0.8  # log(0.2 / 0.8) = -1.39: calls re-centred on the 20 % share
    assert float(task.net.offset) == pytest.approx(off)
    x = torch.rand(2, 3, 32, 64, generator=g)
    task.net.eval()
    with torch.no_grad():
        cal, _, _ = task.net(x)
        assert torch.allclose(task.net.raw_logits(cal) / t + torch.tensor([0.0, off]), cal,
                              atol=1e-6)
    off_task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64,
                            calibrate_offset=False)
    assert off_task.refit_calibration(z, y)[1] == 0.0


EASY = """
ship_classes:
  small:
    {weight: 1.0, length_m: [60, 110], beam_ratio: [5.5, 7.2], fb_laden_m: [1.0, 2.0],
     fb_ballast_m: [3.0, 4.5]}
load: {extreme_weight: 1.0, extreme_width: 0.05}
sensor:
  gsd_m: [0.3, 0.45]
  off_nadir_deg: [25, 40]
  sun_elevation_deg: [20, 30]
  max_chip_px: 200
  noise_std: [0.002, 0.004]
  jpeg_fraction: 0.0
nuisance: {wake: 0.0, glint: 0.0, haze: 0.0, cloud: 0.0, quay: 0.0, neighbour: 0.0}
"""


def test_short_real_fit_beats_chance(tmp_path: Path) -> None:
    cfg = tmp_path / "easy.yaml"
    cfg.write_text(EASY)
    cli = cli_main(file_args(
        tmp_path, f"--data.synth_config={cfg}", "--data.synth_n=480", "--data.batch_size=32",
        "--trainer.max_epochs=12", "--trainer.limit_train_batches=1.0",
        "--trainer.limit_val_batches=1.0", "--data.val_fraction=0.25", "--data.test_fraction=0.0",
        "--model.input_height=48", "--model.input_width=144", "--model.lr=0.004",
        "--data.cache=true"))
    m = cli.trainer.callback_metrics
    auroc, acc = float(m["val_auroc"]), float(m["val_acc"])
    # 120 validation chips: chance is 0.5 +- 0.046 in accuracy, 0.5 +- 0.053 in AUROC, so 0.64
    # and 0.66 are 3 sigma above it. The seeded run's numerics differ by CPU: 8 epochs gave 0.69
    # on an AMD EPYC but 0.625 (AUROC 0.713) on an Intel Xeon with AMX; 12 give 0.75 (AUROC
    # 0.84) on the Xeon, a wider margin (not yet measured on the EPYC).
    assert auroc >= 0.66, f"validation AUROC {auroc:.3f} on an easy set"
    assert acc >= 0.64, f"validation accuracy {acc:.3f} on an easy set"


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    args = smoke_args(tmp_path, "--trainer.strategy=ddp", "--trainer.devices=2",
                      "--trainer.accelerator=cpu", "--trainer.use_distributed_sampler=false")
    r = subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()


def test_framing_consistency_is_zero_for_agreeing_cuts_and_grows_with_disagreement() -> None:
    from shipload.model.task import framing_consistency, pair_batch

    z = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    assert float(framing_consistency(torch.cat([z, z]))) == pytest.approx(0.0, abs=1e-7)
    near = framing_consistency(torch.cat([z, z + torch.tensor([[0.0, 0.3]])]))
    far = framing_consistency(torch.cat([z, z.flip(1)]))
    assert 0 < float(near) < float(far)
    b = {"image": torch.zeros(2, 3, 4, 4), "image2": torch.ones(2, 3, 4, 4),
         "geometry": torch.zeros(2, 5), "geometry2": torch.ones(2, 5),
         "label": torch.tensor([0, 1])}
    p = pair_batch(b)
    assert p["image"].shape[0] == 4 and float(p["image"][2:].min()) == 1.0
    assert p["label"].tolist() == [0, 1, 0, 1] and "image2" not in p


def test_training_loss_does_not_depend_on_the_calibration() -> None:
    """Were the loss to see logits / T, each refit of T would feed back into training (a run
    drove T to 0.05 and diverged); the loss must see the raw logits."""
    import warnings

    from shipload.model.task import ShiploadTask

    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64)
    task.eval()  # no dropout: the two passes see the same network
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 32, 64, generator=g),
             "image2": torch.rand(4, 3, 32, 64, generator=g),
             "geometry": torch.zeros(4, 16), "geometry2": torch.zeros(4, 16),
             "label": torch.tensor([0, 1, 1, 0]), "load_fraction": torch.rand(4, generator=g),
             "freeboard_m": torch.full((4,), 3.0), "gsd_m": torch.full((4,), 0.5)}
    losses = []
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # self.log without a trainer
        for t, off in ((1.0, 0.0), (0.05, 0.0), (4.0, 0.0), (1.0, 2.0), (0.3, -1.5)):
            task.net.temperature.fill_(t)
            task.net.offset.fill_(off)
            losses.append(float(task._step(dict(batch), "train")))
    for other in losses[1:]:
        assert other == pytest.approx(losses[0], rel=1e-5)


def test_part_loss_rewards_the_right_maps_and_weighs_thin_parts() -> None:
    from shipload.model.task import part_loss

    target = torch.zeros(2, 5, 24, 32)
    target[:, 1, 10:12, 4:28] = 1.0  # a thin hull side
    target[:, 3, 12:20, 4:28] = 1.0  # the deck
    right = part_loss((target * 2 - 1) * 6, target)
    missed_side = target.clone()
    missed_side[:, 1] = 0  # every deck pixel right, the 48-pixel side missed
    wrong = part_loss((missed_side * 2 - 1) * 6, target)
    assert float(right) < 0.05 and float(wrong) > float(right) + 0.15
    assert torch.isfinite(part_loss(torch.zeros(2, 5, 24, 32), torch.zeros(2, 5, 24, 32)))


def test_part_loss_trains_the_part_head_and_leaves_the_export_path_alone() -> None:
    """With ``parts`` in the batch the step adds the part loss (only on the first cuts), and
    the decoder gets gradients; ``forward`` (what export traces) never runs it."""
    import warnings

    from shipload.model.task import ShiploadTask

    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64,
                        parts_loss_weight=1.0)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 32, 64, generator=g),
             "image2": torch.rand(4, 3, 32, 64, generator=g),
             "geometry": torch.zeros(4, 16), "geometry2": torch.zeros(4, 16),
             "label": torch.tensor([0, 1, 1, 0]), "load_fraction": torch.rand(4, generator=g),
             "freeboard_m": torch.full((4,), 3.0), "gsd_m": torch.full((4,), 0.5),
             "parts": (torch.rand(4, 5, 32, 64, generator=g) > 0.7).float()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        task.eval()
        with torch.no_grad():  # validation: a batch without maps is allowed there
            with_parts = float(task._step(dict(batch), "val"))
            without = float(task._step({k: v for k, v in batch.items() if k != "parts"},
                                       "val"))
        assert with_parts > without + 0.1
        task.train()
        task._step(dict(batch), "train").backward()
    assert task.net.part_head is not None
    assert task.net.part_head.out.weight.grad is not None
    assert float(task.net.part_head.out.weight.grad.abs().sum()) > 0
    task.net.zero_grad()
    logits, _, _ = task.net(batch["image"], batch["geometry"])
    logits.sum().backward()
    assert task.net.part_head.out.weight.grad is None or float(
        task.net.part_head.out.weight.grad.abs().sum()) == 0


def test_only_shipnet_has_a_part_head() -> None:
    from shipload.model.backbones import ShiploadNet

    net = ShiploadNet("mobilenet_v3_small")
    assert net.part_head is None
    with pytest.raises(ValueError, match="no part head"):
        net.forward_parts(torch.rand(1, 3, 64, 64), None, 1)


def test_part_loss_without_part_maps_or_part_head_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parts_loss_weight 0"):
        cli_main(smoke_args(tmp_path, "--model.backbone=mobilenet_v3_small")[1:], run=False)
    # Files carry no part maps: the first step says so and how to train without them.
    with pytest.raises(ValueError, match="data.parts: true"):
        cli_main(file_args(tmp_path / "files", "--model.parts_loss_weight=1"))


def test_style_mix_settings_are_checked_and_reach_the_backbone(tmp_path: Path) -> None:
    from shipload.model.task import ShiploadTask

    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64,
                        style_mix=0.5, style_mix_alpha=0.3)
    assert task.net.backbone.style_mix == 0.5 and task.net.backbone.style_mix_alpha == 0.3
    for bad in ({"style_mix": 1.5}, {"style_mix": -0.1}, {"style_mix_alpha": 0.0}):
        with pytest.raises(ValueError, match="style_mix"):
            ShiploadTask(backbone="shipnet_small", **bad)
    with pytest.raises(ValueError, match="style_mix 0"):
        ShiploadTask(backbone="mobilenet_v3_small", style_mix=0.5)
    # The flag runs through the CLI: a smoke fit with every batch mixed trains and saves.
    cli = cli_main(smoke_args(tmp_path, "--model.style_mix=1.0"))
    assert torch.isfinite(cli.trainer.callback_metrics["train_loss"])
    assert cli.model.net.backbone.style_mix == 1.0


def test_without_the_part_loss_the_part_head_is_frozen() -> None:
    from shipload.model.task import ShiploadTask

    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64)
    assert task.net.part_head is not None
    assert not any(p.requires_grad for p in task.net.part_head.parameters())
