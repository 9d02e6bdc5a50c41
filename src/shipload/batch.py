"""The ``predict`` job: gather inputs, shard, write rows batch by batch, resume after a kill."""

from __future__ import annotations

import csv
import glob
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from shipload import __version__
from shipload.contract import GEOMETRY_FIELDS, GEOMETRY_RANGES, ROW_COLUMNS
from shipload.data.io import IMAGE_EXTENSIONS
from shipload.errors import DataError, UsageError
from shipload.inference import Decode, Job
from shipload.view import GeometryError, parse_geometry

SMALL_RUN = 512  # chips: below this, spawning decoding processes costs more than it saves

Format = Literal["csv", "jsonl", "parquet"]


def _manifest_jobs(p: Path) -> list[Job]:
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "path" not in cols:
            raise UsageError(f"{p}: a manifest needs a 'path' column")
        jobs = []
        for row in reader:
            if not row.get("path"):
                continue
            values = {k: v for k, v in row.items() if k in GEOMETRY_RANGES and v not in ("", None)}
            extra = {k: (v or "") for k, v in row.items()
                     if k and k != "path" and k not in GEOMETRY_RANGES and k not in ROW_COLUMNS}
            jobs.append(Job(str(p.parent / row["path"]), values, extra))
    return jobs


def collect_inputs(inputs: Sequence[str]) -> list[Job]:
    """Expand files, folders (recursive), globs and CSV manifests into jobs sorted by path.

    A manifest row's geometry columns become that chip's geometry; its other columns
    (``vessel_id``, ``acquired_utc``, ...) pass through to the output row. A path listed twice
    is predicted once (a manifest row's values win over a bare path).

    Raises:
        UsageError: an input that is neither a file, a folder nor a matching glob; no inputs.
    """
    found: dict[str, Job] = {}

    def add(job: Job) -> None:
        if job.path not in found or job.values or job.extra:
            found[job.path] = job

    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    add(Job(str(f)))
        elif p.is_file() and p.suffix.lower() == ".csv":
            for job in _manifest_jobs(p):
                add(job)
        elif p.is_file():
            add(Job(str(p)))  # any file given by name: a bad one gets an error row
        elif glob.has_magic(raw):
            for g in glob.glob(raw, recursive=True):
                if Path(g).is_file():
                    add(Job(g))
        else:
            raise UsageError(f"input not found: {raw}; give chip files, folders, globs or a "
                             "CSV manifest")
    if not found:
        raise UsageError("no input chips found (looked for " + ", ".join(IMAGE_EXTENSIONS) + ")")
    return [found[k] for k in sorted(found)]


def parse_flags_geometry(values: dict[str, float | None]) -> dict[str, float]:
    """Check the batch-wide geometry flags.

    Raises:
        UsageError: a flag out of range, naming it.
    """
    try:
        return parse_geometry({k: v for k, v in values.items() if v is not None}, "flags")
    except GeometryError as e:
        raise UsageError(str(e)) from None


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """Parse ``K/N`` (1 <= K <= N)."""
    if not spec:
        return None
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError as e:
        raise UsageError(f"--shard must look like K/N, e.g. 2/8; got {spec!r}") from e
    if not 1 <= k <= n:
        raise UsageError(f"--shard {spec}: need 1 <= K <= N")
    return k, n


def shard(items: list[Any], spec: tuple[int, int] | None) -> list[Any]:
    """The K-th of N interleaved slices: balanced, deterministic, disjoint, covering."""
    if spec is None:
        return items
    k, n = spec
    return items[k - 1 :: n]


def output_format(path: Path, fmt: str | None) -> Format:
    """From ``--format`` or the output's extension."""
    f = fmt or {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(
        path.suffix.lower())
    if f not in ("csv", "jsonl", "parquet"):
        raise UsageError(f"cannot tell the format of {path}; use .csv, .jsonl or .parquet, "
                         "or pass --format")
    return f  # type: ignore[return-value]


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Predict's output rows (CSV, JSONL or Parquet) as strings ('' for missing values).

    Raises:
        UsageError: no such file. DataError: a JSONL line that is not JSON.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file; give the output of `shipload predict`")
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return [{k: "" if v is None else str(v) for k, v in r.items()}
                for r in pq.read_table(p).to_pylist()]
    if p.suffix.lower() in (".jsonl", ".json"):
        out = []
        for n, line in enumerate(p.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                raise DataError(f"{p}:{n}: not a JSON line ({e})") from None
            out.append({k: "" if v is None else str(v) for k, v in r.items()})
        return out
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def chip_file(path: str, root: Path) -> Path:
    """The chip file a row's ``path`` names.

    predict writes paths as it was given them: relative to where it ran, or absolute. A
    relative path that does not resolve from here is looked up under ``root`` (usually the
    predictions file's folder).
    """
    p = Path(path)
    return p if p.is_absolute() or p.exists() else root / p


class RowWriter:
    """Appends rows and flushes each batch; reads back what a previous run already wrote.

    CSV and JSONL are appended in place (a torn last line from a kill is cut on resume).
    Parquet rows are appended to ``OUT.partial.jsonl`` and written as Parquet at ``close``,
    so a killed run never leaves a corrupt Parquet file.
    """

    def __init__(self, path: Path, fmt: Format, resume: bool, overwrite: bool,
                 extra_columns: Sequence[str] = ()) -> None:
        self.path, self.fmt = path, fmt
        self.columns = list(ROW_COLUMNS) + [c for c in extra_columns if c not in ROW_COLUMNS]
        partial = path.with_name(path.name + ".partial.jsonl")
        self.stream_path = partial if fmt == "parquet" else path
        exists = path.exists() or (fmt == "parquet" and self.stream_path.exists())
        if exists and not (resume or overwrite):
            raise UsageError(f"{path} exists; pass --resume to continue it or --overwrite to "
                             "start afresh")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create {path.parent}: {e.strerror}") from e
        self.done: dict[str, dict[str, Any]] = {}
        if exists and resume:
            self.done = self._read_existing()
        elif overwrite:
            for p in {path, self.stream_path}:
                p.unlink(missing_ok=True)
        try:
            self.f = open(self.stream_path, "a", newline="")
        except OSError as e:
            raise UsageError(f"cannot write {self.stream_path}: {e.strerror}") from e
        if fmt == "csv" and self.f.tell() == 0:
            csv.writer(self.f, lineterminator="\n").writerow(self.columns)
            self.f.flush()
        elif fmt == "csv":
            with open(self.stream_path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != self.columns:
                self.f.close()
                raise UsageError(f"{path} has columns {header}, this run writes "
                                 f"{self.columns}; resume with the same inputs and version, or "
                                 "--overwrite")

    def _cut_torn_tail(self, p: Path) -> None:
        data = p.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(p, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def _read_existing(self) -> dict[str, dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.fmt == "parquet" and self.path.exists():
            import pyarrow.parquet as pq

            rows += pq.read_table(self.path).to_pylist()
            # Fold the finished file back into the stream so close() rewrites all rows.
            with open(self.stream_path, "a") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
            self.path.unlink()
            rows = []
        p = self.stream_path
        if p.exists():
            self._cut_torn_tail(p)
            with open(p, newline="") as f:
                if self.fmt == "csv":
                    rows += list(csv.DictReader(f))
                else:
                    rows += [json.loads(line) for line in f if line.strip()]
        return {r["path"]: r for r in rows}

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append one batch of rows and flush it to the OS (survives SIGKILL)."""
        buf = io.StringIO()
        if self.fmt == "csv":
            w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
            w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in self.columns}
                        for r in rows)
        else:
            for r in rows:
                buf.write(json.dumps({k: r.get(k) for k in self.columns}) + "\n")
        self.f.write(buf.getvalue())  # one write per batch: a kill tears at most the last line
        self.f.flush()

    def close(self) -> None:
        """Close; for Parquet, write the table atomically from the streamed rows."""
        self.f.close()
        if self.fmt != "parquet":
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        with open(self.stream_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        types = {"string": pa.string(), "float64": pa.float64()}
        schema = pa.schema([(c, types[ROW_COLUMNS.get(c, "string")]) for c in self.columns])
        table = pa.Table.from_pylist([{k: r.get(k) for k in self.columns} for r in rows], schema)
        tmp = self.path.with_name("." + self.path.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(self.path)
        self.stream_path.unlink()


class Progress:
    """A one-line progress bar with rate and ETA on stderr (silent when not a TTY or quiet)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.done, self.t0 = total, 0, time.time()
        self.on = not quiet and sys.stderr.isatty()

    def update(self, n: int) -> None:
        """Count ``n`` more chips and redraw."""
        self.done += n
        if not self.on:
            return
        el = max(time.time() - self.t0, 1e-9)
        rate = self.done / el
        eta = (self.total - self.done) / rate if rate > 0 else 0
        frac = self.done / max(self.total, 1)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r[{bar:<30}] {self.done}/{self.total} {rate:.0f} chips/s "
                         f"ETA {eta:.0f}s")
        sys.stderr.flush()

    def close(self) -> None:
        """End the line."""
        if self.on:
            sys.stderr.write("\n")


def _geometry_kind(used: str) -> str:
    n = 0 if used in ("", "none") or used.startswith("ignored") else used.count("+") + 1
    return "full" if n == len(GEOMETRY_FIELDS) else "partial" if n else "none"


def run_predict(inputs: Sequence[str], output: str | Path, model: str | Path | None = None,
                fmt: str | None = None, batch_size: int = 64, device: str = "auto",
                threads: int | None = None, resume: bool = False, overwrite: bool = False,
                shard_spec: str | None = None, tta: bool = False, quiet: bool = False,
                workers: int | None = None,
                geometry: dict[str, float | None] | None = None,
                decode: Decode = "threads") -> dict[str, Any]:
    """Predict every input chip and write one row per input.

    ``geometry`` holds batch-wide values (the ``--gsd-m`` ... flags); a chip's sidecar JSON and
    its manifest row override them field by field (see ``inference.resolve_geometry``).
    ``decode`` picks the decoding workers (``Predictor.predict``); with ``auto`` (the CLI's
    default) a run of fewer than ``SMALL_RUN`` chips keeps threads, whose start costs nothing.
    Threads are the library default: a decoding process starts by importing the caller's main
    module, which from a script that imports torch costs seconds per process.

    Returns:
        A summary: counts per class, errors, chips/s, provider; also written to
        ``OUTPUT.meta.json`` with the model's name and sha256.

    Raises:
        UsageError: bad arguments (exit code 2 in the CLI).
    """
    from shipload.inference import Predictor
    from shipload.runtime import sha256_file

    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    out = Path(output)
    f = output_format(out, fmt)
    defaults = parse_flags_geometry(geometry or {})
    items = shard(collect_inputs(inputs), parse_shard(shard_spec))
    predictor = Predictor(model, device=device, threads=threads)  # type: ignore[arg-type]
    extras = sorted({k for j in items for k in j.extra})
    writer = RowWriter(out, f, resume, overwrite, extras)
    todo = [j for j in items if j.path not in writer.done]
    progress = Progress(len(todo), quiet)
    counts: Counter[str] = Counter()
    geo_counts: Counter[str] = Counter()
    t0 = time.time()
    try:
        if decode == "auto" and len(todo) < SMALL_RUN:
            decode = "threads"
        for rows in predictor.predict(todo, batch_size=batch_size, tta=tta, workers=workers,
                                      geometry=defaults, decode=decode):
            writer.write(rows)
            for r in rows:
                counts[r["label"] if r["status"] == "ok" else "error"] += 1
                if r["status"] == "ok":
                    geo_counts[_geometry_kind(r["geometry_used"])] += 1
            progress.update(len(rows))
    finally:
        progress.close()
        writer.close()
    elapsed = time.time() - t0
    for r in writer.done.values():
        counts[(r["label"] if r["status"] == "ok" else "error")] += 1
    summary = {
        "output": str(out), "inputs": len(items), "resumed_rows": len(writer.done),
        "predicted": len(todo), "counts": {c: counts.get(c, 0) for c in (*predictor.classes,)},
        "errors": counts.get("error", 0), "seconds": round(elapsed, 3),
        "chips_per_s": round(len(todo) / elapsed, 1) if elapsed > 0 and todo else None,
        "provider": predictor.provider, "model": str(predictor.path),
        "model_sha256": sha256_file(predictor.path), "shipload_version": __version__,
        "tta": tta, "shard": shard_spec,
        "geometry": {k: geo_counts.get(k, 0) for k in ("full", "partial", "none")},
        "geometry_flags": defaults,
    }
    Path(str(out) + ".meta.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

