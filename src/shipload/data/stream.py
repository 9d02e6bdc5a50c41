"""Training data that never runs out: chips rendered on the fly, item k of epoch e seeded by k.

The sampler hands out *global* indices, ``epoch * chips_per_epoch + i``; the dataset renders
chip ``index`` of the renderer stream ``seed`` and augments it with generators seeded by
(seed, index) alone. So no training chip is seen twice, nothing is stored, any worker count
gives the same items, and a run resumed from ``last.ckpt`` (at an epoch boundary) continues the
same stream. Lightning calls ``set_epoch`` on the sampler before every epoch; under DDP each
rank takes every ``world_size``-th index (set ``use_distributed_sampler: false``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from shipload.data.datasets import item
from shipload.data.transforms import EvalTransform, TrainTransform
from shipload.synth.appearance import sample_look
from shipload.synth.geometry import cue_targets
from shipload.synth.params import Scene, SynthConfig, sample_scene
from shipload.synth.render import part_maps, render
from shipload.synth.sensor import to_uint8
from shipload.view import GEOMETRY_FIELDS, InputSpec


def chip_from_scene(s: Scene, supersample: int) -> np.ndarray:
    """Render a scene as the 8-bit chip a user would read: (H, W, 3) float32 in [0, 1].

    Goes through the same uint8 display gamma (and JPEG, for the scene's JPEG chips) as
    ``shipload synth`` writes and ``read_chip`` reads, so training sees what predict sees.
    """
    return chip_and_parts(s, supersample, parts=False)[0]


def chip_and_parts(s: Scene, supersample: int, parts: bool = True
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """``chip_from_scene`` and, with ``parts``, the chip's part maps (``part_maps``).

    Returns:
        (H, W, 3) float32 chip in [0, 1] and (H, W, len(PART_GROUPS)) float32 or None.
    """
    r = render(s, supersample=supersample, layers=parts)
    maps = part_maps(r.layers) if parts else None
    img8 = to_uint8(r.rgb)
    if s.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", img8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY,
                                                         s.jpeg_quality])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if dec is not None:
            img8 = dec[..., ::-1]
    return img8.astype(np.float32) * np.float32(1 / 255), maps


RESHOOT_SALT = 0x5A17  # xor'ed into a scene's seed for its second exposure


def scene_geometry(s: Scene) -> dict[str, float]:
    """The geometry contract's fields of a rendered scene (its chip is north-up)."""
    return {f: float(getattr(s, f)) for f in GEOMETRY_FIELDS}


def framing_cut(img: np.ndarray, s: Scene, rng: np.random.Generator,
                min_scale: float = 1.1, max_offset: float = 0.1) -> np.ndarray:
    """Another cut of the same ship from its rendered chip: a tighter, shifted square.

    The side is drawn between ``min_scale`` x the ship's length and the chip's own side, and the
    ship's centre sits up to ``max_offset`` of that side off the cut's centre (clipped to the
    chip). Pixels, noise and clutter are the chip's own: only the framing differs, which is
    what the framing-consistency loss needs.

    Args:
        img: (H, H, 3) chip of scene ``s``.
        s: the scene (ship length, GSD and where its centre lies).
        rng: the item's generator.
        min_scale: the tightest cut, as a multiple of the ship's length.
        max_offset: the largest shift of the ship's centre, as a share of the cut's side.

    Returns:
        (b, b, 3) view of ``img`` (a copy).
    """
    h = img.shape[0]
    lo = min(h, int(round(min_scale * s.length_m / s.gsd_m)))
    b = int(rng.integers(lo, h + 1))
    cx = h / 2 + s.centre_offset_px[0] + rng.uniform(-max_offset, max_offset) * b
    cy = h / 2 + s.centre_offset_px[1] + rng.uniform(-max_offset, max_offset) * b
    x0 = int(np.clip(round(cx - b / 2), 0, h - b))
    y0 = int(np.clip(round(cy - b / 2), 0, h - b))
    return img[y0 : y0 + b, x0 : x0 + b].copy()


def redraw_look(s: Scene, cfg: SynthConfig, index: int) -> Scene:
    """Scene ``s`` with another look drawn from ``cfg``'s families (geometry untouched).

    The look's generator is seeded by (scene seed, ``index``), apart from the scene's own look.
    """
    rng = np.random.default_rng([s.seed, index, 0x2100C])
    return dataclasses.replace(s, look=sample_look(rng, cfg.appearance.families()))


def reshoot(s: Scene) -> Scene:
    """Scene ``s`` exposed again: ship, look and cut kept, another seed for the rest.

    The renderer's own random draws (sensor noise, water and paint textures, the neighbour's
    place) come from that seed, as a second pass over a moored ship would differ.
    """
    return dataclasses.replace(s, seed=s.seed ^ RESHOOT_SALT)


def drop_geometry(geo: dict[str, float], rng: np.random.Generator, p_all: float,
                  p_each: float) -> dict[str, float]:
    """Geometry dropout: all fields gone with ``p_all``, else each with ``p_each``."""
    if rng.random() < p_all:
        return {}
    return {k: v for k, v in geo.items() if rng.random() >= p_each}


class RenderedStream(Dataset[dict[str, Any]]):
    """Chip ``index`` of renderer stream ``seed``, rendered, augmented and viewed on demand.

    Args:
        cfg: renderer configuration (appearance families included).
        seed: the stream's seed.
        spec: the model's input view.
        augment: augment (training); off gives the deterministic evaluation view.
        geometry_dropout: probability that a chip has no geometry at all.
        field_dropout: probability that each field is missing otherwise.
        heading_prob: share of chips whose heading is given (as AIS would), with noise.
        heading_noise_deg: std of that heading's error.
        framing_pairs: also return a second cut of the same ship (``framing_cut``) as
            ``image2``/``geometry2``, augmented independently (framing-consistency training).
        parts: also return the renderer's part maps in the view, ``parts`` (C, H, W): the
            targets of the dense part-segmentation task.
        look_pairs: with ``framing_pairs``, the second cut is of the same scene (same ship,
            load, sun, sensor, clutter) rendered again with another look drawn from the
            configuration's families (``redraw_look``): the consistency loss then asks for the
            same call whatever the paint, water, light, sensor tone and drawing style.
        reshoot_pairs: with ``look_pairs``, the other look is also another exposure: the
            renderer's own random draws (noise, textures, the neighbour's place) are taken
            anew (``reshoot``). Without it the two renders of a pair draw from the same seed
            and often share much of their noise, so the consistency loss seldom asks
            for one call over two independent noise fields.

    Raises:
        ValueError: ``look_pairs`` without ``framing_pairs`` or without appearance
            randomisation in ``cfg``; ``reshoot_pairs`` without ``look_pairs``.
    """

    def __init__(self, cfg: SynthConfig, seed: int, spec: InputSpec, augment: bool = True,
                 geometry_dropout: float = 0.25, field_dropout: float = 0.2,
                 heading_prob: float = 0.3, heading_noise_deg: float = 3.0,
                 framing_pairs: bool = False, parts: bool = False,
                 look_pairs: bool = False, reshoot_pairs: bool = False) -> None:
        if reshoot_pairs and not look_pairs:
            raise ValueError("data.reshoot_pairs needs data.look_pairs: true (the new exposure "
                             "is the other look's render)")
        if look_pairs and not framing_pairs:
            raise ValueError("data.look_pairs needs data.framing_pairs: true (the other look "
                             "is the second cut of each pair)")
        if look_pairs and not cfg.appearance.randomize:
            raise ValueError("data.look_pairs needs appearance.randomize: true in the "
                             "renderer's config (synth_config): there is no other look to draw")
        self.look_pairs, self.reshoot_pairs = look_pairs, reshoot_pairs
        self.cfg, self.seed, self.spec, self.augment = cfg, seed, spec, augment
        self.geometry_dropout, self.field_dropout = geometry_dropout, field_dropout
        self.heading_prob, self.heading_noise_deg = heading_prob, heading_noise_deg
        self.framing_pairs, self.parts = framing_pairs, parts
        self.transform = TrainTransform(spec) if augment else EvalTransform(spec)

    def __len__(self) -> int:  # the stream is unbounded; the sampler sets an epoch's length
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = sample_scene(self.cfg, self.seed, index)
        img, maps = chip_and_parts(s, self.cfg.sensor.supersample, self.parts)
        rng = np.random.default_rng([self.seed, index, 0xDA7A])
        geo = drop_geometry(scene_geometry(s), rng, self.geometry_dropout, self.field_dropout)
        heading = None
        if rng.random() < self.heading_prob:
            heading = s.heading_deg + float(rng.normal(0, self.heading_noise_deg))
        self.transform.set_seed(int(rng.integers(2**31)))
        view = self.transform(img, geo, heading, maps)
        out = item(view, 1 if s.label == "laden" else 0, s.load_fraction, s.freeboard_m,
                   s.gsd_m, index)
        out["cues"] = torch.from_numpy(cue_targets(s))  # the cue readout's truth
        if view.maps is not None:
            out["parts"] = torch.from_numpy(np.ascontiguousarray(view.maps.transpose(2, 0, 1)))
        if self.framing_pairs:
            src = img
            if self.look_pairs:
                other_scene = redraw_look(s, self.cfg, index)
                if self.reshoot_pairs:
                    other_scene = reshoot(other_scene)
                src = chip_from_scene(other_scene, self.cfg.sensor.supersample)
            cut = framing_cut(src, s, rng)
            self.transform.set_seed(int(rng.integers(2**31)))
            # Same geometry (north-up cut of the same north-up chip) and heading.
            other = item(self.transform(cut, geo, heading), 0, 0.0, 0.0, 0.0, index)
            out["image2"], out["geometry2"] = other["image"], other["geometry"]
        return out


class EpochSampler(Sampler[int]):
    """Global indices ``offset + epoch * n + i`` for i < n, this rank's share only.

    Args:
        n: chips per epoch (over all ranks).
        offset: first index (keeps validation streams apart from training).
        fixed: the same indices every epoch (validation).
    """

    def __init__(self, n: int, offset: int = 0, fixed: bool = False) -> None:
        self.n, self.offset, self.fixed, self.epoch = n, offset, fixed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch."""
        self.epoch = epoch

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        rank, world = self._rank()
        return math.ceil((self.n - rank) / world)

    def __iter__(self) -> Iterator[int]:
        rank, world = self._rank()
        base = self.offset + (0 if self.fixed else self.epoch * self.n)
        return iter(range(base + rank, base + self.n, world))
