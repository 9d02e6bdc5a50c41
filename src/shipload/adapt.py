"""``shipload adapt``: fit the shipped model to a user's own imagery.

Without labels it re-estimates the batch-norm statistics on the user's chips (AdaBN): the
network's features are re-centred on the new sensor's look, nothing else moves. With labels
(``path,label[,load_fraction]``) it then fine-tunes on them (few epochs, low learning rate,
the rest of the network kept) and refits the temperature on a held-out fifth of them when
there are enough. The result is a complete, self-describing ONNX file, written only after the
same checks as ``export``.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipload import CLASSES
from shipload.errors import DataError, UsageError

MIN_CHIPS = 16
MIN_LABELS = 8
MIN_TEMPERATURE_LABELS = 40  # a temperature refit on fewer held-out labels is noise


@dataclass
class Labelled:
    """A labelled chip for fine-tuning (index into the prepared views)."""

    index: int
    label: int
    load_fraction: float


def weights_for(model: Path) -> Path:
    """The PyTorch weights that belong to an ONNX model: ``NAME.pt`` beside ``NAME.onnx``."""
    return model.with_suffix(".pt")


def _prepare(paths: list[str], spec: Any, manifest_values: dict[str, dict[str, str]]
             ) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Read and view every chip (with its geometry); unreadable ones are reported."""
    from shipload.data.io import read_chip
    from shipload.inference import Job, resolve_geometry
    from shipload.view import prepare_view, stack_views

    views, ok, errors = [], [], []
    for p in paths:
        try:
            geo, heading = resolve_geometry(Job(p, manifest_values.get(p, {})), {})
            views.append(prepare_view(read_chip(p), spec, geo, heading))
            ok.append(p)
        except Exception as e:  # a bad chip is skipped and named, never fatal by itself
            errors.append(f"{p}: {e}")
    if not views:
        raise DataError(f"no readable chips among {len(paths)} inputs (first error: "
                        f"{errors[0] if errors else 'none'})")
    x, g = stack_views(views)
    return ok, x, g, errors


def _read_labels(path: Path, chips: list[str]) -> dict[str, tuple[int, float]]:
    """``path,label[,load_fraction]`` with paths relative to the labels file.

    Raises:
        DataError: missing columns, unknown labels, files not among the chips, one class only.
    """
    if not path.is_file():
        raise UsageError(f"--labels {path}: no such file")
    known = {str(Path(c).resolve()): c for c in chips}
    by_name: dict[str, list[str]] = {}
    for c in chips:
        by_name.setdefault(Path(c).name, []).append(c)
    out: dict[str, tuple[int, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise DataError(f"{path}: needs columns path,label (optional load_fraction)")
        for n, row in enumerate(reader, start=2):
            lab = (row.get("label") or "").strip()
            if lab not in CLASSES:
                raise DataError(f"{path}:{n}: label {lab!r} is not one of {list(CLASSES)}")
            p = str((path.parent / row["path"]).resolve())
            chip = known.get(p)
            if chip is None and len(by_name.get(Path(row["path"]).name, [])) == 1:
                chip = by_name[Path(row["path"]).name][0]  # moved chips: a unique file name
            if chip is None:
                raise DataError(f"{path}:{n}: {row['path']!r} is not among the CHIPS given "
                                "to adapt; pass the labelled chips too")
            try:
                lf = float(row.get("load_fraction") or "nan")
            except ValueError:
                raise DataError(f"{path}:{n}: load_fraction {row['load_fraction']!r} is not "
                                "a number") from None
            out[chip] = (CLASSES.index(lab), lf)
    if len(out) < MIN_LABELS:
        raise DataError(f"{path}: {len(out)} labelled chips; adapt needs at least {MIN_LABELS}")
    if len({v[0] for v in out.values()}) < 2:
        raise DataError(f"{path}: every label is '{CLASSES[next(iter(out.values()))[0]]}'; "
                        f"fine-tuning needs both {list(CLASSES)}")
    return out


def adabn(net: Any, x: np.ndarray, g: np.ndarray, batch: int = 64) -> None:
    """Re-estimate every BatchNorm's running mean and variance on (x, g), in place."""
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    net.train()
    for d in net.modules():
        if isinstance(d, torch.nn.Dropout):
            d.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            net(torch.from_numpy(x[i : i + batch]), torch.from_numpy(g[i : i + batch]))
    net.eval()


def fine_tune(net: Any, x: np.ndarray, g: np.ndarray, y: np.ndarray, lf: np.ndarray,
              epochs: int, lr: float = 3e-4, seed: int = 0, batch: int = 32) -> None:
    """Fine-tune on labelled views (flip augmentation; BN statistics frozen), in place."""
    import torch
    import torch.nn.functional as F

    from shipload.view import flip_geometry

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.01)
    n = len(x)
    for _ in range(epochs):
        net.train()
        for m in net.modules():  # few chips: keep the (adapted) statistics fixed
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / batch))):
            h, v = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
            xb = x[idx]
            xb = xb[..., ::-1] if h else xb
            xb = xb[..., ::-1, :] if v else xb
            xt = torch.from_numpy(np.ascontiguousarray(xb))
            gt = torch.from_numpy(flip_geometry(g[idx], h, v))
            logits, load, _ = net(xt, gt)
            loss = F.cross_entropy(logits * net.temperature, torch.from_numpy(y[idx]))
            known = np.isfinite(lf[idx])
            if known.any():
                k = torch.from_numpy(known)
                loss = loss + F.smooth_l1_loss(torch.sigmoid(load)[k],
                                               torch.from_numpy(lf[idx][known]), beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


def chips_digest(paths: list[str]) -> str:
    """sha256 over the sorted chip files' names, sizes and contents' sha256."""
    from shipload.runtime import sha256_file

    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{Path(p).name}:{Path(p).stat().st_size}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


def run_adapt(chips: list[str], output: str | Path, model: str | Path | None = None,
              labels: str | Path | None = None, epochs: int = 5, overwrite: bool = False,
              seed: int = 0) -> dict[str, Any]:
    """Adapt the model to ``chips`` (and ``labels``) and write a checked ONNX to ``output``.

    Raises:
        UsageError: bad arguments, a missing model or its weights, an existing output.
        DataError: too few or unreadable chips; bad labels.
    """
    import torch

    from shipload.batch import collect_inputs
    from shipload.export import LoadedModel, export_loaded, load_model
    from shipload.inference import default_model
    from shipload.model.task import fit_temperature
    from shipload.runtime import read_metadata, sha256_file

    base = Path(model) if model else default_model()
    out = Path(output)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite or choose another --output")
    if out.resolve() == base.resolve():
        raise UsageError("--output must differ from --model: adapt never overwrites its base")
    if not base.is_file():
        raise UsageError(f"model not found: {base}")
    pt = weights_for(base)
    if not pt.is_file():
        raise UsageError(f"{pt}: adapt needs the PyTorch weights beside the ONNX model "
                         "(export writes them with --weights)")
    if not 0 <= epochs <= 100:
        raise UsageError(f"--epochs must lie in 0..100, got {epochs}")
    jobs = collect_inputs(chips)
    if len(jobs) < MIN_CHIPS:
        raise DataError(f"{len(jobs)} chips; adapt needs at least {MIN_CHIPS} of your imagery "
                        "(a few hundred or more is better)")
    m: LoadedModel = load_model(pt)
    values = {j.path: j.values for j in jobs}
    paths, x, g, errors = _prepare([j.path for j in jobs], m.spec, values)
    if len(paths) < MIN_CHIPS:
        raise DataError(f"only {len(paths)} of {len(jobs)} chips are readable; adapt needs "
                        f"{MIN_CHIPS} (first error: {errors[0]})")
    lab = _read_labels(Path(labels), paths) if labels else {}
    net = m.net
    adabn(net, x, g)
    method = ["adabn"]
    info: dict[str, Any] = {"chips": len(paths), "unreadable": len(errors)}
    if lab and epochs > 0:
        index = {p: i for i, p in enumerate(paths)}
        items = sorted(lab.items())
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(items))
        n_val = len(items) // 5 if len(items) >= 5 * MIN_TEMPERATURE_LABELS // 4 else 0
        val = [items[i] for i in order[:n_val]]
        train = [items[i] for i in order[n_val:]]

        def arrays(rows: list[Any]) -> tuple[np.ndarray, ...]:
            ii = np.array([index[p] for p, _ in rows])
            return (x[ii], g[ii], np.array([v[0] for _, v in rows]),
                    np.array([v[1] for _, v in rows], np.float32))

        xt, gt, yt, lt = arrays(train)
        fine_tune(net, xt, gt, yt, lt, epochs, seed=seed)
        method.append(f"fine-tune {epochs} epochs on {len(train)} labels")
        if val:
            xv, gv, yv, _ = arrays(val)
            with torch.no_grad():
                z, _, _ = net(torch.from_numpy(xv), torch.from_numpy(gv))
                z = z * net.temperature
            t = fit_temperature(z, torch.from_numpy(yv))
            net.temperature.fill_(t)
            method.append(f"temperature {t:.3f} refit on {len(val)} held-out labels")
        else:
            method.append(f"temperature kept: fewer than {MIN_TEMPERATURE_LABELS} held-out "
                          "labels to refit it on")
        info["labels"] = len(lab)
    elif lab:
        method.append("labels given but --epochs 0: not fine-tuned")
    provenance = {
        "adapted_from": base.name, "adapted_from_sha256": sha256_file(base),
        "adapt_method": "; ".join(method), "adapt_chips": str(len(paths)),
        "adapt_chips_sha256": chips_digest(paths),
        "adapt_labels": str(len(lab)),
    }
    base_meta = read_metadata(base)
    for k in ("recipe", "recipe_sha256", "recipe_command", "training_data"):
        if k in base_meta:
            provenance[f"base_{k}"] = base_meta[k]
    parity_x, parity_g = x[:8], g[:8]
    rep = export_loaded(m, out, provenance=provenance, parity=(parity_x, parity_g),
                        weights_out=out.with_suffix(".pt"))
    return {**rep, **info, "method": provenance["adapt_method"], "errors": errors[:5]}


def summary_line(rep: dict[str, Any]) -> str:
    """One line for the CLI."""
    return (f"wrote {rep['path']} ({rep['method']}; {rep['chips']} chips"
            f"{', ' + str(rep['unreadable']) + ' unreadable' if rep['unreadable'] else ''}); "
            f"parity max |diff| {rep['max_abs_diff']:.1e}")


__all__ = ["adabn", "chips_digest", "fine_tune", "run_adapt", "summary_line", "weights_for"]
