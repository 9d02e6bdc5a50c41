"""scripts/adapt_study.py: unlabelled adaptation past AdaBN, on skewed subsets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from adapt_study import report, study  # noqa: E402


def test_study_scores_every_method_on_each_share(capsys: pytest.CaptureFixture[str]) -> None:
    res = study(REPO / "models" / "shipload.pt", seed=5, n=64, subset=20, epochs=1,
                sets=("held_out",), methods=("adabn", "adabn+im"))
    rows = res["sets"]["held_out"]
    assert list(rows) == ["20%", "50%", "80%"]
    for share, r in zip((0.2, 0.5, 0.8), rows.values()):
        assert r["truth_share"] == pytest.approx(share)
        assert set(r) == {"truth_share", "before", "adabn", "adabn+im"}
        for m in ("before", "adabn", "adabn+im"):
            assert 0 <= r[m]["accuracy"] <= 1 and 0 <= r[m]["called_laden"] <= 1
    report(res)
    assert "adabn+im" in capsys.readouterr().out


def test_study_refuses_a_missing_model_or_an_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not found"):
        study(tmp_path / "nope.pt", seed=5, n=8, subset=4)
    with pytest.raises(SystemExit, match="unknown method"):
        study(REPO / "models" / "shipload.pt", seed=5, n=8, subset=4, methods=("magic",))
