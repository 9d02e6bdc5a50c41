"""A fixed set of rendered training items, rendered once to disk and replayed every epoch.

On a GPU machine the renderer, not the network, sets the pace of the rendered stream: a
16-core node renders about 235 training pairs a second (``models/eval/stage14_gpu_candidate.txt``)
while an H200 trains the network on thousands, so a 15-minute lease gave 256 optimiser steps.
Rendering a fixed set of ``n`` items once and training many passes over it buys many more steps
in the same time, at the price of fewer distinct scenes.

Item ``index`` of the cached stream is cached item ``perm_p[index % n]`` for pass
``p = index // n`` (a seeded permutation per pass), flipped afresh along and/or across the hull
(the image, its part maps and its geometry together; each cut of a pair on its own); views and
part maps come as uint8, which the data module turns into floats on the device. What an
item froze when it was rendered: the chip augmentation, the sensor artefacts, the angle jitter,
the framing cut, the other look and the geometry dropout.

The cache is a folder of ``.npy`` files named by a digest of everything that shapes an item
(renderer configuration, seed, view, dropout, pairs, parts, ``n``). It is written under a
temporary name and renamed when complete, so an interrupted fill leaves nothing a later run
would trust, and a run resumed after a kill (same digest) reuses it instead of rendering again.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from shipload.data.stream import RenderedStream
from shipload.data.transforms import random_flips
from shipload.synth.params import SynthConfig
from shipload.view import InputSpec, View

# 2: items carry ``cues`` (the cue readout's truth); a cache of version 1 lacks them.
CACHE_VERSION = 2
# Stored as uint8 (x 255): the views and part maps are in [0, 1]; everything else as it comes.
_U8 = ("image", "image2", "parts")


def stream_args(cfg: SynthConfig, seed: int, spec: InputSpec, **kwargs: Any) -> dict[str, Any]:
    """The ``RenderedStream`` constructor arguments, as ``CachedStream`` keeps them."""
    return {"cfg": cfg, "seed": seed, "spec": spec, **kwargs}


def cache_key(args: dict[str, Any], n: int) -> str:
    """A digest (hex) of everything that shapes the cached items.

    Dataclass ``repr``s are deterministic (field order, float repr), so the same configuration
    gives the same digest on any machine.
    """
    text = json.dumps({"version": CACHE_VERSION, "n": n,
                       "args": {k: repr(v) for k, v in sorted(args.items())}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


_WORKER_STREAM: RenderedStream | None = None


def _init_worker(args: dict[str, Any]) -> None:
    import cv2

    global _WORKER_STREAM
    cv2.setNumThreads(1)  # one OpenCV thread per rendering process: the pool fills the cores
    torch.set_num_threads(1)
    _WORKER_STREAM = RenderedStream(**args)


def _render(i: int) -> dict[str, np.ndarray]:
    assert _WORKER_STREAM is not None
    return _as_arrays(_WORKER_STREAM[i])


def _as_arrays(it: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in it.items():
        a = v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        out[k] = np.round(a * 255).astype(np.uint8) if k in _U8 else a
    return out


def fill_cache(args: dict[str, Any], n: int, root: str | Path, workers: int = 1,
               progress: bool = True) -> Path:
    """Render items 0..n-1 of the stream ``RenderedStream(**args)`` into a cache folder.

    Args:
        args: the stream's constructor arguments (``stream_args``).
        n: items to render.
        root: folder that holds caches; each is a subfolder named by ``cache_key``.
        workers: rendering processes (spawned, at least one: forking a process that holds
            OpenCV's pool can deadlock).
        progress: print a line every tenth of the way.

    Returns:
        The complete cache folder (rendered now, or found complete from an earlier run).

    Raises:
        ValueError: ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"data.stream_cache must be 0 (no cache) or at least 1, not {n}")
    root = Path(root)
    final = root / f"stream-{cache_key(args, n)[:20]}"
    if (final / "done").exists():
        return final
    tmp = root / f".{final.name}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # Always in spawned processes, even one: rendering here would start OpenCV's thread pool in
    # this process, and the DataLoader workers it forks next would deadlock in it.
    step = max(1, n // 10)
    with mp.get_context("spawn").Pool(max(1, workers), _init_worker, (args,)) as pool:
        results = pool.imap(_render, range(n), chunksize=8)
        first = next(results)
        arrays = {k: np.lib.format.open_memmap(tmp / f"{k}.npy", "w+", v.dtype, (n, *v.shape))
                  for k, v in first.items()}
        for i, it in enumerate(itertools.chain([first], results)):
            for k, a in arrays.items():
                a[i] = it[k]
            if progress and (i + 1) % step == 0:
                print(f"stream cache: {i + 1}/{n} items rendered", flush=True)
    for a in arrays.values():
        a.flush()
    (tmp / "meta.json").write_text(json.dumps(
        {"n": n, "version": CACHE_VERSION, "keys": sorted(arrays),
         "args": {k: repr(v) for k, v in sorted(args.items())}}, indent=1))
    (tmp / "done").write_text("complete\n")
    try:
        os.replace(tmp, final)
    except OSError:  # another process completed the same cache first: keep that one
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "done").exists():
            raise
    return final


class CachedStream(Dataset[dict[str, Any]]):
    """The first ``n`` items of a rendered stream, replayed in a new order each pass, flipped.

    Args:
        args: the ``RenderedStream`` constructor arguments (``stream_args``); ``augment``
            should be on (a cached item keeps its one draw of the chip augmentation).
        n: items in the cache.
        root: the folder of caches (``fill_cache``); ``fill`` renders into it.
    """

    def __init__(self, args: dict[str, Any], n: int, root: str | Path) -> None:
        self.args, self.n, self.root = args, n, Path(root)
        self.seed = int(args["seed"])
        self.path: Path | None = None
        self._arrays: dict[str, np.ndarray] | None = None

    def fill(self, workers: int = 1) -> Path:
        """Render the cache if it is not complete yet (``fill_cache``); returns its folder."""
        self.path = fill_cache(self.args, self.n, self.root, workers)
        self._arrays = None
        return self.path

    def __len__(self) -> int:  # endless, as the stream: the sampler sets an epoch's length
        return 2**62

    def arrays(self) -> dict[str, np.ndarray]:
        """The cache's arrays, memory-mapped read-only (each process opens its own)."""
        if self._arrays is None:
            if self.path is None or not (self.path / "done").exists():
                raise RuntimeError("the stream cache is not filled: call fill() first")
            keys = json.loads((self.path / "meta.json").read_text())["keys"]
            self._arrays = {k: np.load(self.path / f"{k}.npy", mmap_mode="r") for k in keys}
        return self._arrays

    @functools.lru_cache(maxsize=2)  # noqa: B019 (one dataset per loader; two passes at most)
    def _order(self, p: int) -> np.ndarray:
        return np.random.default_rng([self.seed, p, 0xCAC4E]).permutation(self.n)

    def __getitem__(self, index: int) -> dict[str, Any]:
        a = self.arrays()
        p, k = divmod(int(index), self.n)
        j = int(self._order(p)[k])
        rng = np.random.default_rng([self.seed, int(index), 0xF11B])
        out: dict[str, Any] = {}
        for cut in ("", "2"):  # each cut of a pair flipped on its own
            if f"image{cut}" not in a:
                continue
            parts = a["parts"][j] if not cut and "parts" in a else None  # (P, H, W) uint8
            # The stream's own flips (image, part maps and geometry together), on (H, W, C).
            maps = None if parts is None else parts.transpose(1, 2, 0)
            v = random_flips(View(a[f"image{cut}"][j].transpose(1, 2, 0),
                                  a[f"geometry{cut}"][j], 0.0, "cached", maps), rng)
            # uint8 stays uint8 until the device (ShiploadDataModule.on_after_batch_transfer):
            # a quarter of the bytes through the loader's queues and the host-to-GPU copy.
            out[f"image{cut}"] = torch.from_numpy(np.ascontiguousarray(v.image.transpose(2, 0, 1)))
            out[f"geometry{cut}"] = torch.from_numpy(v.geometry)
            if v.maps is not None:
                out["parts"] = torch.from_numpy(np.ascontiguousarray(v.maps.transpose(2, 0, 1)))
        for key in a:
            if key not in out and not key.startswith(("image", "geometry", "parts")):
                out[key] = torch.from_numpy(np.array(a[key][j]))
        return out
