"""scripts/framing_study.py: the TTA probability is the mean over the view's four flips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from framing_study import p_laden, scale_specs  # noqa: E402


def test_p_laden_plain_and_tta(smoke_ckpt: Path) -> None:
    from shipload.export import load_model
    from shipload.inference import tta_views

    m = load_model(smoke_ckpt)
    net = m.net.eval()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 3, m.spec.height, m.spec.width), dtype=np.uint8)
    g = rng.random((5, net.geo_dim), dtype=np.float32)
    d = {"x": x, "g": g}
    plain = p_laden(net, d, tta=False)
    with torch.no_grad():
        z = net(torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(g))[0]
    np.testing.assert_allclose(plain, torch.softmax(z, 1)[:, 1].numpy(), atol=1e-6)
    each = [p_laden(net, {"x": (xv * 255).round().astype(np.uint8), "g": gv}, tta=False)
            for xv, gv in tta_views(x.astype(np.float32) / 255, g, "hull_aligned")]
    tta = p_laden(net, d, tta=True)
    np.testing.assert_allclose(tta, np.mean(each, axis=0), atol=1e-5)
    assert not np.allclose(tta, plain)  # the flips do change the call's probability


def test_scales_make_specs_or_are_refused_with_the_range() -> None:
    from shipload.view import InputSpec

    spec = InputSpec(120, 160, "hull_aligned", 2.0, 1.1)
    assert [s.frame_scale for s in scale_specs(spec, [1.0, 1.3])] == [1.0, 1.3]
    assert scale_specs(spec, None) == []
    with pytest.raises(SystemExit, match="--scales 0.8: frame_scale must be 0"):
        scale_specs(spec, [0.8])
