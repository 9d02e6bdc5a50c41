"""Backbones as plain ``nn.Module``s (no Lightning) and the two-headed network.

``shipnet`` is designed for this task: the cue is a few pixels across the hull's edges, so it
keeps full resolution for two layers, downsamples with max pooling (a thin bright or dark edge
survives a max, an average dilutes it) and pools globally with max and mean together.
torchvision models are built with ``weights=None``: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from shipload.contract import PART_NAMES
from shipload.model.physics import PROFILE_STAGE, CueReadout
from shipload.view import GEO_DIM

# ImageNet statistics; kept for every backbone so that checkpoints stay comparable.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _cbr(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ResBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))), the last batch norm's scale starting at zero.

    It starts as the identity on the non-negative maps a ReLU leaves, so blocks added to a
    trained ShipNet (``ShipNet(extra_from=...)``) leave its calls as they were until training
    moves them (Net2DeeperNet, Chen et al., 2016; zero-init residuals, Goyal et al., 2017).
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(c, c), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) → same
        """The block's output."""
        return F.relu(x + self.body(x))


class ShipNet(nn.Module):
    """Compact CNN for hull-aligned tanker views. Output (B, 2 * width[-1]) features.

    Args:
        widths: channels per stage; stage 0 runs at full resolution.
        depth: conv layers per stage after the first.
        extra_from: stages from this width up end with a residual block (``ResBlock``), kept
            apart from ``features`` so that weights of a ShipNet without them load by name and
            the blocks start as the identity; 0 adds none (every model up to stage 15).

    Attributes:
        style_mix: probability, per training batch and stage, of mixing the feature statistics
            of the first ``STYLE_MIX_STAGES`` stages between chips (``mix_style``); 0 (off) in
            every shipped model, and never applied in eval mode, so the graph does not change.
        style_mix_alpha: the Beta(alpha, alpha) concentration of the mixing weight.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 48, 96, 160), depth: int = 1,
                 extra_from: int = 0) -> None:
        super().__init__()
        self.style_mix = 0.0
        self.style_mix_alpha = 0.1
        layers: list[nn.Module] = [*_cbr(3, widths[0]), *_cbr(widths[0], widths[0])]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += _cbr(cin, cout)
            for _ in range(depth if cout >= 48 else 0):
                layers += _cbr(cout, cout)
        self.features = nn.Sequential(*layers)
        # One per stage: a ResBlock at the stage's end, or the identity (no weights).
        self.extra = nn.ModuleList([ResBlock(w) if 0 < extra_from <= w else nn.Identity()
                                    for w in widths])
        self.widths = widths
        self.out_features = 2 * widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) → (B, 2C)
        """Features: global max and mean of the last stage, concatenated."""
        return self.pyramid(x)[0]

    def pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``forward``'s features and every stage's map (strides 1, 2, 4, 8, 16).

        Returns:
            (B, 2C) pooled features and the stage outputs [(B, widths[i], H / 2**i, ...)].
        """
        maps: list[torch.Tensor] = []
        mix = self.training and self.style_mix > 0
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                if mix and len(maps) < STYLE_MIX_STAGES and (
                        float(torch.rand(())) < self.style_mix):
                    x = mix_style(x, self.style_mix_alpha)
                x = self.extra[len(maps)](x)
                maps.append(x)
            x = layer(x)
        x = self.extra[len(maps)](x)
        maps.append(x)
        return pool_max_mean(x), maps


# Stages whose output statistics ``style_mix`` mixes: the early ones, where a feature map's
# per-channel mean and spread carry the look (paint, water, tone) more than the hull's shape.
STYLE_MIX_STAGES = 3


def mix_style(x: torch.Tensor, alpha: float = 0.1, eps: float = 1e-6) -> torch.Tensor:
    """MixStyle (Zhou et al., ICLR 2021): swap part of each chip's feature style for another's.

    Each chip's feature map is normalised by its own per-channel mean and standard deviation,
    then re-styled with a mix of its statistics and those of another chip of the batch (a
    random permutation), mixed with a weight drawn from Beta(alpha, alpha). What a map shows
    (where the edges and parts are) is kept; its channel statistics, which carry much of the
    look, become another chip's in part, so the layers after it cannot lean on them. The
    statistics are taken without gradient, as in the paper.

    Args:
        x: (B, C, H, W) feature maps.
        alpha: Beta concentration; small values keep most mixes near one of the two chips.
        eps: added to the variance.

    Returns:
        (B, C, H, W) re-styled maps, in ``x``'s dtype.
    """
    b = x.shape[0]
    if b < 2:
        return x
    with torch.no_grad():
        var, mu = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)  # (B, C, 1, 1)
        mu, sig = mu.float(), (var.float() + eps).sqrt()
        lam = torch.distributions.Beta(alpha, alpha).sample((b, 1, 1, 1)).to(mu.device)
        perm = torch.randperm(b, device=mu.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        # (x - mu) / sig * sig_mix + mu_mix as one affine map per chip and channel: one pass
        # over the (large, full-resolution) map instead of four.
        scale = sig_mix / sig
        shift = mu_mix - mu * scale
    return x * scale.to(x.dtype) + shift.to(x.dtype)


def pool_max_mean(f: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B, 2C): each channel's global max, then its mean (ShipNet's pooling)."""
    return torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1)


class PartDecoder(nn.Module):
    """Dense part segmentation from ShipNet's stages (training only).

    A light feature-pyramid decoder over the stages at strides 2 to 16: from the last stage up,
    upsample, add the stage's own map (a 1x1 projection), smooth with a 3x3 conv; the logits at
    stride 2 are upsampled to the view's size. Its loss makes the shared features find the
    shadow, the hull side and the antifouling band, the parts whose widths across the hull are
    the freeboard cue, whatever their look. (A stride-1 level cost 50 % more per training step
    on a CPU, this one 20 %.)

    Args:
        widths: ShipNet's stage widths (stage 0, at stride 1, is not used).
        n_parts: output channels (one logit per part).
        dec: decoder channels at strides 2, 4, 8.
    """

    def __init__(self, widths: tuple[int, ...], n_parts: int,
                 dec: tuple[int, ...] = (32, 48, 64)) -> None:
        super().__init__()
        stages = widths[1 : 1 + len(dec)]
        self.top = nn.Conv2d(widths[-1], dec[-1], 1)
        self.lateral = nn.ModuleList([nn.Conv2d(w, d, 1) for w, d in zip(stages, dec)])
        self.reduce = nn.ModuleList([nn.Conv2d(dec[min(i + 1, len(dec) - 1)], d, 1)
                                     for i, d in enumerate(dec)])
        self.smooth = nn.ModuleList([nn.Sequential(*_cbr(d, d)) for d in dec])
        self.out = nn.Conv2d(dec[0], n_parts, 1)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Stage maps (strides 1..16, ``ShipNet.pyramid``) → part logits (B, P, H, W)."""
        y = self.top(maps[-1])
        for i in range(len(self.lateral) - 1, -1, -1):
            m = maps[i + 1]
            y = F.interpolate(y, size=m.shape[-2:], mode="bilinear", align_corners=False)
            y = self.smooth[i](self.reduce[i](y) + self.lateral[i](m))
        return F.interpolate(self.out(y), size=maps[0].shape[-2:], mode="bilinear",
                             align_corners=False)


class _TorchvisionFeatures(nn.Module):
    def __init__(self, body: nn.Module, out_features: int) -> None:
        super().__init__()
        self.body = body
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) → (B, F)
        return torch.flatten(self.body(x), 1)


def _resnet(fn: Callable[..., nn.Module]) -> nn.Module:
    m = fn(weights=None)
    n = m.fc.in_features
    m.fc = nn.Identity()
    return _TorchvisionFeatures(m, n)


def _classifier_net(fn: Callable[..., nn.Module]) -> nn.Module:
    m = fn(weights=None)
    body = nn.Sequential(m.features, nn.AdaptiveAvgPool2d(1))
    with torch.no_grad():
        n = body(torch.zeros(1, 3, 64, 64)).shape[1]
    return _TorchvisionFeatures(body, n)


BACKBONES: dict[str, Callable[[], nn.Module]] = {
    "shipnet": ShipNet,
    "shipnet_small": lambda: ShipNet((12, 24, 32, 64, 96)),
    # ShipNet with a residual block ending each of its two last stages (+47 % of the forward
    # pass's multiply-adds); stage-15 ShipNet weights load into it unchanged (``ResBlock``).
    "shipnet_deep": lambda: ShipNet(extra_from=96),
    "resnet18": lambda: _resnet(torchvision.models.resnet18),
    "resnet50": lambda: _resnet(torchvision.models.resnet50),
    "mobilenet_v3_small": lambda: _classifier_net(torchvision.models.mobilenet_v3_small),
    "mobilenet_v3_large": lambda: _classifier_net(torchvision.models.mobilenet_v3_large),
    "efficientnet_b0": lambda: _classifier_net(torchvision.models.efficientnet_b0),
}


def create_backbone(name: str) -> nn.Module:
    """Build a backbone by name (see ``BACKBONES``); it has an ``out_features`` attribute.

    Raises:
        ValueError: an unknown name, listing the valid ones.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name]()


class ShiploadNet(nn.Module):
    """Backbone + geometry branch + heads; normalisation and temperature inside.

    The image features feed the class and load heads directly (the image-only path); a fused
    branch (image features with the encoded acquisition geometry, ``shipload.view``) adds a
    residual to both and predicts the freeboard. The residual layers start at zero, so weights
    of an image-only model carry over and behave as before until training moves them.

    ``forward`` takes (B, 3, H, W) float RGB in [0, 1] and (B, G) encoded geometry (all zeros:
    none known) and returns class logits (B, 2) already calibrated: divided by the temperature,
    with the laden logit shifted by ``offset`` (both fitted on validation chips; ``raw_logits``
    undoes them),
    the load-fraction logit (B,) and log freeboard in metres (B,).

    A ShipNet backbone also gets a ``PartDecoder`` (``part_head``): training asks it for the
    part maps (``parts``); export and inference never run it.

    With ``readout`` (``pooled`` or ``profile``), a ``CueReadout`` (``shipload.model.physics``)
    measures the shadow's and the side's widths in beams, from the pooled features or from a
    profile across the hull of ShipNet's stride-4 map, and adds the class-logit term they give
    with the geometry; it is part of the graph (its term starts at zero).
    """

    def __init__(self, backbone: str = "shipnet", dropout: float = 0.2, geo_dim: int = GEO_DIM,
                 fused: int = 128, readout: str = "none") -> None:
        super().__init__()
        self.backbone_name = backbone
        self.geo_dim = geo_dim
        self.backbone = create_backbone(backbone)
        self.part_head = (PartDecoder(self.backbone.widths, len(PART_NAMES))
                          if isinstance(self.backbone, ShipNet) else None)
        f = int(self.backbone.out_features)
        self.dropout = nn.Dropout(dropout)
        self.cls_head = nn.Linear(f, 2)
        self.load_head = nn.Linear(f, 1)
        self.geo_mlp = nn.Sequential(nn.Linear(geo_dim, 64), nn.ReLU(inplace=True),
                                     nn.Linear(64, 64), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Linear(f + 64, fused), nn.ReLU(inplace=True),
                                  nn.Linear(fused, fused), nn.ReLU(inplace=True))
        self.fused_cls = nn.Linear(fused, 2)
        self.fused_load = nn.Linear(fused, 1)
        self.freeboard_head = nn.Linear(fused, 1)
        self.readout = (CueReadout(f, readout, self.backbone.widths[PROFILE_STAGE]
                                   if isinstance(self.backbone, ShipNet) else 0)
                        if readout != "none" else None)
        for m in (self.fused_cls, self.fused_load):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("offset", torch.zeros(()))  # laden-logit shift after T
        self.register_buffer("_laden", torch.tensor([0.0, 1.0]), persistent=False)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W), (B, G) → (logits (B, 2) / T, load logit (B,), log freeboard (B,))."""
        o = self.forward_train(x, g)
        return o["logits"], o["load"], o["log_fb"]

    def forward_train(self, x: torch.Tensor, g: torch.Tensor | None, part_rows: int = 0
                      ) -> dict[str, torch.Tensor]:
        """Everything training asks of the network, by name.

        ``logits``, ``load`` and ``log_fb`` as ``forward``; ``measure`` (B, 2), the cue
        ratios the readout measured (with ``readout``); ``parts`` (part_rows, P, H, W), the
        part logits of the first ``part_rows`` chips (when ``part_rows`` > 0).

        Raises:
            ValueError: part maps asked of a backbone without a part head (only ShipNet has one).
        """
        if part_rows > 0 and self.part_head is None:
            raise ValueError(f"backbone {self.backbone_name!r} has no part head; the part "
                             "segmentation loss needs backbone: shipnet")
        xn = (x - self.mean) / self.std
        if g is None:
            g = x.new_zeros((x.shape[0], self.geo_dim))
        maps: list[torch.Tensor] = []
        if part_rows > 0 or (self.readout is not None and self.readout.needs_maps):
            z, maps = self.backbone.pyramid(xn)
        else:
            z = self.backbone(xn)
        z = self.dropout(z)  # (B, F)
        h = self.fuse(torch.cat([z, self.geo_mlp(g)], dim=1))  # (B, fused)
        logits = self.cls_head(z) + self.fused_cls(h)
        out: dict[str, torch.Tensor] = {}
        if self.readout is not None:
            # (B, 2) measured log ratios, (B, 2) logit term
            out["measure"], term = self.readout(z, g, maps)
            logits = logits + term
        out["logits"] = logits / self.temperature + self.offset * self._laden
        out["load"] = (self.load_head(z) + self.fused_load(h)).squeeze(1)
        out["log_fb"] = self.freeboard_head(h).squeeze(1)
        if part_rows > 0:
            assert self.part_head is not None
            out["parts"] = self.part_head([m[:part_rows] for m in maps])
        return out

    def forward_parts(self, x: torch.Tensor, g: torch.Tensor | None, rows: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward``'s outputs and the part logits (rows, P, H, W) of the first ``rows``.

        Raises:
            ValueError: the backbone has no part head (only ShipNet has one).
        """
        o = self.forward_train(x, g, max(rows, 1))
        return o["logits"], o["load"], o["log_fb"], o["parts"][:rows]

    def raw_logits(self, calibrated: torch.Tensor) -> torch.Tensor:
        """(B, 2) logits before calibration: what the training losses see."""
        return (calibrated - self.offset * self._laden) * self.temperature


class ProbabilityHead(nn.Module):
    """Export wrapper: probabilities (B, 2), load fraction (B,), freeboard in metres (B,).

    Takes the image (B, 3, H, W) and the encoded geometry (B, G).
    """

    def __init__(self, net: ShiploadNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, g: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Softmax over (empty, laden), sigmoid of the load logit, exp of log freeboard."""
        logits, load, log_fb = self.net(x, g)
        return torch.softmax(logits, dim=1), torch.sigmoid(load), torch.exp(log_fb)
