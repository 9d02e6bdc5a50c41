"""LightningDataModule over a manifest or ImageFolder; renders its own data when asked to."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from shipload.data.datasets import (
    CachedViewDataset,
    ChipDataset,
    Record,
    load_records,
    stratified_split,
    write_splits,
)
from shipload.data.transforms import (
    EvalTransform,
    TrainTransform,
    ViewTrainTransform,
)
from shipload.runtime import usable_cores
from shipload.view import (
    DEFAULT_ACROSS_SCALE,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    GEO_DIM,
    InputSpec,
    Policy,
    prepare_view,
)


def _view_u8(args: tuple[Record, InputSpec]) -> tuple[np.ndarray, np.ndarray]:
    from shipload.data.io import read_chip

    r, spec = args
    v = prepare_view(read_chip(r.path), spec, r.geometry, r.heading_deg)
    return np.round(v.image * 255).astype(np.uint8), v.geometry


def prepare_views(records: list[Record], spec: InputSpec,
                  workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Prepare every record's view once, in parallel: (N, H, W, 3) uint8 and (N, G) float32."""
    jobs = [(r, spec) for r in records]
    out = np.empty((len(records), spec.height, spec.width, 3), np.uint8)
    geo = np.zeros((len(records), GEO_DIM), np.float32)
    if workers <= 1:
        results: Any = map(_view_u8, jobs)
        for i, (v, g) in enumerate(results):
            out[i], geo[i] = v, g
        return out, geo
    with mp.get_context("spawn").Pool(workers) as pool:  # fork can deadlock OpenCV
        for i, (v, g) in enumerate(pool.imap(_view_u8, jobs, chunksize=64)):
            out[i], geo[i] = v, g
    return out, geo


def worker_init_fn(worker_id: int) -> None:
    """Reseed the dataset's augmentation in each worker.

    ``torch.initial_seed()`` in a worker is the loader's base seed (drawn afresh from the
    seeded main process every epoch) plus the worker id, so streams differ across workers and
    epochs yet repeat for a given global seed. Without this every worker would draw the same
    albumentations stream (a known pitfall of albumentations 2.0.8).
    """
    info = get_worker_info()
    tf = getattr(info.dataset, "transform", None) if info is not None else None
    if tf is not None and hasattr(tf, "set_seed"):
        tf.set_seed(torch.initial_seed() % 2**31)


def _single_threaded(worker_id: int) -> None:
    """One OpenCV thread per rendering worker: its own pool would oversubscribe the cores."""
    import cv2

    cv2.setNumThreads(1)


class ShiploadDataModule(L.LightningDataModule):
    """Chips for training, validation and test.

    Args:
        data: a manifest CSV, a folder with ``labels.csv`` (renderer output) or an ImageFolder.
        batch_size: chips per batch.
        num_workers: DataLoader processes.
        val_fraction: share held out for validation when the data has no split.
        test_fraction: share held out for test when the data has no split.
        seed: seed of the split and of the augmentation streams.
        synth_n: when > 0 and ``data`` does not exist, render this many chips there first.
        synth_seed: renderer seed for ``synth_n``.
        synth_config: renderer YAML for ``synth_n`` (default: built-in).
        input_height: model input rows (linked from the model).
        input_width: model input columns (linked from the model).
        resize_policy: model input policy (linked from the model).
        across_scale: model input across-hull oversampling (linked from the model).
        frame_scale: model input window around the ship, in hull lengths (linked from the
            model).
        view_version: the view's estimate of the hull's axis and extent (linked from the
            model).
        augment: augment the training chips.
        cache: prepare every view once and keep it in memory as uint8 (fast CPU training);
            augmentation then acts on the view (flips, small affine, radiometry).
        stream: render training chips on the fly (``shipload.data.stream``) instead of
            reading ``data``: every chip fresh, none stored; ``synth_config`` sets the renderer.
        chips_per_epoch: with ``stream``, training chips per epoch (over all ranks).
        val_chips: with ``stream``, validation chips (a fixed stream of another seed).
        geometry_dropout: with ``stream``, share of chips given no geometry at all.
        field_dropout: with ``stream``, share of each geometry field dropped otherwise.
        heading_prob: with ``stream``, share of chips whose heading is given (as from AIS).
        framing_pairs: with ``stream``, each training chip also comes cut a second time
            (tighter and shifted) for the model's framing-consistency loss.
        parts: with ``stream``, chips also carry the renderer's part maps (shadow, hull side,
            antifouling band, deck, superstructure) in the view, for the model's auxiliary
            part-segmentation loss (``model.parts_loss_weight``).
        look_pairs: with ``framing_pairs``, the second cut is the same scene rendered with
            another look (``shipload.data.stream.redraw_look``), so the consistency loss also
            teaches that a call does not depend on the look.
        reshoot_pairs: with ``look_pairs``, that other look is also a new exposure (noise,
            textures and neighbour drawn anew; ``shipload.data.stream.reshoot``), so the
            consistency loss also asks for one call over two independent noise fields.
        stream_cache: with ``stream``, render only the first this many training items, once,
            into ``cache_dir`` and replay them every epoch in a new order with fresh flips
            (``shipload.data.cache``): many passes over a fixed set, for a machine whose
            renderer cannot keep up with its GPU. 0 renders every item fresh.
        cache_dir: where ``stream_cache`` keeps its rendered items (a folder per
            configuration; an interrupted fill is never reused, a complete one is).
        batch_radiometry: strength of a radiometric redraw of every training view on the
            device (``shipload.data.transforms.batch_radiometry``: colour cast, saturation,
            contrast, gamma, noise; both cuts of a pair drawn apart), so that the cached
            stream's items do not keep one look over their many passes. 0: off.
    """

    def __init__(
        self,
        data: str = "data/train",
        batch_size: int = 64,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        synth_n: int = 0,
        synth_seed: int = 1,
        synth_config: str | None = None,
        input_height: int = DEFAULT_HEIGHT,
        input_width: int = DEFAULT_WIDTH,
        resize_policy: Policy = "hull_aligned",
        across_scale: float = DEFAULT_ACROSS_SCALE,
        frame_scale: float = 0.0,
        view_version: int = 1,
        augment: bool = True,
        cache: bool = False,
        stream: bool = False,
        chips_per_epoch: int = 20000,
        val_chips: int = 1000,
        geometry_dropout: float = 0.25,
        field_dropout: float = 0.2,
        heading_prob: float = 0.3,
        framing_pairs: bool = False,
        parts: bool = False,
        look_pairs: bool = False,
        reshoot_pairs: bool = False,
        stream_cache: int = 0,
        cache_dir: str = "runs/cache",
        batch_radiometry: float = 0.0,
    ) -> None:
        super().__init__()
        if batch_radiometry < 0:
            raise ValueError(f"data.batch_radiometry is a strength >= 0 (got {batch_radiometry}); "
                             "0 turns it off, 1 is the documented ranges")
        if stream_cache < 0 or (stream_cache > 0 and not stream):
            raise ValueError("data.stream_cache needs data.stream: true and a count >= 1 "
                             f"(got {stream_cache}); 0 renders every training item fresh")
        self.save_hyperparameters()
        self.spec = InputSpec(input_height, input_width, resize_policy, across_scale, frame_scale,
                              view_version)
        self.splits: dict[str, list[Record]] = {}
        self.views: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def hp(self) -> Any:
        """The saved constructor arguments, attribute-style (typed loosely for mypy)."""
        return self.hparams

    def prepare_data(self) -> None:
        """Render the data set when configured to and absent (runs once, on rank 0)."""
        hp = self.hp
        if hp.stream and hp.stream_cache > 0:
            self.fill_stream_cache()
        if hp.synth_n > 0 and not hp.stream and not Path(hp.data).exists():
            from shipload.synth import write_dataset

            cfg = self.synth_cfg()
            write_dataset(cfg, hp.data, hp.synth_n, hp.synth_seed, workers=max(1, hp.num_workers))

    def fill_stream_cache(self) -> Path:
        """Render the training cache (``stream_cache`` items) unless complete; its folder.

        ``prepare_data`` calls it; ``scripts/fill_cache.py`` calls it to render a fit's cache
        ahead of the fit.

        Raises:
            ValueError: no cache is configured (``stream`` off or ``stream_cache`` 0).
        """
        hp = self.hp
        if not (hp.stream and hp.stream_cache > 0):
            raise ValueError("no stream cache to fill: give --data.stream_cache N (with "
                             "data.stream: true, as configs/train.yaml sets it)")
        path: Path = self._cached_train().fill(max(1, hp.num_workers))
        return path

    def synth_cfg(self) -> Any:
        """The renderer configuration (``synth_config`` or the built-in default)."""
        from shipload.config import load_yaml
        from shipload.synth import SynthConfig

        hp = self.hp
        return load_yaml(SynthConfig, hp.synth_config) if hp.synth_config else SynthConfig()

    def setup(self, stage: str | None = None) -> None:
        """Read the records and split them (seeded, stratified) once."""
        if self.splits or self.hp.stream:
            return
        hp = self.hp
        self.splits = stratified_split(load_records(hp.data), hp.seed, hp.val_fraction,
                                       hp.test_fraction)
        trainer = self.trainer
        # Rank 0 only, and without trainer.log_dir: that property is a collective broadcast,
        # which would deadlock DDP when called on one rank.
        if trainer is not None and trainer.is_global_zero and trainer.loggers:
            log_dir = trainer.loggers[0].log_dir
            if log_dir:
                Path(log_dir).mkdir(parents=True, exist_ok=True)
                write_splits(self.splits, Path(log_dir) / "splits.csv")

    def _train_stream_args(self) -> dict[str, Any]:
        from shipload.data.cache import stream_args

        hp = self.hp
        return stream_args(self.synth_cfg(), hp.synth_seed, self.spec, augment=hp.augment,
                           geometry_dropout=hp.geometry_dropout, field_dropout=hp.field_dropout,
                           heading_prob=hp.heading_prob, framing_pairs=hp.framing_pairs,
                           parts=hp.parts, look_pairs=hp.look_pairs,
                           reshoot_pairs=hp.reshoot_pairs)

    def _cached_train(self) -> Any:
        from shipload.data.cache import CachedStream

        return CachedStream(self._train_stream_args(), self.hp.stream_cache, self.hp.cache_dir)

    def _stream_loader(self, split: str, train: bool) -> DataLoader[dict[str, Any]]:
        from shipload.data.stream import EpochSampler, RenderedStream

        hp = self.hp
        trainer = self.trainer
        if (trainer is not None and trainer.world_size > 1
                and trainer._accelerator_connector.use_distributed_sampler):
            # Lightning would wrap the epoch sampler in a DistributedSampler, which neither
            # passes the epoch on (the same chips every epoch) nor keeps the ranks' shares.
            raise ValueError("training on the rendered stream with several processes needs "
                             "trainer.use_distributed_sampler: false (configs/gpu.yaml sets it); "
                             "each rank then takes every world_size-th chip of the stream")
        cfg = self.synth_cfg()
        # Training and validation (and test) are disjoint streams: other seeds.
        seed = hp.synth_seed + {"train": 0, "val": 1_000_003, "test": 2_000_003}[split]
        ds: Any
        if train and hp.stream_cache > 0:
            ds = self._cached_train()
            ds.fill(max(1, hp.num_workers))  # found complete when prepare_data filled it
            sampler = EpochSampler(hp.chips_per_epoch)
        elif train:
            ds = RenderedStream(**self._train_stream_args())
            sampler = EpochSampler(hp.chips_per_epoch)
        else:  # half the chips with their whole geometry, half with none
            ds = RenderedStream(cfg, seed, self.spec, False, 0.5, 0.0, 0.0, parts=hp.parts)
            sampler = EpochSampler(hp.val_chips, fixed=True)
        return DataLoader(ds, batch_size=hp.batch_size, sampler=sampler, drop_last=train,
                          num_workers=hp.num_workers, worker_init_fn=_single_threaded,
                          pin_memory=torch.cuda.is_available(),
                          persistent_workers=hp.num_workers > 0 and train,
                          prefetch_factor=4 if hp.num_workers > 0 else None)

    def _loader(self, split: str, train: bool) -> DataLoader[dict[str, Any]]:
        hp = self.hp
        if hp.stream:
            return self._stream_loader(split, train)
        recs = self.splits[split]
        ds: Any
        if hp.cache:
            if split not in self.views:
                self.views[split] = prepare_views(recs, self.spec, usable_cores())
            vt = ViewTrainTransform(hp.seed) if (train and hp.augment) else None
            ds = CachedViewDataset(recs, *self.views[split], vt)
        else:
            aug = train and hp.augment
            tf = TrainTransform(self.spec, seed=hp.seed) if aug else EvalTransform(self.spec)
            ds = ChipDataset(recs, tf)
        return DataLoader(
            ds,
            batch_size=hp.batch_size,
            shuffle=train,
            drop_last=train and len(recs) > hp.batch_size,
            num_workers=hp.num_workers,
            worker_init_fn=worker_init_fn,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 views and part maps become floats in [0, 1]; training views get redrawn.

        uint8 is the cached stream's: on the device, the loader's queues and the copy move a
        quarter of the bytes. The redraw is ``batch_radiometry``'s, seeded by the batch's item
        indices, which differ on every pass over a cache, so a resumed run draws what the
        first would have.
        """
        if not isinstance(batch, dict):
            return batch
        for k in ("image", "image2", "parts"):
            v = batch.get(k)
            if isinstance(v, torch.Tensor) and v.dtype == torch.uint8:
                batch[k] = v.float().div_(255)
        strength = float(self.hp.batch_radiometry)
        if strength > 0 and self.trainer is not None and self.trainer.training:
            from shipload.data.transforms import batch_radiometry

            seed = int(batch["index"].long().sum()) * 1_000_003 + len(batch["index"])
            gen = torch.Generator().manual_seed(seed % 2**63)
            for k in ("image", "image2"):
                if isinstance(batch.get(k), torch.Tensor):
                    batch[k] = batch_radiometry(batch[k], gen, strength)
        return batch

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Augmented, shuffled training chips."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Validation chips, prepared without augmentation."""
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Test chips, prepared without augmentation."""
        return self._loader("test", False)
