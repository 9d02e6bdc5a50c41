"""scripts/refit_calibration.py: refits T and the offset on the recipe's validation stream."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from refit_calibration import main  # noqa: E402

SMOKE = ["--config", str(REPO / "configs" / "train.yaml"), str(REPO / "configs" / "smoke.yaml")]


def test_refit_writes_a_new_checkpoint_with_the_offset(smoke_ckpt: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "calibrated.ckpt"
    before = smoke_ckpt.read_bytes()
    main([str(smoke_ckpt), *SMOKE, "--output", str(out), "--data.val_chips", "200",
          f"--trainer.default_root_dir={tmp_path}"])
    assert smoke_ckpt.read_bytes() == before  # the input is never changed
    state = torch.load(out, map_location="cpu", weights_only=True)
    sd = state["state_dict"]
    assert "net.offset" in sd and state["hyper_parameters"]["calibrate_offset"] is True
    line = capsys.readouterr().out
    assert "200 validation chips" in line and f"{float(sd['net.offset']):+.3f}" in line
    from shipload.export import load_model

    m = load_model(out)  # exports as any checkpoint does, the offset inside
    assert float(m.net.offset) == pytest.approx(float(sd["net.offset"]))


def test_refit_refuses_too_few_chips_and_overwriting(smoke_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="at least 200"):
        main([str(smoke_ckpt), *SMOKE, "--output", str(tmp_path / "c.ckpt"),
              f"--trainer.default_root_dir={tmp_path}"])
    assert not (tmp_path / "c.ckpt").exists()
    with pytest.raises(SystemExit, match="must differ"):
        main([str(smoke_ckpt), "--output", str(smoke_ckpt)])
