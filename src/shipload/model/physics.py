"""A physical readout: widths across the hull measured from the image, turned into freeboard.

The class is a matter of the freeboard in beams (the fleet's laden hulls stand 0.07-0.16 B out
of the water, its ballast ones 0.24-0.38 B; shared/DESIGN.md), and the image shows it through
two widths across the hull, each a share of the beam that the same view also shows:

- the hull's shadow: ``shadow / B = FB / B * cot(sun elevation) * |sin(sun azimuth - heading)|``;
- the visible side: ``side / B = FB / B * tan(off-nadir) * |sin(sensor azimuth - heading)|``.

Both are ratios of widths measured across the hull in one view, so they do not depend on the
GSD, on the view's scale across the hull or on the look. ``CueReadout`` asks the network to
measure them (an auxiliary regression on the renderer's truth, ``synth.geometry.cue_targets``) and hands their
logarithms, with the logarithms of the geometry's factors (``geometry_factors``), to a small
head whose output is added to the class logits. In logarithms the physics is a sum:
``log FB/B = log(shadow / B) - log(cot el * |sin|)``, so a linear layer can turn a measured
width and a known sun into a freeboard, where the fused branch had to learn a product
(the card's bound rises 8 points with the geometry; stage 15 gained nothing from it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shipload.synth.geometry import CUE_EPS

CUE_NAMES = ("shadow_over_beam", "side_over_beam")  # ``synth.geometry.cue_targets``' order
N_READOUT = 8  # inputs of the readout's head (``CueReadout.features``)


def geometry_factors(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log of the factors that turn FB/B into each ratio, and whether they are known.

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


class CueReadout(nn.Module):
    """Measured cue ratios (log), and the class-logit term they give with the geometry.

    Args:
        features: width of the image features it reads (the backbone's pooled features).
        hidden: the head's hidden width.

    The head's last layer starts at zero, so a model grown with it keeps its calls until
    training moves them; the measurement layer learns from the auxiliary loss from the start.
    """

    def __init__(self, features: int, hidden: int = 32) -> None:
        super().__init__()
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

    def forward(self, z: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) features, (B, G) geometry → measured log ratios (B, 2), logit term (B, 2)."""
        m = self.measure(z)
        return m, self.head(self.features(m, g))


def log_fb_over_beam(ratios: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The freeboard in beams (log) each measured ratio gives with the geometry. (B, 2).

    NaN where the cue's geometry is unknown. For tests and studies; the head sees
    ``CueReadout.features``.
    """
    logf, known = geometry_factors(g)
    out = ratios - logf
    return torch.where(known > 0, out, torch.full_like(out, math.nan))
