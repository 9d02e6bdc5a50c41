"""LightningCLI wiring shared by ``train.py`` and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.cli import LightningCLI

from shipload.data.datamodule import ShiploadDataModule
from shipload.model.task import ShiploadTask


class ShiploadCLI(LightningCLI):
    """LightningCLI whose model owns the input contract, passed on to the data module."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Link the model's input geometry to the data module, so they cannot disagree."""
        for k in ("input_height", "input_width", "resize_policy", "across_scale"):
            parser.link_arguments(f"model.{k}", f"data.{k}")


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
