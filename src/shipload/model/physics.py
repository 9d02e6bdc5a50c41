"""A physical readout: widths across the hull measured from the image, turned into freeboard.

The class is a matter of the freeboard in beams (the fleet's laden hulls stand 0.07-0.16 B out
of the water, its ballast ones 0.24-0.38 B; shared/DESIGN.md), and the image shows it through
two widths across the hull, each a share of the beam that the same view also shows:

- the hull's shadow: ``shadow / B = FB / B * cot(sun elevation) * |sin(sun azimuth - heading)|``;
- the visible side: ``side / B = FB / B * tan(off-nadir) * |sin(sensor azimuth - heading)|``.

Both are ratios of widths measured across the hull in one view, so they do not depend on the
GSD, on the view's scale across the hull or on the look. ``CueReadout`` asks the network to
measure them (an auxiliary regression on the renderer's truth,
``synth.geometry.cue_targets``) and hands their logarithms, with the logarithms of the
geometry's factors (``geometry_factors``), to a small head whose output is added to the class
logits. In logarithms the physics is a sum:
``log FB/B = log(shadow / B) - log(cot el * |sin|)``, so a linear layer can turn a measured
width and a known sun into a freeboard, where the fused branch had to learn a product
(the card's bound rises 8 points with the geometry; stage 15 gained nothing from it).

No release carries it yet: grown from stage 15, its measurements were too loose for the
geometry to sharpen the call (``models/eval/readout_candidate.txt``).
"""

from __future__ import annotations

import torch
from torch import nn

from shipload.synth.geometry import CUE_EPS

CUE_NAMES = ("shadow_over_beam", "side_over_beam")  # ``synth.geometry.cue_targets``' order
N_READOUT = 8  # inputs of the readout's head (``CueReadout.features``)


def geometry_factors(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The log factors that turn FB/B into each ratio, and whether they are known.

    Read from the encoded geometry (``shipload.view.encode_geometry``): [4] is cot(el) / 2,
    [8] the sun's direction across the hull, [10] tan(off-nadir), [13] the sensor's direction
    across the hull; [3], [6], [9], [11] the presence of elevation, sun azimuth, off-nadir
    and sensor azimuth. Signs (which side) do not matter: the widths are magnitudes, so a
    flipped view gives the same factors.

    Args:
        g: (B, GEO_DIM) encoded geometry.

    Returns:
        (B, 2) log(factor + CUE_EPS) for the shadow and the side (0 where unknown), and
        (B, 2) presence (1 where both fields of a factor are known).
    """
    shadow = 2 * g[:, 4] * g[:, 8].abs()
    side = g[:, 10] * g[:, 13].abs()
    known = torch.stack([g[:, 3] * g[:, 6], g[:, 9] * g[:, 11]], 1)
    logs = torch.log(torch.stack([shadow, side], 1) + CUE_EPS)
    return logs * known, known


# ShipNet's stage whose map the ``profile`` readout reads: stride 4 (30 rows across the hull in
# the 120-row view, about 12 of them a beam), the coarsest at which a cue of a few view pixels
# still moves a row's features.
PROFILE_STAGE = 2
READOUTS = ("none", "pooled", "profile")


class CueReadout(nn.Module):
    """Measured cue ratios (log), and the class-logit term they give with the geometry.

    Args:
        features: width of the pooled image features (``pooled`` reads them).
        source: ``pooled``: a linear map of the pooled features; ``profile``: a profile
            across the hull of ShipNet's stride-4 map (averaged along the middle half of the
            hull, so that texture along it averages out), turned so that the sun lies on the
            same side of it in every chip whose sun is known (``canonical_side``), read by two
            1-D convolutions across the hull.
        map_channels: channels of that map (``profile`` only).
        hidden: the head's hidden width.

    The head's last layer starts at zero, so a model grown with it keeps its calls until
    training moves them; the measurement learns from the auxiliary loss from the start.

    Raises:
        ValueError: an unknown source, or ``profile`` without a ShipNet map to read.
    """

    def __init__(self, features: int, source: str = "pooled", map_channels: int = 0,
                 hidden: int = 32) -> None:
        super().__init__()
        if source not in READOUTS[1:]:
            raise ValueError(f"model.readout must be one of {list(READOUTS)}, not {source!r}")
        if source == "profile" and map_channels <= 0:
            raise ValueError("model.readout profile reads ShipNet's stride-4 map; use "
                             "backbone: shipnet (or shipnet_deep) or model.readout pooled")
        self.source = source
        self.needs_maps = source == "profile"
        if source == "profile":
            self.reduce = nn.Sequential(nn.Conv2d(map_channels, 16, 1), nn.ReLU(inplace=True))
            self.across = nn.Sequential(
                nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(inplace=True),
                nn.Conv1d(32, 32, 5, padding=4, dilation=2), nn.ReLU(inplace=True))
            self.measure = nn.Linear(64, len(CUE_NAMES))
        else:
            self.measure = nn.Linear(features, len(CUE_NAMES))
        self.head = nn.Sequential(nn.Linear(N_READOUT, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 2))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @staticmethod
    def features(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, 2) measured log ratios, (B, G) geometry → (B, N_READOUT) head inputs.

        The measured ratios, the freeboards in beams each gives where its geometry is known
        (log: measured minus the factor), the presences and the factors themselves (how far
        a width can be trusted: under a high sun a pixel of shadow is a lot of freeboard).
        """
        logf, known = geometry_factors(g)
        fb = (m - logf) * known  # (B, 2) log FB/B from each cue, 0 where unknown
        return torch.cat([m, fb, known, logf], 1)

    def profile(self, fmap: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) stage map, (B, G) geometry → (B, 64) features of the across-hull profile."""
        w = fmap.shape[-1]
        p = self.reduce(fmap)[..., w // 4 : w - w // 4].mean(dim=3)  # (B, 16, h)
        p = canonical_side(p, g)
        q = self.across(p)  # (B, 32, h)
        return torch.cat([q.amax(dim=2), q.mean(dim=2)], 1)

    def forward(self, z: torch.Tensor, g: torch.Tensor, maps: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) features, (B, G) geometry, stage maps → log ratios (B, 2), logit term (B, 2)."""
        if self.source == "profile":
            assert maps, "the profile readout reads the backbone's stage maps"
            m = self.measure(self.profile(maps[PROFILE_STAGE], g))
        else:
            m = self.measure(z)
        return m, self.head(self.features(m, g))


def canonical_side(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Profiles across the hull, reversed where the sun lies on the view's upper side.

    Afterwards the sun lies below the hull (``y`` down) in every profile whose sun azimuth is
    known, so the hull's shadow always falls on the upper side; where it is not known, the
    profile is kept. A view flipped across the hull, with its geometry, gives the same profile.

    Args:
        p: (B, C, h) profiles, row 0 at the view's top.
        g: (B, G) encoded geometry ([6]: sun azimuth known; [8]: the sun's direction across).
    """
    flip = ((g[:, 6] > 0) & (g[:, 8] < 0)).view(-1, 1, 1)
    return torch.where(flip, p.flip(2), p)

