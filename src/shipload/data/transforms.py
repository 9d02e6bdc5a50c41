"""Training augmentation around the model's view (``shipload.view``, shared with inference).

Every transform maps a chip and its geometry to a ``View`` (image and encoded geometry). Flips
of the view flip the encoded geometry with it (``flip_geometry``), so the sun and the sensor stay
where the pixels say they are. Rotations of the chip are not augmented: the hull-aligned view
absorbs them, and rendered headings are uniform already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import cv2
import numpy as np

from shipload.view import (
    GEO_DIM,
    InputSpec,
    Policy,
    View,
    describe,
    flip_geometry,
    prepare_chip,
    prepare_view,
    view_maps,
)

if TYPE_CHECKING:
    import albumentations as A
    import torch

__all__ = ["GEO_DIM", "InputSpec", "Policy", "View", "describe", "prepare_chip", "prepare_view"]

Geometry = Mapping[str, float] | None


def chip_augment(seed: int | None = None) -> A.Compose:
    """Augmentation of the raw chip, before the view (sensor and radiometry nuisances).

    Wide, past realism: brightness, contrast, gamma, saturation and per-channel gains (a colour
    cast), grey chips, sharpening, blur, noise, JPEG and downscaling. Hue moves at most +-3 %,
    so a red antifouling band stays the hull's reddest part; nothing moves pixels, so the cue
    geometry (shadow, layover, band widths) is exactly the renderer's. Magnitudes are set
    explicitly: several library defaults are extreme.
    """
    import albumentations as A  # imported here: it pulls in torch, which predict never needs

    return A.Compose(
        [
            A.RandomBrightnessContrast(brightness_limit=(-0.25, 0.25),
                                       contrast_limit=(-0.35, 0.35), p=0.7),
            A.RandomGamma(gamma_limit=(60, 165), p=0.4),
            A.ColorJitter(brightness=(0.9, 1.1), contrast=(0.9, 1.1), saturation=(0.2, 1.8),
                          hue=(-0.03, 0.03), p=0.5),
            A.MultiplicativeNoise(multiplier=(0.8, 1.2), per_channel=True, elementwise=False,
                                  p=0.3),
            A.ToGray(p=0.05),
            A.OneOf([
                A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2)),
                A.Sharpen(alpha=(0.2, 0.6), lightness=(0.9, 1.1)),
            ], p=0.4),
            A.GaussNoise(std_range=(0.005, 0.06), p=0.4),
            A.Downscale(scale_range=(0.5, 0.9), p=0.15),
            A.ImageCompression(quality_range=(35, 95), p=0.3),
        ],
        strict=True,
        seed=seed,
    )


def sensor_nuisance(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor artefacts past realism that albumentations does not draw: (H, W, 3) → same.

    Each at its own chance: the red and blue bands shifted against green by up to 1.5 px each
    (pan-sharpening misregistration, colour fringes at every edge), a strong unsharp mask
    (halos), a low-frequency multiplicative field (uneven illumination, vignetting, a texture
    over the whole chip; per band a third of the time) and posterisation (8-48 levels). The
    green band, and so every part's outline, never moves: the cue geometry stays exact.

    Args:
        img: (H, W, 3) float32 in [0, 1].
        rng: the item's generator.
    """
    out = img
    h, w = img.shape[:2]
    if rng.random() < 0.25:
        out = out.copy()
        for c in (0, 2):
            dx, dy = rng.uniform(-1.5, 1.5, 2)
            m = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
            out[..., c] = cv2.warpAffine(img[..., c], m, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.2:
        blur = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.7, 1.5))
        out = out + rng.uniform(0.5, 2.0) * (out - blur)
    if rng.random() < 0.25:
        g = int(rng.integers(2, 9))
        bands = 3 if rng.random() < 0.3 else 1
        field = cv2.resize(rng.standard_normal((g, g, bands)).astype(np.float32), (w, h),
                           interpolation=cv2.INTER_CUBIC).reshape(h, w, bands)
        out = out * (1.0 + rng.uniform(0.05, 0.3) * np.clip(field, -2.5, 2.5))
    out = np.clip(out, 0, 1)
    if rng.random() < 0.1:
        levels = int(rng.integers(8, 49))
        out = np.round(out * (levels - 1)) / (levels - 1)
    return out.astype(np.float32)


def view_augment(seed: int | None = None) -> A.Compose:
    """Augmentation of the prepared view: small affine and radiometry (flips are separate)."""
    import albumentations as A

    return A.Compose(
        [
            A.Affine(scale=(0.92, 1.08), translate_percent=(-0.03, 0.03), rotate=(-3, 3),
                     border_mode=cv2.BORDER_REFLECT_101, mask_interpolation=cv2.INTER_LINEAR,
                     p=0.5),
            A.RandomBrightnessContrast(brightness_limit=(-0.1, 0.1),
                                       contrast_limit=(-0.1, 0.1), p=0.3),
        ],
        strict=True,
        seed=seed,
    )


def random_flips(view: View, rng: np.random.Generator) -> View:
    """Flip the view along and/or across the hull, and its geometry with it."""
    h, v = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    img, maps = view.image, view.maps
    if h:
        img = img[:, ::-1]
        maps = maps[:, ::-1] if maps is not None else None
    if v:
        img = img[::-1]
        maps = maps[::-1] if maps is not None else None
    return View(np.ascontiguousarray(img), flip_geometry(view.geometry, h, v), view.axis_deg,
                view.axis_source, None if maps is None else np.ascontiguousarray(maps))


class TrainTransform:
    """Chip (+ geometry) → augmented view, with a reseedable random stream.

    ``set_seed`` reseeds it: once per worker and epoch (``worker_init_fn``), or once per item by
    the rendered stream, which makes every item depend only on its index.
    """

    def __init__(self, spec: InputSpec, seed: int = 0, angle_jitter_deg: float = 6.0) -> None:
        self.spec = spec
        self.angle_jitter_deg = angle_jitter_deg
        self.chip = chip_augment(seed)
        self.view = view_augment(seed + 1)
        self.rng = np.random.default_rng(seed + 2)

    def set_seed(self, seed: int) -> None:
        """Reseed every random stream."""
        self.chip.set_random_seed(seed)
        self.view.set_random_seed(seed + 1)
        self.rng = np.random.default_rng(seed + 2)

    def __call__(self, img: np.ndarray, geometry: Geometry = None,
                 heading_deg: float | None = None, maps: np.ndarray | None = None) -> View:
        """Augment the (H, W, 3) float chip and return its augmented view.

        ``maps`` (H, W, C), the renderer's part maps, follow every geometric step (view,
        affine, flips) and none of the radiometric ones; they come back as ``View.maps``.
        """
        img = sensor_nuisance(np.clip(self.chip(image=img)["image"], 0, 1), self.rng)
        jitter = float(self.rng.uniform(-1, 1)) * self.angle_jitter_deg
        v = prepare_view(np.clip(img, 0, 1).astype(np.float32), self.spec, geometry,
                         heading_deg, jitter)
        if maps is None:
            v.image = np.clip(self.view(image=v.image)["image"], 0, 1)
        else:
            out = self.view(image=v.image, mask=view_maps(maps, self.spec, v.axis_deg, v.window))
            v.image, v.maps = np.clip(out["image"], 0, 1), out["mask"]
        return random_flips(v, self.rng)


class ViewTrainTransform:
    """Augmentation for cached views (``cache: true``).

    Flips (with the geometry), small affine, radiometry. Sensor nuisances (blur, noise,
    JPEG) come from the data itself.
    """

    def __init__(self, seed: int = 0) -> None:
        self.view = view_augment(seed)
        self.rng = np.random.default_rng(seed + 2)

    def set_seed(self, seed: int) -> None:
        """Reseed the stream (each DataLoader worker, each epoch)."""
        self.view.set_random_seed(seed)
        self.rng = np.random.default_rng(seed + 2)

    def __call__(self, view: View) -> View:
        """Augment a view."""
        view = View(np.clip(self.view(image=view.image)["image"], 0, 1), view.geometry,
                    view.axis_deg, view.axis_source)
        return random_flips(view, self.rng)


class EvalTransform:
    """Chip (+ geometry) → view, no randomness."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def set_seed(self, seed: int) -> None:
        """No-op: evaluation is deterministic."""

    def __call__(self, img: np.ndarray, geometry: Geometry = None,
                 heading_deg: float | None = None, maps: np.ndarray | None = None) -> View:
        """The view of the (H, W, 3) float chip (and of its part ``maps``, when given)."""
        v = prepare_view(img, self.spec, geometry, heading_deg)
        if maps is not None:
            v.maps = view_maps(maps, self.spec, v.axis_deg, v.window)
        return v


def batch_radiometry(x: torch.Tensor, generator: torch.Generator,
                     strength: float = 1.0) -> torch.Tensor:
    """A fresh radiometric draw per view of a batch, on the device: (B, 3, H, W) → same.

    A cached item (``data.stream_cache``) keeps the one draw of the chip augmentation it was
    rendered with, so over many passes the network would see each scene's look again and
    again. This redraws a look per view and per pass: per-channel gains (a colour cast),
    saturation, contrast about the view's mean, a gamma and, a third of the time, Gaussian
    noise. Bands are scaled, never swapped (the antifouling band stays the hull's reddest part)
    and no pixel moves, so the cue geometry is exactly the renderer's.

    Args:
        x: (B, 3, H, W) float views in [0, 1].
        generator: a CPU generator (seeded by the caller, so a batch's draw is reproducible).
        strength: scales every range; 0 returns ``x`` unchanged.
    """
    import torch  # here, as albumentations is: the rest of this module runs without torch

    if strength <= 0:
        return x
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:  # (B, *shape) on x's device
        r = torch.rand((b, *shape), generator=generator)
        r = (lo + (hi - lo) * r).to(x.device, x.dtype)
        return r.view(b, *shape, *([1] * (3 - len(shape))))

    s = strength
    out = x * torch.exp(u(-0.25 * s, 0.25 * s, 3))  # per-channel gain: (B, 3, 1, 1)
    grey = out.mean(dim=1, keepdim=True)
    out = grey + (out - grey) * torch.exp(u(-0.8 * s, 0.6 * s))  # saturation
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * torch.exp(u(-0.4 * s, 0.4 * s)) + mean  # contrast
    out = out.clamp(0, 1) ** torch.exp(u(-0.5 * s, 0.5 * s))  # gamma
    noisy = (torch.rand(b, generator=generator) < 0.33).to(x.device, x.dtype).view(b, 1, 1, 1)
    sigma = u(0.0, 0.03 * s) * noisy
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return (out + sigma * noise).clamp(0, 1)
