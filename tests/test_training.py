"""shipload.training: the checkpoint callback the recipes use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shipload.training import cli_main
from tests.model.test_task import smoke_args


@pytest.mark.parametrize("on_train_epoch_end", [False, True], ids=["after-val", "train-epoch-end"])
def test_last_checkpoint_is_the_end_of_every_epoch(tmp_path: Path,
                                                   on_train_epoch_end: bool) -> None:
    # "epoch" in mode min is best at epoch 0 and never again: a plain ModelCheckpoint in
    # lightning 2.6 would leave last.ckpt at the end of epoch 0. Both of Lightning's save points
    # are covered: after validation (the recipes) and at train epoch end (runs without val).
    cli = cli_main(smoke_args(tmp_path, "--trainer.max_epochs=3",
                              "--trainer.callbacks.init_args.monitor=epoch",
                              "--trainer.callbacks.init_args.mode=min",
                              f"--trainer.callbacks.init_args.save_on_train_epoch_end="
                              f"{str(on_train_epoch_end).lower()}"))
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == cli.trainer.global_step > 0
    assert state["epoch"] == 2
    best = [p for p in (tmp_path / "ckpt").glob("*.ckpt") if p.name != "last.ckpt"]
    assert len(best) == 1 and "epoch=0" in best[0].name  # top-k is unchanged


def test_a_new_fit_refuses_an_earlier_runs_last_checkpoint(tmp_path: Path) -> None:
    # Lightning would write the new run's last checkpoint as last-v1.ckpt, and whatever reads
    # last.ckpt (make export, make resume's neighbours) would take the earlier run's weights.
    cli_main(smoke_args(tmp_path))
    before = (tmp_path / "ckpt" / "last.ckpt").read_bytes()
    with pytest.raises(SystemExit, match="earlier run's: resume it with --ckpt_path last"):
        cli_main(smoke_args(tmp_path, "--seed_everything=7"))
    assert (tmp_path / "ckpt" / "last.ckpt").read_bytes() == before
    assert not list((tmp_path / "ckpt").glob("last-v*.ckpt"))
    cli_main(smoke_args(tmp_path, "--ckpt_path=last"))  # resuming it is not refused
    assert not list((tmp_path / "ckpt").glob("last-v*"))
