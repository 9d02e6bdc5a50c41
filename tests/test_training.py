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
