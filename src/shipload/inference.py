"""Batch inference with onnxruntime: preprocess / infer / postprocess, streaming.

Decoding and viewing run in a pool of workers while the calling thread runs the model.
Threads on a few cores: OpenCV, NumPy, Pillow and onnxruntime release the GIL in their inner
loops, so two threads overlap without spawning interpreters or pickling views (on 2 cores
this gave 1.4x the throughput of a one-process decode pool). Processes on many: on 16 cores
threads decoded only 1.1x as fast as one process (scripts/gpu_checks.py on an H200 machine;
likely the view's small-array NumPy work holding the GIL). There, with chips viewed in spawned
processes, a chunk of them per task, the CLI predicted 1,500 chips in 4.7-5.0 s against
7.9-11.0 s with threads (whole commands), so ``shipload predict`` takes processes from
``PROCESS_MIN_WORKERS`` workers on (``--decode auto``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shipload import CLASSES
from shipload.contract import ONNX_INPUTS, ONNX_OUTPUTS
from shipload.data.io import ChipError, is_tiff, read_bytes, read_chip
from shipload.errors import UsageError
from shipload.geo import centre_lonlat
from shipload.runtime import import_onnxruntime, make_session, read_metadata, usable_cores
from shipload.view import (
    GEO_DIM,
    GeometryError,
    InputSpec,
    View,
    flip_geometry,
    geometry_used,
    parse_geometry,
    prepare_view,
    stack_views,
)

Device = Literal["auto", "cpu", "cuda"]
Decode = Literal["auto", "threads", "processes"]

# ``decode="auto"`` views chips in processes from this many workers. Measured: threads win on
# 2 cores (processes 0.92x), processes on 16 (1.6-2.3x); the crossover between is not measured.
PROCESS_MIN_WORKERS = 4
_CHUNK = 8  # chips per task sent to a decoding process: amortises the round trip


def default_model() -> Path:
    """The model ``predict`` and ``adapt`` use without ``--model``.

    In order: ``$SHIPLOAD_MODEL``; the copy installed with the package (``pip install .``
    puts ``models/shipload.onnx`` into ``shipload/_models/``); the source checkout's
    ``models/shipload.onnx``.
    """
    env = os.environ.get("SHIPLOAD_MODEL")
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent / "_models" / "shipload.onnx"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / "shipload.onnx"



@dataclass
class Job:
    """One input of a predict run.

    Attributes:
        path: the chip file.
        values: per-chip geometry values from a manifest row (raw, checked when used).
        extra: other manifest columns, passed through to the output row unchanged.
    """

    path: str
    values: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Prepared:
    """One preprocessed input: the view or the error that stopped it."""

    index: int
    job: Job
    view: View | None
    error: str = ""
    lon: float | None = None
    lat: float | None = None

    @property
    def path(self) -> str:
        """The chip file."""
        return self.job.path


def sidecar_path(path: str | Path) -> Path:
    """``chip.png`` → ``chip.json`` beside it."""
    return Path(path).with_suffix(".json")


def resolve_geometry(job: Job, defaults: dict[str, float]) -> tuple[dict[str, float],
                                                                   float | None]:
    """The geometry of one chip from its three sources, field by field.

    Precedence, highest first: the manifest row's columns, the sidecar ``chip.json``, the
    batch-wide flags (``defaults``). Per-chip facts beat a whole scene's; the manifest is what
    the user wrote for this very run.

    Returns:
        (geometry fields, heading_deg or None).

    Raises:
        GeometryError: a value in any source that is not a number or out of range, or an
            unreadable sidecar, naming the field and the source.
    """
    geo = dict(defaults)
    side = sidecar_path(job.path)
    if side.is_file():
        try:
            data = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise GeometryError(f"sidecar {side.name} is not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise GeometryError(f"sidecar {side.name} must hold a JSON object of geometry keys")
        geo.update(parse_geometry(data, f"sidecar {side.name}"))
    geo.update(parse_geometry(job.values, "manifest"))
    heading = geo.pop("heading_deg", None)
    return geo, heading


def _prepare(args: tuple[int, Job, InputSpec, dict[str, float]]) -> Prepared:
    i, job, spec, defaults = args
    path = job.path
    try:
        geo, heading = resolve_geometry(job, defaults)
        data = read_bytes(path)  # one read serves the pixels and the geo tags
        view = prepare_view(read_chip(path, data=data), spec, geo, heading)
    except (ChipError, GeometryError) as e:
        return Prepared(i, job, None, str(e))
    except Exception as e:  # a bad file must never stop the run
        return Prepared(i, job, None, f"{path}: {type(e).__name__}: {e}")
    lon = lat = None
    if is_tiff(data):
        ll = centre_lonlat(data)
        if ll:
            lon, lat = ll
    return Prepared(i, job, view, "", lon, lat)


def _prepare_chunk(args: tuple[list[tuple[int, Job]], InputSpec, dict[str, float]]
                   ) -> list[Prepared]:
    """``_prepare`` over a chunk of jobs, in a decoding process."""
    chunk, spec, defaults = args
    return [_prepare((i, job, spec, defaults)) for i, job in chunk]


def _init_decoder(parent: int) -> None:
    """Set up a decoding process: one OpenCV thread, and an end with its parent.

    OpenCV's own pool on top of the processes would oversubscribe the cores. A parent killed
    outright (SIGKILL, OOM) cannot stop its pool, and the workers, which hold their task
    queue's both ends, would wait on it for ever: a watchdog ends each one once it is orphaned.
    ``parent`` is the parent's pid as the parent saw it: one read here could already be the
    reaper's, when the parent died while this process started.
    """
    import threading
    import time

    import cv2

    cv2.setNumThreads(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="shipload-orphan-watch", daemon=True).start()


def _chunks(items: Iterable[tuple[int, Job]], n: int) -> Iterator[list[tuple[int, Job]]]:
    chunk: list[tuple[int, Job]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prefetch(fn: Callable[[Any], Any], jobs: Iterable[Any], ex: Executor,
              depth: int) -> Iterator[Any]:
    """``map(fn, jobs)`` on ``ex``, in order, with at most ``depth`` jobs in flight.

    Bounded so that a million paths never become a million pending views in memory.
    """
    pending: deque[Any] = deque()
    for job in jobs:
        pending.append(ex.submit(fn, job))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def tta_views(x: np.ndarray, g: np.ndarray, policy: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Symmetric copies of a batch, (B, 3, H, W) and (B, G), for test-time augmentation.

    Hull-aligned views have absorbed the chip's rotation, so the group reduces to the four
    flips; the geometry is flipped with the pixels.
    """
    out = []
    for h, v in ((False, False), (True, False), (False, True), (True, True)):
        xv = x[..., ::-1] if h else x
        xv = xv[..., ::-1, :] if v else xv
        out.append((np.ascontiguousarray(xv), flip_geometry(g, h, v)))
    return out


class Predictor:
    """An ONNX model loaded for batch inference.

    Args:
        model: path to the ``.onnx`` (default: the shipped model).
        device: ``auto`` (CUDA when its provider really loads, else CPU), ``cpu`` or ``cuda``.
        threads: onnxruntime intra-op threads (default: all cores; the decoding threads fill
            the gaps while the model waits for input).

    Raises:
        UsageError: missing or foreign model file; ``cuda`` asked for where it cannot run.
    """

    def __init__(self, model: str | Path | None = None, device: Device = "auto",
                 threads: int | None = None) -> None:
        path = Path(model) if model else default_model()
        if not path.is_file():
            raise UsageError(f"model not found: {path}; pass --model PATH.onnx (the shipped "
                             "model is models/shipload.onnx)")
        try:
            self.meta = read_metadata(path)
        except Exception as e:
            raise UsageError(f"{path}: not an ONNX model ({e})") from e
        if "input_height" not in self.meta:
            raise UsageError(f"{path}: no shipload metadata; export it with `shipload export`")
        self.path = path
        self.spec = InputSpec.from_mapping(self.meta)
        self.classes = tuple(json.loads(self.meta.get("classes", json.dumps(list(CLASSES)))))
        available = import_onnxruntime().get_available_providers()
        want: list[str]
        if device == "cpu":
            want = ["CPUExecutionProvider"]
        elif device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise UsageError("--device cuda: this onnxruntime has no CUDA provider; replace "
                                 "it with onnxruntime-gpu (pip uninstall onnxruntime; pip "
                                 "install '.[gpu]') or use --device cpu")
            want = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            want = ([p for p in ("CUDAExecutionProvider",) if p in available]
                    + ["CPUExecutionProvider"])
        self.session = make_session(path, want, threads)
        self.provider = self.session.get_providers()[0]
        names = [i.name for i in self.session.get_inputs()]
        self.takes_geometry = ONNX_INPUTS[1] in names
        have = {o.name for o in self.session.get_outputs()}
        self.outputs = [o for o in ONNX_OUTPUTS if o in have]
        if device == "cuda" and self.provider != "CUDAExecutionProvider":
            raise UsageError("--device cuda: the CUDA provider failed to load (CUDA/cuDNN "
                             "libraries missing?); onnxruntime would silently use the CPU")

    def infer(self, x: np.ndarray, g: np.ndarray | None = None, tta: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the model on a (B, 3, H, W) float32 batch and its (B, G) geometry.

        Returns:
            (probabilities (B, 2), load fraction (B,), freeboard in metres (B,); NaN where
            the model has no freeboard output).
        """
        if g is None:
            g = np.zeros((len(x), GEO_DIM), np.float32)
        pairs = tta_views(x, g, self.spec.policy) if tta else [(x, g)]
        outs = [self._session_run(xv, gv) for xv, gv in pairs]
        p, lf, fb = (np.mean([o[k] for o in outs], 0) for k in range(3))
        return p, lf, fb

    def _session_run(self, x: np.ndarray, g: np.ndarray) -> list[np.ndarray]:
        feeds = {"image": x}
        if self.takes_geometry:
            feeds["geometry"] = g
        outs = self.session.run(self.outputs, feeds)
        if len(outs) == 2:  # an image-only model (before freeboard): no freeboard
            outs.append(np.full(len(x), np.nan, np.float32))
        return list(outs)

    def postprocess(self, items: Sequence[Prepared], probs: np.ndarray | None,
                    load: np.ndarray | None, fb: np.ndarray | None) -> list[dict[str, Any]]:
        """Result rows for a batch, in input order; error rows for inputs that failed."""
        rows = []
        k = 0
        for it in items:
            row: dict[str, Any] = {"path": it.path, "label": "", "p_laden": None,
                                   "load_fraction": None, "freeboard_m": None,
                                   "geometry_used": "", "axis_source": "", "status": "ok",
                                   "error": "", "lon": it.lon, "lat": it.lat, **it.job.extra}
            if it.view is None:
                row.update(status="error", error=it.error)
            else:
                assert probs is not None and load is not None and fb is not None
                p = float(probs[k, 1])
                f = float(fb[k])
                row.update(label=self.classes[int(probs[k].argmax())], p_laden=round(p, 6),
                           load_fraction=round(float(load[k]), 4),
                           freeboard_m=round(f, 3) if np.isfinite(f) else None,
                           geometry_used=geometry_used(it.view.geometry)
                           if self.takes_geometry else "ignored (image-only model)",
                           axis_source=it.view.axis_source)
                k += 1
            rows.append(row)
        return rows

    def predict(self, jobs: Iterable[Job | str], batch_size: int = 64, tta: bool = False,
                workers: int | None = None, geometry: dict[str, float] | None = None,
                decode: Decode = "threads") -> Iterator[list[dict[str, Any]]]:
        """Stream result rows batch by batch, in input order.

        Args:
            jobs: chip files, or ``Job``s carrying their manifest values.
            geometry: batch-wide geometry (the lowest-precedence source, see
                ``resolve_geometry``).
            batch_size: chips per model call.
            tta: average over the symmetry group.
            workers: decoding workers (default: the usable cores; 0 decodes inline).
            decode: ``threads``, ``processes`` (spawned; a chunk of chips per task), or
                ``auto``: processes from ``PROCESS_MIN_WORKERS`` workers on, else threads.
                A spawned process imports the caller's main module first: guard its work
                with ``if __name__ == "__main__":`` and keep its heavy imports inside.

        Yields:
            Lists of rows (one per input) for each batch.
        """
        if batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
        if workers is not None and workers < 0:
            raise UsageError(f"--workers must be >= 0, got {workers}")
        if decode not in ("auto", "threads", "processes"):
            raise UsageError(f"--decode must be auto, threads or processes, got {decode!r}")
        n_workers = usable_cores() if workers is None else workers
        defaults = dict(geometry or {})
        numbered = ((i, j if isinstance(j, Job) else Job(str(j))) for i, j in enumerate(jobs))
        ex: Executor | None = None
        cv_threads = None
        procs = n_workers > 0 and (decode == "processes" or (
            decode == "auto" and n_workers >= PROCESS_MIN_WORKERS))
        it: Iterator[Prepared]
        if procs:
            # spawn, not fork: a forked OpenCV or onnxruntime thread pool can deadlock.
            ex = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"),
                                     initializer=_init_decoder, initargs=(os.getpid(),))
            tasks = ((c, self.spec, defaults) for c in _chunks(numbered, _CHUNK))
            depth = max(2 * n_workers, -(-2 * batch_size // _CHUNK))
            it = (p for chunk in _prefetch(_prepare_chunk, tasks, ex, depth) for p in chunk)
        elif n_workers > 0:
            import cv2

            # One OpenCV thread per decoding thread: its own pool on top would oversubscribe.
            cv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            ex = ThreadPoolExecutor(n_workers, thread_name_prefix="shipload-decode")
            it = _prefetch(_prepare, ((i, j, self.spec, defaults) for i, j in numbered), ex,
                           depth=2 * batch_size)
        else:
            it = map(_prepare, ((i, j, self.spec, defaults) for i, j in numbered))
        try:
            buf: list[Prepared] = []
            for item in it:
                buf.append(item)
                if len(buf) == batch_size:
                    yield self._run(buf, tta)
                    buf = []
            if buf:
                yield self._run(buf, tta)
        finally:
            if ex is not None:
                ex.shutdown(wait=True, cancel_futures=True)
            if cv_threads is not None:
                import cv2

                cv2.setNumThreads(cv_threads)

    def _run(self, items: list[Prepared], tta: bool) -> list[dict[str, Any]]:
        ok = [it.view for it in items if it.view is not None]
        if not ok:
            return self.postprocess(items, None, None, None)
        x, g = stack_views(ok)
        probs, load, fb = self.infer(x, g, tta)
        return self.postprocess(items, probs, load, fb)
