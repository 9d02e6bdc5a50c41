"""Refit a checkpoint's calibration (temperature and laden-logit offset) on its recipe's
validation stream, as the training task now does after every validation epoch.

    python scripts/refit_calibration.py runs/train/checkpoints/last.ckpt \
        --config configs/train.yaml --output runs/train/checkpoints/calibrated.ckpt

Further ``--section.key value`` arguments override the configs, as with ``train.py``.

For a checkpoint trained before the task fitted the offset (stage 13): the weights are
untouched (the losses never see the calibration), so this gives what the recipe's last
validation epoch gives today. Writes a new checkpoint; the input is never changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from shipload.model.task import MIN_TEMPERATURE_CHIPS, load_weights
from shipload.training import cli_main


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--config", type=Path, nargs="+", default=[Path("configs/train.yaml")])
    p.add_argument("--output", type=Path, required=True)
    a, overrides = p.parse_known_args(argv)
    if not a.checkpoint.is_file():
        sys.exit(f"refit_calibration: {a.checkpoint} not found")
    if a.output.resolve() == a.checkpoint.resolve():
        sys.exit("refit_calibration: --output must differ from the checkpoint")
    args: list[str] = []
    for c in a.config:
        args += ["--config", str(c)]
    cli = cli_main(args + overrides, run=False)
    task, dm = cli.model, cli.datamodule
    load_weights(task.net, a.checkpoint)
    dm.setup("validate")
    zs, ys = [], []
    task.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():
            logits, _, _ = task.net(batch["image"], batch.get("geometry"))
            zs.append(task.net.raw_logits(logits))
            ys.append(batch["label"])
    z, y = torch.cat(zs), torch.cat(ys)
    if len(y) < MIN_TEMPERATURE_CHIPS:
        sys.exit(f"refit_calibration: {len(y)} validation chips; the fit needs at least "
                 f"{MIN_TEMPERATURE_CHIPS} (raise data.val_chips or data.val_fraction)")
    before = ((z[:, 1] > z[:, 0]).float().mean().item(), float(task.net.temperature))
    t, off = task.refit_calibration(z, y)
    cal = z / t + torch.tensor([0.0, off])
    share = (cal[:, 1] > cal[:, 0]).float().mean().item()
    acc = ((cal[:, 1] > cal[:, 0]).long() == y).float().mean().item()
    state = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    sd = state.get("state_dict", state)
    prefix = "net." if "state_dict" in state else ""
    sd[prefix + "temperature"] = task.net.temperature.detach().clone()
    sd[prefix + "offset"] = task.net.offset.detach().clone()
    if "hyper_parameters" in state:
        state["hyper_parameters"]["calibrate_offset"] = True
    a.output.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, a.output)
    print(f"{len(y)} validation chips (truth {y.float().mean():.3f} laden): temperature "
          f"{before[1]:.3f} -> {t:.3f}, offset {off:+.3f}; called laden {before[0]:.3f} "
          f"(temperature only) -> {share:.3f}, accuracy {acc:.3f}; wrote {a.output}")


if __name__ == "__main__":
    main()
