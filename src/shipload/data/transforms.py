"""The model's input view (one function for training and inference) and augmentation.

``prepare_chip`` turns a float RGB chip of any size into the model input. Its default policy,
``hull_aligned``, rotates the chip so that the hull lies horizontal and crops a band around
it: at the same pixel budget the hull spans ~2x more pixels than in a square resize, and the
few-pixel freeboard cue (shadow, hull side, antifouling band across the hull) survives.
The hull axis comes from the gradient structure tensor in a centred window: the long straight
hull edges, its shadow, a quay and a wake all run along it. Which way the bow points is left
to the model (flips in training), so the estimate needs to be good only modulo 180 degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from shipload.data.io import border_colour, resize_chip

if TYPE_CHECKING:
    import albumentations as A

Policy = Literal["hull_aligned", "letterbox", "stretch"]


@dataclass(frozen=True)
class InputSpec:
    """Model input geometry, recorded in checkpoints and ONNX metadata.

    Attributes:
        height: input rows.
        width: input columns (the chip side maps to this many pixels).
        policy: ``hull_aligned`` (rotate, crop a band around the hull), ``letterbox`` or
            ``stretch`` (plain resizes to ``height`` x ``width``).
        across_scale: for ``hull_aligned``, how many times finer the view samples across the
            hull than along it. The cue (shadow, hull side, antifouling band) lies across the
            hull, so 2 doubles its pixels at the same pixel budget.
    """

    height: int = 80
    width: int = 160
    policy: Policy = "hull_aligned"
    across_scale: float = 2.0

    def __post_init__(self) -> None:
        if not (16 <= self.height <= 1024 and 16 <= self.width <= 1024):
            raise ValueError("input height and width must lie in 16..1024")
        if self.policy not in ("hull_aligned", "letterbox", "stretch"):
            raise ValueError(f"unknown resize policy {self.policy!r}")
        if not 1.0 <= self.across_scale <= 4.0:
            raise ValueError("across_scale must lie in 1..4")

    @classmethod
    def from_mapping(cls, d: dict[str, Any]) -> InputSpec:
        """From checkpoint hyper-parameters or ONNX metadata (``input_height`` ... keys)."""
        return cls(int(d.get("input_height", 80)), int(d.get("input_width", 160)),
                   d.get("resize_policy", "hull_aligned"), float(d.get("across_scale", 2.0)))


def hull_axis_deg(img: np.ndarray) -> float:
    """Estimate the hull axis, in degrees from +x toward +y (image coordinates), mod 180.

    Args:
        img: (S, S, 3) float chip with the ship near the centre.

    Returns:
        Angle in (-90, 90].
    """
    s = img.shape[0]
    g = img.mean(axis=2, dtype=np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 2.0 * s / 160)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1)
    c = (s - 1) / 2
    r = np.arange(s, dtype=np.float32) - c
    win1 = np.exp(-(r**2) / (2 * (0.2 * s) ** 2))
    win = win1[:, None] * win1[None, :]  # centred Gaussian window: the ship, not neighbours
    mag = np.sqrt(gx * gx + gy * gy) + 1e-12
    w = win / mag  # weight by edge magnitude: unit-vector tensor scaled by |g|
    jxx = float((w * gx * gx).sum())
    jyy = float((w * gy * gy).sum())
    jxy = float((w * gx * gy).sum())
    grad_dir = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))
    axis = grad_dir + 90.0  # the hull axis runs across the dominant gradient
    return (axis + 90.0) % 180.0 - 90.0


def _square(img: np.ndarray, fill: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h == w:
        return img
    s = max(h, w)
    out = np.empty((s, s, 3), np.float32)
    out[:] = fill
    y0, x0 = (s - h) // 2, (s - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = img
    return out


def prepare_chip(img: np.ndarray, spec: InputSpec, angle_jitter_deg: float = 0.0) -> np.ndarray:
    """The model's view of a chip; used unchanged by training, evaluation and ``predict``.

    Args:
        img: (H, W, 3) float32 RGB in [0, 1] from ``read_chip``.
        spec: input geometry and policy.
        angle_jitter_deg: added to the estimated hull axis (training augmentation only).

    Returns:
        (spec.height, spec.width, 3) float32 in [0, 1].
    """
    if spec.policy != "hull_aligned":
        if spec.height == spec.width:
            return resize_chip(img, spec.width, spec.policy)
        return np.ascontiguousarray(
            cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_AREA))
    fill = border_colour(img)
    sq = _square(img, fill)
    # Work at across_scale x the output width, so that the finer sampling across the hull
    # comes from real pixels; then shrink along the hull only, by area averaging.
    side = int(round(spec.width * spec.across_scale))
    interp = cv2.INTER_AREA if sq.shape[0] > side else cv2.INTER_LINEAR
    big = cv2.resize(sq, (side, side), interpolation=interp)
    est = big if side <= 192 else cv2.resize(big, (160, 160), interpolation=cv2.INTER_AREA)
    angle = hull_axis_deg(est) + angle_jitter_deg
    c = (side - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)  # rotates the hull axis onto +x
    m[1, 2] -= (side - spec.height) / 2  # keep the central band of `height` rows
    band = cv2.warpAffine(big, m, (side, spec.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill))
    if side != spec.width:
        band = cv2.resize(band, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(band, dtype=np.float32)


def prepare_view_u8(args: tuple[str, InputSpec]) -> np.ndarray:
    """Read a chip file and return its view as uint8 (for caching; picklable for workers)."""
    from shipload.data.io import read_chip

    view = prepare_chip(read_chip(args[0]), args[1])
    return np.round(view * 255).astype(np.uint8)


def chip_augment(seed: int | None = None) -> A.Compose:
    """Augmentation of the raw chip, before ``prepare_chip`` (sensor and radiometry nuisances).

    D4 symmetries (any heading, either side toward the sensor), mild brightness, contrast,
    gamma and colour jitter (hue at most +-2 %, so red antifouling stays red), blur, noise,
    JPEG and downscaling. Magnitudes are set explicitly: several library defaults are extreme.
    """
    import albumentations as A  # imported here: it pulls in torch, which predict never needs

    return A.Compose(
        [
            A.D4(p=1.0),
            A.RandomBrightnessContrast(brightness_limit=(-0.15, 0.15),
                                       contrast_limit=(-0.15, 0.15), p=0.6),
            A.RandomGamma(gamma_limit=(85, 115), p=0.3),
            A.ColorJitter(brightness=(0.9, 1.1), contrast=(0.9, 1.1), saturation=(0.8, 1.2),
                          hue=(-0.02, 0.02), p=0.4),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.0), p=0.25),
            A.GaussNoise(std_range=(0.005, 0.03), p=0.3),
            A.Downscale(scale_range=(0.6, 0.9), p=0.15),
            A.ImageCompression(quality_range=(60, 95), p=0.25),
        ],
        strict=True,
        seed=seed,
    )


def view_augment(seed: int | None = None) -> A.Compose:
    """Augmentation of the prepared view: flips (bow left/right, side up/down), small affine."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(scale=(0.92, 1.08), translate_percent=(-0.03, 0.03), rotate=(-3, 3),
                     border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        ],
        strict=True,
        seed=seed,
    )


class TrainTransform:
    """Chip → augmented model view, with a reseedable random stream (one per worker)."""

    def __init__(self, spec: InputSpec, seed: int = 0, angle_jitter_deg: float = 6.0) -> None:
        self.spec = spec
        self.angle_jitter_deg = angle_jitter_deg
        self.chip = chip_augment(seed)
        self.view = view_augment(seed + 1)
        self.rng = np.random.default_rng(seed + 2)

    def set_seed(self, seed: int) -> None:
        """Reseed every random stream (called in each DataLoader worker, each epoch)."""
        self.chip.set_random_seed(seed)
        self.view.set_random_seed(seed + 1)
        self.rng = np.random.default_rng(seed + 2)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Augment the (H, W, 3) float chip and return the (h, w, 3) float view."""
        img = self.chip(image=img)["image"]
        jitter = float(self.rng.uniform(-1, 1)) * self.angle_jitter_deg
        view = prepare_chip(np.clip(img, 0, 1).astype(np.float32), self.spec, jitter)
        return np.clip(self.view(image=view)["image"], 0, 1)


class ViewTrainTransform:
    """Augmentation for cached views (``cache: true``): flips, small affine, radiometry.

    The hull-aligned view has already absorbed the chip's rotation, so the D4 group reduces to
    the flips kept here; sensor nuisances (blur, noise, JPEG) come from the renderer itself.
    """

    def __init__(self, seed: int = 0) -> None:
        import albumentations as A

        self.view = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Affine(scale=(0.92, 1.08), translate_percent=(-0.03, 0.03), rotate=(-4, 4),
                         border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                A.RandomBrightnessContrast(brightness_limit=(-0.1, 0.1),
                                           contrast_limit=(-0.1, 0.1), p=0.5),
                A.GaussNoise(std_range=(0.005, 0.02), p=0.2),
            ],
            strict=True,
            seed=seed,
        )

    def set_seed(self, seed: int) -> None:
        """Reseed the stream (each DataLoader worker, each epoch)."""
        self.view.set_random_seed(seed)

    def __call__(self, view: np.ndarray) -> np.ndarray:
        """Augment a (h, w, 3) float view."""
        return np.clip(self.view(image=view)["image"], 0, 1)


class EvalTransform:
    """Chip → model view, no randomness."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def set_seed(self, seed: int) -> None:
        """No-op: evaluation is deterministic."""

    def __call__(self, img: np.ndarray) -> np.ndarray:
        """Return the (h, w, 3) float view of the (H, W, 3) float chip."""
        return prepare_chip(img, self.spec)


def describe(spec: InputSpec) -> dict[str, Any]:
    """A JSON-able description of the input policy for checkpoints and ONNX metadata."""
    return {"height": spec.height, "width": spec.width, "policy": spec.policy,
            "across_scale": spec.across_scale,
            "reader": "shipload.data.io.read_chip v1 (8-bit /255; >8-bit p0.5-p99.5 stretch, "
                      "gamma 1/1.6; RGB = first three bands)"}
