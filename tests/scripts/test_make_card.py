"""scripts/make_card.py: refuses missing inputs up front; the peer paragraph tells the truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from make_card import peer_summary  # noqa: E402


def test_missing_input_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    train = tmp_path / "labels.csv"
    train.write_text("path,label\n")
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "make_card.py"), "--train",
                        str(train), "--robust", str(tmp_path / "none.onnx"),
                        "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "none.onnx: no such file" in r.stderr
    assert not (tmp_path / "o").exists()  # nothing measured, nothing written


def test_peer_summary() -> None:
    peer = {"shipnet": {"val_acc": 0.60, "cpu_views_per_s": 200.0},
            "resnet18": {"val_acc": 0.62, "cpu_views_per_s": 100.0},
            "resnet50": {"val_acc": None, "cpu_views_per_s": 25.0}}
    text = peer_summary(peer)
    assert "2.0 points below the best peer (resnet18" in text
    assert "2.0x resnet18's, 8.0x resnet50's" in text
    assert "**Incomplete**: resnet50 was not trained" in text
    peer["shipnet"]["val_acc"] = 0.63
    assert "1.0 points above the best peer (resnet18)" in peer_summary(peer)
    assert peer_summary({"shipnet": {"val_acc": None}}) == ""
