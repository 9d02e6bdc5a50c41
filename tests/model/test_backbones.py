"""Backbones build offline, take the hull-aligned view, and the heads have the right shapes."""

from __future__ import annotations

import pytest
import torch

from shipload.model.backbones import BACKBONES, ProbabilityHead, ShiploadNet, create_backbone


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_shapes(name: str) -> None:
    net = ShiploadNet(name).eval()
    with torch.no_grad():
        logits, load = net(torch.rand(2, 3, 64, 192))
    assert logits.shape == (2, 2) and load.shape == (2,)


def test_unknown_backbone_lists_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        create_backbone("resnet19")


def test_probability_head_and_temperature() -> None:
    net = ShiploadNet("shipnet_small").eval()
    x = torch.rand(3, 3, 32, 96)
    head = ProbabilityHead(net)
    p, lf = head(x)
    assert torch.allclose(p.sum(1), torch.ones(3)) and ((lf >= 0) & (lf <= 1)).all()
    net.temperature.fill_(5.0)
    p2, _ = head(x)
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
