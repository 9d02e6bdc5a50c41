"""onnxruntime sessions and ONNX file facts: built here once, for predict, export and adapt."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_metadata(model_path: str | Path) -> dict[str, str]:
    """The ONNX file's metadata_props as a dict."""
    import onnx

    m = onnx.load(str(model_path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def import_onnxruntime() -> Any:
    """onnxruntime, or a clear error naming the extras that install it."""
    try:
        import onnxruntime
    except ImportError:
        from shipload.errors import UsageError

        raise UsageError("onnxruntime is not installed: pip install 'shipload[cpu]' (CPU) or "
                         "'shipload[gpu]' (CUDA), not both") from None
    return onnxruntime


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one.

    A SLURM job, ``taskset`` or a container's cpuset gives a process fewer cores than the
    machine has, and ``os.cpu_count()`` counts the machine's: a worker or thread per counted
    core would oversubscribe the allocation (and, with decoding processes, fill its memory).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this OS (macOS, Windows)
        return os.cpu_count() or 1


def make_session(path: str | Path, providers: list[str] | None = None,
                 threads: int | None = None) -> Any:
    """An onnxruntime session with full graph optimisation and quiet logs.

    Args:
        path: the ``.onnx`` file.
        providers: in order of preference (default: the CPU). onnxruntime silently falls back
            to the CPU when CUDA cannot load: callers check ``session.get_providers()``.
        threads: intra-op threads (default: every usable core, ``usable_cores``).
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads or usable_cores()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=providers or [CPU])
