"""scripts/prior_study.py: EM re-estimation of the laden share, judged after adaptation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from prior_study import em_prior, skewed, study  # noqa: E402


def test_em_recovers_the_share_of_a_calibrated_model() -> None:
    # Scores x ~ N(+1, 1) for laden and N(-1, 1) for empty: under a 0.5 prior the exact
    # posterior is sigmoid(2x), so EM should find the set's real share.
    rng = np.random.default_rng(0)
    for share in (0.2, 0.8):
        y = (rng.random(20000) < share).astype(int)
        x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
        p = 1 / (1 + np.exp(-2 * x))
        est, q = em_prior(p)
        assert est == pytest.approx(y.mean(), abs=0.02)
        assert ((q >= 0.5) == y).mean() > ((p >= 0.5) == y).mean()  # the skew is used


def test_em_amplifies_a_biased_model() -> None:
    # A model that leans to "empty" on a balanced set: EM pushes the share further down.
    rng = np.random.default_rng(1)
    y = (rng.random(20000) < 0.5).astype(int)
    p = 1 / (1 + np.exp(-2 * (rng.normal(np.where(y == 1, 1.0, -1.0), 1.0) - 0.8)))
    est, _ = em_prior(p)
    assert est < (p >= 0.5).mean() < 0.5
    with pytest.raises(ValueError, match="train_prior"):
        em_prior(p, train_prior=1.0)


def test_skewed_subsets_have_the_asked_share_or_say_what_to_do() -> None:
    y = np.array([1] * 30 + [0] * 70)
    idx = skewed(y, 0.2, 50, np.random.default_rng(0))
    assert len(set(idx)) == 50 and y[idx].mean() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="render more"):
        skewed(y, 0.8, 50, np.random.default_rng(0))


def test_study_adapts_and_reports_each_share() -> None:
    res = study(REPO / "models" / "shipload.pt", seed=5, n=64, subset=20, sets=("held_out",))
    rows = res["sets"]["held_out"]
    assert list(rows) == ["20%", "50%", "80%"]
    for share, r in zip((0.2, 0.5, 0.8), rows.values()):
        assert r["truth_share"] == pytest.approx(share)
        assert 0 <= r["em_estimated_share"] <= 1
        assert 0 <= r["accuracy_adapted_em"] <= 1


def test_study_refuses_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not found"):
        study(tmp_path / "nope.pt", seed=5, n=8, subset=4)
