"""Backbones build offline, take the hull-aligned view, and the heads have the right shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shipload.model.backbones import BACKBONES, ProbabilityHead, ShiploadNet, create_backbone
from shipload.model.task import load_weights
from shipload.view import GEO_DIM


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_shapes(name: str) -> None:
    net = ShiploadNet(name).eval()
    with torch.no_grad():
        logits, load, log_fb = net(torch.rand(2, 3, 64, 192), torch.rand(2, GEO_DIM))
    assert logits.shape == (2, 2) and load.shape == (2,) and log_fb.shape == (2,)


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        create_backbone("resnet19")


def test_probability_head_and_temperature() -> None:
    net = ShiploadNet("shipnet_small").eval()
    x = torch.rand(3, 3, 32, 96)
    g = torch.zeros(3, GEO_DIM)
    head = ProbabilityHead(net)
    p, lf, fb = head(x, g)
    assert torch.allclose(p.sum(1), torch.ones(3)) and ((lf >= 0) & (lf <= 1)).all()
    assert (fb > 0).all()  # metres
    net.temperature.fill_(5.0)
    p2, _, _ = head(x, g)
    assert (p2.max(1).values <= p.max(1).values + 1e-6).all()  # hotter → less confident


def test_max_pool_keeps_thin_edge() -> None:
    # A one-pixel line must still change the shipnet features after all the pooling.
    net = ShiploadNet("shipnet").eval()
    x = torch.full((1, 3, 64, 192), 0.3)
    y = x.clone()
    y[..., 31, 40:150] = 0.9
    with torch.no_grad():
        fx, fy = net.backbone(x), net.backbone(y)
    assert (fx - fy).abs().max() > 0.1 * fx.abs().max()


def test_geometry_branch_starts_as_the_image_only_model(tmp_path: Path) -> None:
    """Weights of an image-only network load, and until trained the geometry changes nothing:
    the fused residual outputs start at zero."""
    old = ShiploadNet("shipnet_small")
    sd = {k: v for k, v in old.state_dict().items()
          if not k.startswith(("geo_mlp.", "fuse.", "fused_", "freeboard_head."))}
    torch.save({"state_dict": sd}, tmp_path / "old.pt")
    net = ShiploadNet("shipnet_small").eval()
    load_weights(net, tmp_path / "old.pt")
    x = torch.rand(2, 3, 32, 96)
    with torch.no_grad():
        a, la, _ = net(x, torch.zeros(2, GEO_DIM))
        b, lb, _ = net(x, torch.rand(2, GEO_DIM))
    assert torch.allclose(a, b) and torch.allclose(la, lb)
