"""Appearance randomisation far past realism, with the cue geometry left exact.

Every appearance factor the base renderer fixes (paints, water model, light, sensor tone, drawing
style, clutter) becomes a random draw from one of several *families* per axis. A family is a
whole way of drawing that factor, so a model can be trained with some families held out and
judged on them: that is this project's stand-in for imagery drawn by another renderer.

Nothing here moves a polygon: freeboard, shadow and layover come from ``geometry.py`` as before.
Appearance acts on colours, textures and the sensor's tone only.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# Axis → its families. The first family of each axis is the base renderer's own look.
FAMILIES: dict[str, tuple[str, ...]] = {
    "paint": ("palette", "random", "two_tone", "patched"),
    "water": ("waves", "flat", "choppy", "blotchy"),
    "light": ("standard", "wide"),
    "sensor": ("clean", "tone", "harsh"),
    "style": ("shaded", "flat", "textured"),
    # Deck equipment and the accommodation block's footprint: ``standard`` is the base
    # renderer's deck (a centreline pipe rack, one manifold); ``varied`` moves and multiplies
    # what a tanker's deck carries (racks off the centreline, manifolds, tank domes, cranes and
    # kingposts, a wider or narrower block); ``cluttered`` strews boxes of any size, colour and
    # height (up to 6 m) over the deck, a deckhouse forward and a helideck. The hull, its
    # freeboard, shadow and layover never change.
    "layout": ("standard", "varied", "cluttered"),
}
# Axes whose family is drawn first, in this order (a look's colours follow them in its
# generator, so adding an axis after them leaves every earlier look's draws as they were).
_FIRST_AXES = ("paint", "water", "light", "sensor", "style")
# The families the shipped recipe never trains on: the out-of-distribution check of the card.
# An axis the training renderer does not randomise (one family allowed) is not part of the
# held-out test (``held_out_axes``): layouts stay ``standard`` where a config names none.
HELD_OUT: dict[str, str] = {"paint": "two_tone", "water": "blotchy", "sensor": "harsh",
                            "style": "textured", "layout": "cluttered"}
# A box on the deck: (x, y) centre in ship lengths from midships and beams from the
# centreline, (half-length in L, half-width in B), height above the deck (m), and its grey
# level, or a negative value for a random colour's index into the look's ``item_rgb``.
DeckItem = tuple[float, float, float, float, float, float]


def in_family(held_out: dict[str, str] | None = None) -> dict[str, tuple[str, ...]]:
    """Every family except the held-out one of each axis (the training families)."""
    ho = HELD_OUT if held_out is None else held_out
    return {a: tuple(f for f in fams if f != ho.get(a)) for a, fams in FAMILIES.items()}


def held_out_axes(train: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The held-out family of each axis that a training renderer randomises (``HELD_OUT``).

    An axis fixed to one family in training (as ``layout`` is in configs that name none) is
    left as it is in the held-out sets too: the model never had to ignore it.
    """
    return {a: f for a, f in HELD_OUT.items() if len(train.get(a, FAMILIES[a])) > 1}


def check_families(families: dict[str, tuple[str, ...]]) -> None:
    """Raise ValueError on an unknown axis or family, or an axis left with no family."""
    for axis, fams in families.items():
        if axis not in FAMILIES:
            raise ValueError(f"unknown appearance axis {axis!r}; choose from {list(FAMILIES)}")
        bad = [f for f in fams if f not in FAMILIES[axis]]
        if bad or not fams:
            raise ValueError(f"appearance.{axis}: unknown families {bad or 'empty list'}; "
                             f"choose from {list(FAMILIES[axis])}")


def _rand_rgb(rng: np.random.Generator, v: tuple[float, float] = (0.05, 0.9),
              s: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))
    return (float(r), float(g), float(b))


@dataclass
class Look:
    """Every appearance draw of one chip (``None`` colours keep the scene's palette).

    Attributes:
        families: the family drawn on each axis.
        hull_rgb, deck_rgb, super_rgb, water_rgb, second_rgb: paints (linear RGB in [0, 1]).
        second_pattern: where the second paint goes: ``stripes`` (two_tone) or ``patches``
            (patched: blotches of rust, primer or camouflage).
        antifouling_gain: brightness of the antifouling red (hue kept: it is a cue).
        shadow_factor: light left in a shadow on water (skylight only).
        penumbra_px: blur of the shadow edge, in output pixels.
        ambient_rgb: colour of the light over the whole scene.
        flat_light: deck and hull side lit alike (flat shading).
        texture: strength of a procedural texture multiplied over the whole chip.
        gamma, contrast, saturation, offset: the tone curve.
        sharpen: unsharp-mask amount (0: none).
        noise_gain: multiplies the scene's sensor noise.
        misreg_px: (dx, dy) shift of the red and blue bands against green (pan-sharpening).
        posterize: levels per band (0: none).
        cloud_shadow: strength of a cloud's shadow patch (0: none).
        jetty: draw a jetty across the water, perpendicular to the hull.
        rack_offset: the pipe rack's offset from the centreline, in beams.
        manifolds: ship-frame x of each cargo manifold, in ship lengths from midships.
        super_half_width: half the accommodation block's width, in beams.
        deck_items: further boxes on the deck (``DeckItem``).
        item_rgb: colours of the items that ask for one.
    """

    families: dict[str, str] = field(default_factory=dict)
    hull_rgb: tuple[float, float, float] | None = None
    deck_rgb: tuple[float, float, float] | None = None
    super_rgb: tuple[float, float, float] | None = None
    water_rgb: tuple[float, float, float] | None = None
    second_rgb: tuple[float, float, float] | None = None
    second_pattern: str = "stripes"
    antifouling_gain: float = 1.0
    shadow_factor: float = 0.45
    penumbra_px: float = 0.0
    ambient_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    flat_light: bool = False
    texture: float = 0.0
    gamma: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    offset: float = 0.0
    sharpen: float = 0.0
    noise_gain: float = 1.0
    misreg_px: tuple[float, float] = (0.0, 0.0)
    posterize: int = 0
    cloud_shadow: float = 0.0
    jetty: bool = False
    rack_offset: float = 0.0
    manifolds: tuple[float, ...] = (0.0,)
    super_half_width: float = 0.42
    deck_items: tuple[DeckItem, ...] = ()
    item_rgb: tuple[tuple[float, float, float], ...] = ()

    def describe(self) -> str:
        """``axis=family`` pairs, for the manifest's ``look`` column."""
        return ";".join(f"{a}={f}" for a, f in sorted(self.families.items()))


def sample_look(rng: np.random.Generator, families: dict[str, tuple[str, ...]]) -> Look:
    """Draw one chip's look, each axis from its allowed families (uniformly).

    Args:
        rng: the chip's appearance generator (independent of its scene draws).
        families: allowed families per axis (axes left out use every family, but
            ``layout``, which keeps the standard deck).
    """
    fam = {a: str(rng.choice(list(families.get(a, FAMILIES[a])))) for a in _FIRST_AXES}
    lk = Look(families=fam)
    if fam["paint"] == "random":
        lk.hull_rgb, lk.deck_rgb = _rand_rgb(rng), _rand_rgb(rng)
        lk.super_rgb = _rand_rgb(rng, (0.4, 1.0))
    elif fam["paint"] == "two_tone":
        lk.hull_rgb, lk.deck_rgb = _rand_rgb(rng, s=(0.3, 1.0)), _rand_rgb(rng, s=(0.3, 1.0))
        lk.second_rgb = _rand_rgb(rng)
        lk.super_rgb = _rand_rgb(rng, (0.3, 1.0))
    elif fam["paint"] == "patched":
        lk.hull_rgb, lk.deck_rgb = _rand_rgb(rng), _rand_rgb(rng)
        lk.second_rgb, lk.second_pattern = _rand_rgb(rng), "patches"
        lk.super_rgb = _rand_rgb(rng, (0.3, 1.0))
    lk.antifouling_gain = float(rng.uniform(0.6, 1.4))
    if fam["water"] != "waves":
        lk.water_rgb = _rand_rgb(rng, (0.02, 0.45))
    if fam["light"] == "wide":
        lk.shadow_factor = float(rng.uniform(0.15, 0.75))
        lk.penumbra_px = float(rng.uniform(0.0, 1.0))
        lk.ambient_rgb = tuple(float(v) for v in rng.uniform(0.75, 1.25, 3))  # type: ignore[assignment]
        lk.cloud_shadow = float(rng.uniform(0.2, 0.5)) if rng.random() < 0.2 else 0.0
    else:
        lk.shadow_factor = float(rng.uniform(0.35, 0.55))
    if fam["sensor"] in ("tone", "harsh"):
        lk.gamma = float(math.exp(rng.uniform(-0.6, 0.6)))
        lk.contrast = float(rng.uniform(0.6, 1.6))
        lk.saturation = float(rng.uniform(0.0, 2.0))
        lk.offset = float(rng.uniform(-0.08, 0.08))
    if fam["sensor"] == "harsh":
        lk.sharpen = float(rng.uniform(0.5, 2.0))
        lk.noise_gain = float(rng.uniform(1.0, 4.0))
        lk.misreg_px = (float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
        lk.posterize = int(rng.choice([0, 0, 16, 32]))
    lk.flat_light = fam["style"] == "flat"
    if fam["style"] == "textured":
        lk.texture = float(rng.uniform(0.1, 0.35))
    lk.jetty = bool(rng.random() < 0.15)
    # Drawn last, and only when there is a choice, so that configs naming one layout (the
    # standard deck by default) keep every look they drew before the axis existed.
    layouts = list(families.get("layout", ("standard",)))
    fam["layout"] = str(rng.choice(layouts)) if len(layouts) > 1 else layouts[0]
    _draw_layout(lk, fam["layout"], rng)
    return lk


def _draw_layout(lk: Look, family: str, rng: np.random.Generator) -> None:
    """The deck's equipment for a layout family, in place (``standard``: as drawn before)."""
    if family == "standard":
        return
    items: list[DeckItem] = []
    if family == "varied":
        lk.rack_offset = float(rng.uniform(-0.2, 0.2))
        lk.manifolds = tuple(float(x) for x in rng.uniform(-0.12, 0.12, int(rng.integers(1, 4))))
        lk.super_half_width = float(rng.uniform(0.3, 0.48))
        if rng.random() < 0.6:  # a row of tank domes / hatches each side of the rack
            n = int(rng.integers(5, 13))
            y = float(rng.uniform(0.15, 0.3))
            for x in np.linspace(-0.3, 0.35, n):
                for side in (-1, 1):
                    items.append((float(x), side * y, 0.006, 0.03, float(rng.uniform(0.5, 1.5)),
                                  0.6))
        for _ in range(int(rng.integers(0, 5))):  # cranes and kingposts: small, tall
            items.append((float(rng.uniform(-0.3, 0.35)), float(rng.uniform(-0.3, 0.3)), 0.004,
                          0.025, float(rng.uniform(3.0, 6.0)), float(rng.uniform(0.3, 0.9))))
    else:  # cluttered
        lk.rack_offset = float(rng.uniform(-0.3, 0.3))
        lk.manifolds = tuple(float(x) for x in rng.uniform(-0.2, 0.2, int(rng.integers(0, 3))))
        lk.super_half_width = float(rng.uniform(0.25, 0.48))
        lk.item_rgb = tuple(_rand_rgb(rng) for _ in range(3))
        for _ in range(int(rng.integers(8, 30))):
            items.append((float(rng.uniform(-0.32, 0.38)), float(rng.uniform(-0.3, 0.3)),
                          float(rng.uniform(0.004, 0.04)), float(rng.uniform(0.02, 0.15)),
                          float(rng.uniform(0.3, 6.0)),
                          float(-1 - rng.integers(3)) if rng.random() < 0.5
                          else float(rng.uniform(0.2, 0.95))))
        if rng.random() < 0.5:  # a deckhouse forward
            items.append((0.36, 0.0, 0.02, 0.3, float(rng.uniform(2.5, 5.0)), 0.85))
        if rng.random() < 0.3:  # a helideck amidships: a pale square
            items.append((float(rng.uniform(-0.05, 0.1)), 0.0, 0.035, 0.3, 1.5, 0.9))
    lk.deck_items = tuple(items)


def water(look: Look, size: int, gsd_m: float, base_rgb: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Water by the look's water family: (size, size, 3) float32."""
    from shipload.synth.scene import smooth_noise

    base = np.array(look.water_rgb if look.water_rgb is not None else base_rgb, np.float32)
    fam = look.families.get("water", "flat")
    if fam == "flat":
        n = 0.01 * smooth_noise(rng, size, 0.7)
        return (base * (1.0 + n[..., None])).astype(np.float32)
    if fam == "choppy":
        n = smooth_noise(rng, size, max(0.5, rng.uniform(0.5, 1.5)))
        caps = np.clip(n - 2.0, 0, None)  # whitecaps on the highest crests
        img = base * (1.0 + rng.uniform(0.1, 0.3) * n[..., None]) + 0.5 * caps[..., None]
        return img.astype(np.float32)
    # blotchy: large patches of another colour (sediment, algae, slicks) and a gradient.
    other = np.array(_rand_rgb(rng, (0.02, 0.45)), np.float32)
    a = np.clip(0.5 + 0.5 * smooth_noise(rng, size, size / rng.uniform(4, 10)), 0, 1)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    g = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    mix = np.clip(0.6 * a + 0.4 * g, 0, 1)[..., None]
    return (base * (1 - mix) + other * mix).astype(np.float32)


def texture(look: Look, size: int, rng: np.random.Generator) -> np.ndarray:
    """A multiplicative procedural texture around 1: (size, size, 1) float32."""
    from shipload.synth.scene import smooth_noise

    t = 0.6 * smooth_noise(rng, size, rng.uniform(0.6, 2.0)) + 0.4 * smooth_noise(
        rng, size, size / 12)
    return (1.0 + look.texture * np.clip(t, -2.5, 2.5))[..., None].astype(np.float32)


def second_paint_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Stripes at a random angle and period, for two-tone paint: (size, size, 1) in {0, 1}."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    a = rng.uniform(0, math.pi)
    period = rng.uniform(3, 14)
    s = np.sin((x * math.cos(a) + y * math.sin(a)) * 2 * math.pi / period)
    return (s > rng.uniform(-0.5, 0.5)).astype(np.float32)[..., None]


def patch_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Blotches of a second paint (rust, primer, camouflage): (size, size, 1) in [0, 1].

    Thresholded smooth noise at a random scale and cover (10-60 %), edges soft over a pixel.
    """
    from shipload.synth.scene import smooth_noise

    n = smooth_noise(rng, size, rng.uniform(1.0, 6.0))
    t = float(np.quantile(n, 1.0 - rng.uniform(0.1, 0.6)))
    return np.clip((n - t) * 2.0 + 0.5, 0, 1).astype(np.float32)[..., None]


def draw_jetty(img: np.ndarray, heading_deg: float, length_px: float, beam_px: float,
               rng: np.random.Generator) -> None:
    """A long straight jetty across the frame, at a random angle to the hull, in place.

    The hull-axis estimate must follow the ship, not this line (tests check it).
    """
    h = img.shape[0]
    ang = math.radians(heading_deg + rng.uniform(45, 135))
    d = np.array([math.sin(ang), -math.cos(ang)])
    n = np.array([-d[1], d[0]])
    # Beyond the hull's end or abeam of it, never across the ship itself.
    off = (rng.choice([-1, 1]) * rng.uniform(0.6, 0.9) * length_px / 2
           + rng.uniform(0.7, 1.2) * beam_px)
    c = np.array([h / 2, h / 2]) + n * off
    w = max(1.5, rng.uniform(0.3, 0.8) * beam_px)
    far = 2 * h
    pts = np.array([c - d * far - n * w / 2, c + d * far - n * w / 2,
                    c + d * far + n * w / 2, c - d * far + n * w / 2])
    mask = np.zeros((h, h), np.float32)
    cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)], 1.0,
                 lineType=cv2.LINE_AA, shift=4)
    grey = np.array(_rand_rgb(rng, (0.3, 0.8), (0.0, 0.2)), np.float32)
    img[:] = img * (1 - mask[..., None]) + grey * mask[..., None]


def tone(img: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """The look's sensor tone: misregistration, sharpening, gamma, contrast, saturation, levels.

    Args:
        img: (H, W, 3) float32 in [0, 1] after the base sensor model.
        look: the chip's appearance draws.
        rng: the chip's appearance generator.

    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    out = img
    dx, dy = look.misreg_px
    if dx or dy:
        h, w = img.shape[:2]
        out = out.copy()
        for c, sgn in ((0, 1.0), (2, -1.0)):
            m = np.array([[1, 0, sgn * dx], [0, 1, sgn * dy]], np.float32)
            out[..., c] = cv2.warpAffine(img[..., c], m, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT)
    if look.sharpen > 0:
        blur = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = out + look.sharpen * (out - blur)
    if look.noise_gain > 1:
        out = out + 0.01 * (look.noise_gain - 1) * rng.standard_normal(out.shape).astype(
            np.float32)
    out = np.clip(out, 0, 1)
    if look.saturation != 1.0:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + look.saturation * (out - grey)
    out = np.clip((out - 0.5) * look.contrast + 0.5 + look.offset, 0, 1)
    if look.gamma != 1.0:
        out = np.power(out, look.gamma)
    if look.posterize:
        out = np.round(out * (look.posterize - 1)) / (look.posterize - 1)
    return np.clip(out, 0, 1).astype(np.float32)
