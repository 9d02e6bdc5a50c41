"""LightningCLI wiring shared by ``train.py`` and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from shipload.contract import SPEC_KEYS
from shipload.data.datamodule import ShiploadDataModule
from shipload.model.task import ShiploadTask


class Checkpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` holds the end of every epoch.

    Lightning 2.6 writes ``save_last`` only in a step that also saved a top-k checkpoint. With a
    monitored metric, ``last.ckpt`` is then the best epoch's state: ``--ckpt_path last`` after an
    interruption loses every epoch since the best, and a finished run's ``last.ckpt`` is not its
    end. This one writes ``last.ckpt`` after every epoch too; top-k is unchanged.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's save, then ``last.ckpt`` if it was skipped (when saving at epoch end)."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's save, then ``last.ckpt`` if it was skipped (when saving after val)."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_skipped(trainer)

    def _save_last_if_skipped(self, trainer: L.Trainer) -> None:
        # _should_skip_saving_checkpoint is also true when this step was saved already.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class ShiploadCLI(LightningCLI):
    """LightningCLI whose model owns the input contract, passed on to the data module."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Link the model's input geometry to the data module, so they cannot disagree."""
        for k in SPEC_KEYS:
            parser.link_arguments(f"model.{k}", f"data.{k}")

    def before_fit(self) -> None:
        """Refuse a new fit over an earlier run's ``last.ckpt``.

        Lightning would write this run's as ``last-v1.ckpt`` beside it, and ``--ckpt_path
        last``'s neighbours (``make export``, any script given ``last.ckpt``) would silently take
        the earlier run's weights.

        Raises:
            SystemExit: a checkpoint callback's ``dirpath`` holds a ``last.ckpt`` and no
                ``--ckpt_path`` resumes it.
        """
        if self.config[self.subcommand].get("ckpt_path") is not None:
            return
        for cb in self.trainer.checkpoint_callbacks:
            if not (isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath):
                continue
            last = Path(cb.dirpath) / "last.ckpt"
            if last.exists():
                raise SystemExit(
                    f"{last} is an earlier run's: resume it with --ckpt_path last, or move "
                    f"{last.parent} away (or give --trainer.default_root_dir and the checkpoint "
                    "callback's dirpath another folder) before a new run")


def cli_main(args: Sequence[str] | None = None, run: bool = True) -> ShiploadCLI:
    """Run ``fit``/``validate``/``test``/``predict`` from YAML configs and flags."""
    return ShiploadCLI(
        ShiploadTask,
        ShiploadDataModule,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=list(args) if args is not None else None,
        run=run,
    )
