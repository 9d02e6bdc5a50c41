"""Renderer configuration (the schema of configs/synth.yaml) and per-chip scene sampling.

All physical ranges come from DESIGN.md "What the sensor sees"; tests pin them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from shipload.synth.appearance import FAMILIES, Look, check_families, held_out_axes, sample_look

Range = tuple[float, float]


def _check_range(name: str, r: Range, lo: float = -math.inf, hi: float = math.inf) -> None:
    if not (lo <= r[0] <= r[1] <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {list(r)}")


@dataclass(frozen=True)
class ShipClass:
    """One tanker size class.

    Attributes:
        weight: relative sampling weight.
        length_m: overall length range.
        beam_ratio: L/B range (DESIGN: B ~ L/5.5-L/7.2).
        fb_laden_m: freeboard range when fully laden.
        fb_ballast_m: freeboard range in full ballast.
    """

    weight: float = 1.0
    length_m: Range = (45.0, 110.0)
    beam_ratio: Range = (5.5, 7.2)
    fb_laden_m: Range = (1.0, 2.0)
    fb_ballast_m: Range = (3.0, 4.5)

    def __post_init__(self) -> None:
        for n in ("length_m", "beam_ratio", "fb_laden_m", "fb_ballast_m"):
            _check_range(n, getattr(self, n), 0.0)
        if self.fb_laden_m[1] >= self.fb_ballast_m[0]:
            raise ValueError("fb_laden_m must lie below fb_ballast_m")
        if self.weight < 0:
            raise ValueError("weight must be >= 0")


def _default_classes() -> dict[str, ShipClass]:
    return {
        "small": ShipClass(0.6, (45.0, 110.0), (5.5, 7.2), (1.0, 2.0), (3.0, 4.5)),
        "aframax": ShipClass(0.25, (230.0, 250.0), (5.5, 6.0), (6.0, 7.5), (11.0, 14.0)),
        "vlcc": ShipClass(0.15, (320.0, 335.0), (5.5, 6.0), (9.0, 11.0), (18.0, 22.0)),
    }


@dataclass(frozen=True)
class LoadConfig:
    """Load-fraction distribution: a mixture of near-empty, near-full and uniform.

    Attributes:
        extreme_weight: share of ships near 0 or 1 (the rest are uniform on [0, 1]).
        extreme_width: near-extreme ships lie within this distance of 0 or 1.
        laden_share: share of the near-extreme ships that are near 1.
    """

    extreme_weight: float = 0.8
    extreme_width: float = 0.12
    laden_share: float = 0.5

    def __post_init__(self) -> None:
        for n in ("extreme_weight", "extreme_width", "laden_share"):
            if not 0.0 <= getattr(self, n) <= 1.0:
                raise ValueError(f"{n} must lie in [0, 1]")


HULL_PAINTS: dict[str, tuple[float, float, float]] = {
    "black": (0.06, 0.06, 0.07),
    "dark_grey": (0.22, 0.23, 0.25),
    "navy": (0.08, 0.12, 0.25),
    "maroon": (0.28, 0.09, 0.08),
    "blue_grey": (0.30, 0.36, 0.42),
    "green": (0.10, 0.25, 0.16),
}
DECK_PAINTS: dict[str, tuple[float, float, float]] = {
    "red_brown": (0.45, 0.21, 0.15),
    "green": (0.26, 0.42, 0.30),
    "grey": (0.50, 0.51, 0.50),
}
WATER_COLOURS: dict[str, tuple[float, float, float]] = {
    "deep_blue": (0.05, 0.11, 0.20),
    "coastal_green": (0.09, 0.17, 0.15),
    "turquoise": (0.10, 0.24, 0.26),
    "turbid": (0.20, 0.19, 0.14),
    "dark": (0.03, 0.05, 0.07),
}


@dataclass(frozen=True)
class NuisanceConfig:
    """Probabilities of the nuisances the model must learn to ignore.

    Attributes:
        wake: ship under way (Kelvin wake and turbulent track).
        glint: sun glint on the water.
        haze: haze veil.
        cloud: thin cloud patch.
        quay: a quay edge in frame.
        neighbour: another vessel in frame.
        deck_paints: deck paint names to draw from.
        water_colours: water colour names to draw from.
    """

    wake: float = 0.35
    glint: float = 0.2
    haze: float = 0.25
    cloud: float = 0.15
    quay: float = 0.15
    neighbour: float = 0.15
    deck_paints: tuple[str, ...] = ("red_brown", "green", "grey")
    water_colours: tuple[str, ...] = ("deep_blue", "coastal_green", "turquoise", "turbid", "dark")

    def __post_init__(self) -> None:
        for n in ("wake", "glint", "haze", "cloud", "quay", "neighbour"):
            if not 0.0 <= getattr(self, n) <= 1.0:
                raise ValueError(f"{n} is a probability and must lie in [0, 1]")
        for name, values, valid in (("deck_paints", self.deck_paints, DECK_PAINTS),
                                    ("water_colours", self.water_colours, WATER_COLOURS)):
            bad = [v for v in values if v not in valid]
            if not values or bad:
                what = bad or "empty list"
                raise ValueError(f"{name}: unknown {what}; choose from {list(valid)}")


@dataclass(frozen=True)
class SensorConfig:
    """Imaging geometry and sensor model.

    Attributes:
        gsd_m: ground sample distance range (sampled log-uniformly).
        off_nadir_deg: view angle range.
        sun_elevation_deg: sun elevation range.
        chip_scale: chip side as a multiple of ship length.
        min_chip_px: smallest chip side; the scale grows to reach it.
        max_chip_px: largest chip side; finer GSD is redrawn for long ships beyond it.
        supersample: the scene is drawn this much finer, then area-downsampled.
        mtf_sigma_px: Gaussian MTF blur range, in output pixels.
        noise_std: additive noise std range (fraction of full scale).
        jpeg_fraction: share of 8-bit chips written as JPEG (the rest PNG).
        jpeg_quality: JPEG quality range.
        output: 8-bit RGB (png/jpeg mix) or 16-bit TIFF with 3 or 4 (RGB+NIR) bands.
    """

    gsd_m: Range = (0.3, 3.0)
    off_nadir_deg: Range = (0.0, 45.0)
    sun_elevation_deg: Range = (15.0, 70.0)
    chip_scale: Range = (1.1, 2.0)
    min_chip_px: int = 32
    max_chip_px: int = 384
    supersample: int = 3
    mtf_sigma_px: Range = (0.35, 0.9)
    noise_std: Range = (0.004, 0.02)
    jpeg_fraction: float = 0.3
    jpeg_quality: Range = (70.0, 95.0)
    output: Literal["rgb8", "tiff16_rgb", "tiff16_rgbn"] = "rgb8"
    centre_offset_frac: float = 0.03

    def __post_init__(self) -> None:
        _check_range("gsd_m", self.gsd_m, 0.05, 30.0)
        _check_range("off_nadir_deg", self.off_nadir_deg, 0.0, 60.0)
        _check_range("sun_elevation_deg", self.sun_elevation_deg, 5.0, 90.0)
        _check_range("chip_scale", self.chip_scale, 1.0, 4.0)
        _check_range("mtf_sigma_px", self.mtf_sigma_px, 0.0, 5.0)
        _check_range("noise_std", self.noise_std, 0.0, 0.5)
        _check_range("jpeg_quality", self.jpeg_quality, 1.0, 100.0)
        if not 16 <= self.min_chip_px <= self.max_chip_px <= 4096:
            raise ValueError("need 16 <= min_chip_px <= max_chip_px <= 4096")
        if not 1 <= self.supersample <= 8:
            raise ValueError("supersample must lie in 1..8")
        if not 0.0 <= self.jpeg_fraction <= 1.0:
            raise ValueError("jpeg_fraction must lie in [0, 1]")
        if not 0.0 <= self.centre_offset_frac <= 0.2:
            raise ValueError("centre_offset_frac must lie in [0, 0.2]")


@dataclass(frozen=True)
class AppearanceConfig:
    """Appearance randomisation (``shipload.synth.appearance``): families allowed per axis.

    Attributes:
        randomize: draw a ``Look`` per chip; off, chips look as the base renderer draws them.
        paint: hull/deck/superstructure paint families.
        water: water-model families.
        light: shadow darkness, penumbra and ambient-colour families.
        sensor: tone-curve and sensor-artefact families.
        style: drawing-style families (shaded, flat, textured).
        layout: deck-equipment and accommodation-footprint families (standard, varied,
            cluttered); only the base renderer's ``standard`` deck unless named.
    """

    randomize: bool = False
    paint: tuple[str, ...] = FAMILIES["paint"]
    water: tuple[str, ...] = FAMILIES["water"]
    light: tuple[str, ...] = FAMILIES["light"]
    sensor: tuple[str, ...] = FAMILIES["sensor"]
    style: tuple[str, ...] = FAMILIES["style"]
    layout: tuple[str, ...] = ("standard",)

    def __post_init__(self) -> None:
        check_families(self.families())

    def families(self) -> dict[str, tuple[str, ...]]:
        """Allowed families by axis."""
        return {a: tuple(getattr(self, a)) for a in FAMILIES}

    def held_out(self, axis: str | None = None) -> AppearanceConfig:
        """The looks a model trained on this config is judged on.

        Each axis this config randomises (or only ``axis``) is drawn from its held-out family
        alone (``appearance.held_out_axes``); the other axes are left as they are.

        Raises:
            KeyError: ``axis`` is not one this config randomises.
        """
        ho = held_out_axes(self.families())
        pick = ho if axis is None else {axis: ho[axis]}
        swap: dict[str, object] = {a: (f,) for a, f in pick.items()}
        return dataclasses.replace(self, **swap)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SynthConfig:
    """Everything the renderer draws from (configs/synth.yaml).

    Attributes:
        ship_classes: size classes by name.
        load: load-fraction distribution.
        trim_max_frac_l: largest stern trim in full ballast, as a fraction of L.
        bulb_share: share of ships with a bulbous bow.
        superstructure_height_m: accommodation block height above deck.
        sensor: imaging geometry and sensor model.
        nuisance: nuisance probabilities and palettes.
        appearance: appearance randomisation by family (off by default).
    """

    ship_classes: dict[str, ShipClass] = field(default_factory=_default_classes)
    load: LoadConfig = field(default_factory=LoadConfig)
    trim_max_frac_l: float = 0.015
    bulb_share: float = 0.8
    superstructure_height_m: Range = (8.0, 15.0)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    nuisance: NuisanceConfig = field(default_factory=NuisanceConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)

    def __post_init__(self) -> None:
        if not self.ship_classes or sum(c.weight for c in self.ship_classes.values()) <= 0:
            raise ValueError("ship_classes needs at least one class with weight > 0")
        if not 0.0 <= self.trim_max_frac_l <= 0.05:
            raise ValueError("trim_max_frac_l must lie in [0, 0.05]")
        _check_range("superstructure_height_m", self.superstructure_height_m, 0.0, 40.0)


@dataclass
class Scene:
    """Every random choice for one chip; the renderer is a pure function of it.

    Lengths in metres, angles in degrees, azimuths clockwise from north (image up).
    """

    ship_class: str
    length_m: float
    beam_m: float
    load_fraction: float
    fb_laden_m: float
    fb_ballast_m: float
    trim_m: float  # stern sits this much deeper than the bow
    heading_deg: float
    sun_elevation_deg: float
    sun_azimuth_deg: float
    off_nadir_deg: float
    sensor_azimuth_deg: float
    gsd_m: float
    chip_px: int
    centre_offset_px: tuple[float, float]
    bulb_depth_frac: float  # bulb top below laden waterline, share of (FB_b - FB_l); <0: none
    rudder_depth_frac: float
    superstructure_height_m: float
    superstructure_len_frac: float
    funnel_height_m: float
    deck_paint: str
    hull_paint: str
    antifouling_rgb: tuple[float, float, float]
    water: str
    under_way: bool
    glint: float
    haze: float
    cloud: float
    quay: bool
    neighbour: bool
    mtf_sigma_px: float
    noise_std: float
    white_balance: tuple[float, float, float]
    jpeg_quality: int  # 0: PNG
    seed: int
    look: Look | None = None  # appearance randomisation; None: the base renderer's look

    @property
    def freeboard_m(self) -> float:
        """Midship freeboard: linear in load between the ballast and laden freeboards."""
        return self.fb_ballast_m - self.load_fraction * (self.fb_ballast_m - self.fb_laden_m)

    @property
    def label(self) -> str:
        """Class name by the 0.5 rule."""
        return "laden" if self.load_fraction >= 0.5 else "empty"


def sample_load_fraction(rng: np.random.Generator, cfg: LoadConfig) -> float:
    """Draw a load fraction from the configured mixture."""
    if rng.random() < cfg.extreme_weight:
        x = rng.uniform(0.0, cfg.extreme_width)
        return float(1.0 - x if rng.random() < cfg.laden_share else x)
    return float(rng.uniform(0.0, 1.0))


def recut(s: Scene, scale: float, offset: float = 0.0) -> Scene:
    """The same scene cut another way (the framing checks' tight and loose cuts).

    Args:
        s: the scene.
        scale: the chip's side, in ship lengths.
        offset: the ship's centre off the chip's centre, along x, as a share of that side.
    """
    px = scale * s.length_m / s.gsd_m
    return dataclasses.replace(s, chip_px=int(round(px)), centre_offset_px=(offset * px, 0.0))


def sample_scene(cfg: SynthConfig, seed: int, index: int) -> Scene:
    """Draw every random choice of chip ``index`` of a run seeded with ``seed``.

    The draw depends only on (seed, index), never on worker count or order.
    """
    chip_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    rng = np.random.default_rng(chip_seed)
    s, nz = cfg.sensor, cfg.nuisance
    names = list(cfg.ship_classes)
    w = np.array([cfg.ship_classes[n].weight for n in names], dtype=float)
    cls_name = names[int(rng.choice(len(names), p=w / w.sum()))]
    sc = cfg.ship_classes[cls_name]
    length = rng.uniform(*sc.length_m)
    beam = length / rng.uniform(*sc.beam_ratio)
    scale = rng.uniform(*s.chip_scale)
    # GSD log-uniform; redraw (then clamp) when the chip would exceed max_chip_px, so that
    # long ships at fine GSD do not make multi-megapixel chips.
    lo, hi = math.log(s.gsd_m[0]), math.log(s.gsd_m[1])
    for _ in range(8):
        gsd = math.exp(rng.uniform(lo, hi))
        if scale * length / gsd <= s.max_chip_px:
            break
    else:
        gsd = max(gsd, scale * length / s.max_chip_px)
    chip = int(round(scale * length / gsd))
    chip = int(min(max(chip, s.min_chip_px), s.max_chip_px))
    load = sample_load_fraction(rng, cfg.load)
    # Freeboard scales with hull depth, hence with length within a class: place the ship in
    # its class's range by length, with +-25 % of the range as scatter.
    pos = (length - sc.length_m[0]) / max(sc.length_m[1] - sc.length_m[0], 1e-9)

    def fb(r: Range) -> float:
        x = np.clip(pos + rng.uniform(-0.25, 0.25), 0.0, 1.0)
        return float(r[0] + x * (r[1] - r[0]))

    fb_l = fb(sc.fb_laden_m)
    fb_b = fb(sc.fb_ballast_m)
    trim = (1.0 - load) * rng.uniform(0.0, cfg.trim_max_frac_l) * length
    jpeg = rng.random() < s.jpeg_fraction and s.output == "rgb8"
    return Scene(
        ship_class=cls_name,
        length_m=float(length),
        beam_m=float(beam),
        load_fraction=load,
        fb_laden_m=float(fb_l),
        fb_ballast_m=float(fb_b),
        trim_m=float(trim),
        heading_deg=float(rng.uniform(0, 360)),
        sun_elevation_deg=float(rng.uniform(*s.sun_elevation_deg)),
        sun_azimuth_deg=float(rng.uniform(0, 360)),
        off_nadir_deg=float(rng.uniform(*s.off_nadir_deg)),
        sensor_azimuth_deg=float(rng.uniform(0, 360)),
        gsd_m=float(gsd),
        chip_px=chip,
        centre_offset_px=(float(rng.normal(0, s.centre_offset_frac * chip)),
                          float(rng.normal(0, s.centre_offset_frac * chip))),
        bulb_depth_frac=float(rng.uniform(0.55, 1.0)) if rng.random() < cfg.bulb_share else -1.0,
        rudder_depth_frac=float(rng.uniform(0.7, 1.1)),
        superstructure_height_m=float(rng.uniform(*cfg.superstructure_height_m)),
        superstructure_len_frac=float(rng.uniform(0.07, 0.12)),
        funnel_height_m=float(rng.uniform(3.0, 6.0)),
        deck_paint=str(rng.choice(list(nz.deck_paints))),
        hull_paint=str(rng.choice(list(HULL_PAINTS))),
        antifouling_rgb=(
            float(rng.uniform(0.45, 0.62)),
            float(rng.uniform(0.10, 0.20)),
            float(rng.uniform(0.08, 0.15)),
        ),
        water=str(rng.choice(list(nz.water_colours))),
        under_way=bool(rng.random() < nz.wake),
        glint=float(rng.uniform(0.2, 1.0)) if rng.random() < nz.glint else 0.0,
        haze=float(rng.uniform(0.05, 0.35)) if rng.random() < nz.haze else 0.0,
        cloud=float(rng.uniform(0.2, 0.6)) if rng.random() < nz.cloud else 0.0,
        quay=bool(rng.random() < nz.quay),
        neighbour=bool(rng.random() < nz.neighbour),
        mtf_sigma_px=float(rng.uniform(*s.mtf_sigma_px)),
        noise_std=float(rng.uniform(*s.noise_std)),
        white_balance=tuple(float(v) for v in rng.uniform(0.9, 1.1, size=3)),  # type: ignore[arg-type]
        jpeg_quality=int(rng.uniform(*s.jpeg_quality)) if jpeg else 0,
        seed=chip_seed,
        # Its own generator, so that the scene's draws stay those of the base renderer.
        look=sample_look(np.random.default_rng([chip_seed, 0xA77]), cfg.appearance.families())
        if cfg.appearance.randomize else None,
    )
