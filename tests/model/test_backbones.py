"""Backbones build offline, take the hull-aligned view, and the heads have the right shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from shipload.model.backbones import (
    BACKBONES,
    ProbabilityHead,
    ShiploadNet,
    create_backbone,
    mix_style,
)
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


def test_mix_style_swaps_statistics_and_keeps_content() -> None:
    """Each re-styled map has the content of its own chip (the same map once normalised) and
    statistics between its own and another chip's."""
    torch.manual_seed(0)
    x = torch.randn(6, 4, 8, 10) * torch.rand(6, 4, 1, 1) * 3 + torch.randn(6, 4, 1, 1) * 2
    y = mix_style(x, alpha=0.1)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean((2, 3), keepdim=True)) / t.std((2, 3), keepdim=True, unbiased=False)

    assert torch.allclose(norm(y), norm(x), atol=1e-3)
    mu_x, mu_y = x.mean((2, 3)), y.mean((2, 3))  # (B, C)
    assert not torch.allclose(mu_y, mu_x, atol=1e-2)  # the statistics moved
    lo, hi = mu_x.min(0).values, mu_x.max(0).values  # a convex mix stays inside their range
    assert ((mu_y >= lo - 1e-4) & (mu_y <= hi + 1e-4)).all()
    assert mix_style(x[:1]) is x[:1] or torch.equal(mix_style(x[:1]), x[:1])  # one chip: as is


def test_style_mix_only_while_training() -> None:
    """MixStyle changes the training features and leaves eval (what export traces) exact."""
    net = ShiploadNet("shipnet_small")
    x = torch.rand(4, 3, 32, 96) * torch.tensor([1.0, 0.2, 0.6, 0.9]).view(4, 1, 1, 1)
    net.eval()
    with torch.no_grad():
        plain = net.backbone(x)
        net.backbone.style_mix = 1.0
        assert torch.equal(net.backbone(x), plain)
        net.train()
        torch.manual_seed(1)
        mixed = net.backbone(x)
        net.backbone.style_mix = 0.0
        unmixed = net.backbone(x)
    assert (mixed - unmixed).abs().max() > 1e-3


def test_deep_shipnet_starts_as_the_shipnet_it_grew_from(tmp_path: Path) -> None:
    """ShipNet weights load into ``shipnet_deep`` by name, its added residual blocks start as
    the identity (the same calls, in training mode too), and training can move them."""
    torch.manual_seed(0)
    old = ShiploadNet("shipnet")
    for m in old.modules():  # trained-looking batch-norm statistics, not the defaults
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    torch.save({"state_dict": old.state_dict()}, tmp_path / "shipnet.pt")
    deep = ShiploadNet("shipnet_deep")
    load_weights(deep, tmp_path / "shipnet.pt")
    assert any(k.startswith("backbone.extra.") for k in deep.state_dict())
    x, g = torch.rand(3, 3, 64, 96), torch.rand(3, GEO_DIM)
    for mode in (False, True):
        old.train(mode)
        deep.train(mode)
        old.dropout.p = deep.dropout.p = 0.0
        with torch.no_grad():
            for a, b in zip(old(x, g), deep(x, g)):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    logits, _, _ = deep(x, g)
    logits.sum().backward()
    grown = [p.grad for n, p in deep.named_parameters() if n.startswith("backbone.extra.")]
    assert any(gr is not None and gr.abs().sum() > 0 for gr in grown)
    # Weights of the deep network are not a ShipNet's: loading them the other way is refused.
    torch.save({"state_dict": deep.state_dict()}, tmp_path / "deep.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_weights(ShiploadNet("shipnet"), tmp_path / "deep.pt")
