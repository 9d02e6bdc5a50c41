"""``shipload adapt``: fit the shipped model to a user's own imagery.

Without labels it re-estimates the batch-norm statistics on the user's chips (AdaBN): the
network's features are re-centred on the new sensor's look, nothing else moves. The chips are
first resampled so that the base model's two calls weigh alike (``balanced_order``): a set of
mostly one state would otherwise give that state's statistics. With labels
(``path,label[,load_fraction]``) it recalibrates the call on them: a scale and an offset of
the laden-vs-empty logit, fitted by logistic regression and folded into the graph's
temperature and laden-logit offset. That fixes the commonest failure on a new look (calls
leaning to one class) with two parameters, so a few dozen labels suffice and cannot overfit.
``--epochs N`` fine-tunes the network on the labels first; measured on held-out appearance
families it did not help (models/README.md), so it is off by default. The result is a
complete, self-describing ONNX file, written only after the same checks as ``export``.

AdaBN assumes the chips mix both states: on sets 20 % or 80 % laden it lost 4-5 points, half
of which the balancing wins back, so ``adapt`` also warns when the base model calls the chips
mostly one state. Self-training past AdaBN (``self_train``) collapsed to one class on
held-out looks and is not used by ``adapt`` (scripts/adapt_study.py,
models/eval/adapt_study.txt).
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
ONE_SIDED = 0.2  # the base model calling fewer than this share of either state: warn


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


def balanced_order(calls: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices of a resampling of the chips in which both of the model's calls weigh alike.

    Each chip is drawn with a weight inversely proportional to the share of chips the model
    gives its call, so a set the model calls 80 % laden is resampled to a half of each call.
    When the model calls every chip one way there is nothing to balance: the plain order.

    Args:
        calls: (N,) bool, the model's laden calls (``laden_calls``).
        seed: the resampling's seed.

    Returns:
        (N,) indices into the chips, with repeats.
    """
    calls = np.asarray(calls, bool)
    share = float(calls.mean())
    if share in (0.0, 1.0):
        return np.arange(len(calls))
    w = np.where(calls, 0.5 / share, 0.5 / (1 - share))
    return np.random.default_rng(seed).choice(len(calls), len(calls), p=w / w.sum())


def _batch_norms(net: Any) -> list[Any]:
    import torch

    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def adabn(net: Any, x: np.ndarray, g: np.ndarray, batch: int = 64, balance: bool = False,
          seed: int = 0, calls: np.ndarray | None = None) -> None:
    """Re-estimate every BatchNorm's running mean and variance on (x, g), in place.

    Args:
        net: a ``ShiploadNet``.
        x: (N, 3, H, W) float views.
        g: (N, G) encoded geometry.
        batch: chips per forward pass.
        balance: estimate on ``balanced_order``'s resampling (the base model's calls weighed
            alike), so that a set of mostly one state does not give that state's statistics.
        seed: the resampling's seed.
        calls: with ``balance``, the base model's laden calls on x when the caller already
            has them (``laden_calls``); otherwise they are computed here.
    """
    import torch

    if balance:
        order = balanced_order(laden_calls(net, x, g) if calls is None else calls, seed)
        x, g = x[order], g[order]
    for m in _batch_norms(net):
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
        for m in _batch_norms(net):  # few chips: keep the (adapted) statistics fixed
            m.eval()
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / batch))):
            h, v = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
            xb = x[idx]
            xb = xb[..., ::-1] if h else xb
            xb = xb[..., ::-1, :] if v else xb
            xt = torch.from_numpy(np.ascontiguousarray(xb))
            gt = torch.from_numpy(flip_geometry(g[idx], h, v))
            logits, load, _ = net(xt, gt)
            loss = F.cross_entropy(net.raw_logits(logits), torch.from_numpy(y[idx]))
            known = np.isfinite(lf[idx])
            if known.any():
                k = torch.from_numpy(known)
                loss = loss + F.smooth_l1_loss(torch.sigmoid(load)[k],
                                               torch.from_numpy(lf[idx][known]), beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


def self_train(net: Any, x: np.ndarray, g: np.ndarray, epochs: int = 3, lr: float = 1e-3,
               diversity: float = 1.0, seed: int = 0, batch: int = 64) -> dict[str, float]:
    """Unlabelled adaptation past AdaBN: information maximisation on the batch-norm affines.

    TENT (Wang et al., 2021) lowers the entropy of the calls on the new chips; SHOT's
    information maximisation (Liang et al., 2020) adds the entropy of the mean call so that the
    calls do not collapse to one class (``diversity`` weighs it: it pulls the share called laden
    toward a half, so it is a prior in disguise, measured in scripts/adapt_study.py). A flip
    consistency term asks the same call of a chip and its flipped view (the view's axis is
    ambiguous by 180°, so flips are free augmentations). Only the batch norms' scales and
    shifts move (a few hundred numbers); their statistics stay as AdaBN left them. In place.

    Args:
        net: a ``ShiploadNet`` after ``adabn``.
        x: (N, 3, H, W) float views.
        g: (N, G) encoded geometry.
        epochs: passes over the chips.
        lr: Adam's rate.
        diversity: weight of the mean call's entropy.
        seed: batch order and flips.
        batch: chips per step.

    Returns:
        The last epoch's mean entropy, the share called laden before and after.
    """
    import torch
    import torch.nn.functional as F

    from shipload.view import flip_geometry

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trainable = [p.requires_grad for p in net.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    params = [p for m in _batch_norms(net) for p in (m.weight, m.bias) if p is not None]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)

    before = called_laden(net, x, g)
    n, ent = len(x), math.nan
    for _ in range(epochs):
        net.eval()  # batch norms keep AdaBN's statistics; only their affines learn
        ents = []
        for idx in np.array_split(rng.permutation(n), max(1, math.ceil(n / batch))):
            h = bool(rng.random() < 0.5)
            v = bool(rng.random() < 0.5) or not h  # at least one flip
            xb = x[idx]
            xf = xb[..., ::-1] if h else xb
            xf = xf[..., ::-1, :] if v else xf
            p1 = F.softmax(net(torch.from_numpy(xb), torch.from_numpy(g[idx]))[0], 1)
            p2 = F.softmax(net(torch.from_numpy(np.ascontiguousarray(xf)),
                               torch.from_numpy(flip_geometry(g[idx], h, v)))[0], 1)
            pm = (p1 + p2) / 2  # (B, 2)
            h_each = -(pm * pm.clamp_min(1e-8).log()).sum(1).mean()
            marg = pm.mean(0)
            h_marg = -(marg * marg.clamp_min(1e-8).log()).sum()
            consist = (p1 - p2).abs().sum(1).mean()
            loss = h_each - diversity * h_marg + consist
            opt.zero_grad()
            loss.backward()
            opt.step()
            ents.append(float(h_each.detach()))
        ent = float(np.mean(ents))
    for p, t in zip(net.parameters(), trainable):
        p.requires_grad_(t)
    net.eval()
    return {"entropy": ent, "laden_before": before, "laden_after": called_laden(net, x, g)}


def recalibrate(net: Any, x: np.ndarray, g: np.ndarray, y: np.ndarray,
                prior: float = 0.01) -> tuple[float, float]:
    """Fit p(laden) = sigmoid(a * d + b) on labelled views and fold it into ``net``, in place.

    ``d`` is the network's calibrated logit difference (laden minus empty), ``raw / T + o``.
    The fit ``a * d + b`` is ``raw / (T / a) + (a * o + b)``: the scale goes into the
    temperature and the rest into the laden-logit offset, so the exported graph carries it
    with nothing added. It is fitted as a * (d - c), a scale and a
    threshold, with a weak prior pulling a toward 1 and c toward 0 when the labels are few;
    b = -a * c.

    Args:
        net: a ``ShiploadNet``.
        x: (N, 3, H, W) views.
        g: (N, G) encoded geometry.
        y: (N,) labels (1 laden).
        prior: weight of the pull toward a = 1 and no shift of the threshold.

    Returns:
        (a, b).
    """
    import torch

    net.eval()
    with torch.no_grad():
        z = torch.cat([net(torch.from_numpy(x[i : i + 256]), torch.from_numpy(g[i : i + 256]))[0]
                       for i in range(0, len(x), 256)]).double()
    d = z[:, 1] - z[:, 0]
    t = torch.from_numpy(y).double()
    # p = sigmoid(a * (d - c)): a scale and a threshold, so that clipping a keeps the threshold.
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, c], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(log_a.exp() * (d - c), t)
        loss = loss + prior * (log_a**2 + c**2)
        loss.backward()
        return loss

    opt.step(closure)
    a = float(np.clip(math.exp(log_a.item()), 0.1, 10.0))
    bias = -a * c.item()
    with torch.no_grad():
        net.temperature.fill_(float(net.temperature) / a)
        net.offset.fill_(a * float(net.offset) + bias)
    return a, bias


def laden_calls(net: Any, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(N,) bool: whether ``net`` calls each view laden (argmax of its calibrated logits)."""
    import torch

    net.eval()
    with torch.no_grad():
        z = torch.cat([net(torch.from_numpy(x[i : i + 256]), torch.from_numpy(g[i : i + 256]))[0]
                       for i in range(0, len(x), 256)])
    return (z.argmax(1) == 1).numpy()


def called_laden(net: Any, x: np.ndarray, g: np.ndarray) -> float:
    """Share of the views that ``net`` calls laden."""
    return float(laden_calls(net, x, g).mean())


def mix_warning(share: float) -> str | None:
    """A warning when the base model calls the chips mostly one state, else None.

    AdaBN re-estimates the features' statistics on the chips, which assumes they mix both
    states: on sets 20 % or 80 % laden it lost 4-5 points (models/eval/adapt_study.txt).
    """
    if ONE_SIDED <= share <= 1 - ONE_SIDED:
        return None
    return (f"the base model calls {share:.0%} of these chips laden: if they really are mostly "
            "one state (one port's queue, one season), the statistics adapt learns are that "
            "state's, not your sensor's, and the adapted model may be worse. Adapt on chips of "
            "both states from many places and times, and judge it on labelled chips "
            "(shipload evaluate) before you use it.")


def chips_digest(paths: list[str]) -> str:
    """sha256 over the sorted chip files' names, sizes and contents' sha256."""
    from shipload.runtime import sha256_file

    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{Path(p).name}:{Path(p).stat().st_size}:{sha256_file(p)}\n".encode())
    return h.hexdigest()


def run_adapt(chips: list[str], output: str | Path, model: str | Path | None = None,
              labels: str | Path | None = None, epochs: int = 0, overwrite: bool = False,
              seed: int = 0) -> dict[str, Any]:
    """Adapt the model to ``chips`` (and ``labels``) and write a checked ONNX to ``output``.

    Raises:
        UsageError: bad arguments, a missing model or its weights, an existing output.
        DataError: too few or unreadable chips; bad labels.
    """
    from shipload.batch import collect_inputs
    from shipload.export import LoadedModel, export_loaded, load_model
    from shipload.inference import default_model
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
    calls = laden_calls(net, x, g)  # the base model's: the warning and the balancing
    share_before = float(calls.mean())
    adabn(net, x, g, balance=True, seed=seed, calls=calls)  # a skewed set's stats otherwise
    method = ["adabn-balanced"]
    info: dict[str, Any] = {"chips": len(paths), "unreadable": len(errors),
                            "called_laden_before": share_before,
                            "mix_warning": mix_warning(share_before)}
    if lab:
        index = {p: i for i, p in enumerate(paths)}
        items = sorted(lab.items())
        ii = np.array([index[p] for p, _ in items])
        xl, gl = x[ii], g[ii]
        yl = np.array([v[0] for _, v in items])
        if epochs > 0:
            fine_tune(net, xl, gl, yl, np.array([v[1] for _, v in items], np.float32), epochs,
                      seed=seed)
            method.append(f"fine-tune {epochs} epochs on {len(items)} labels")
        a, b = recalibrate(net, xl, gl, yl)
        method.append(f"recalibrated on {len(items)} labels (logit x {a:.3f} {b:+.3f})")
        info["labels"] = len(lab)
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
    info["called_laden_after"] = called_laden(net, x, g)
    parity_x, parity_g = x[:8], g[:8]
    rep = export_loaded(m, out, provenance=provenance, parity=(parity_x, parity_g),
                        weights_out=out.with_suffix(".pt"))
    return {**rep, **info, "method": provenance["adapt_method"], "errors": errors[:5]}


def summary_line(rep: dict[str, Any]) -> str:
    """One line for the CLI."""
    line = (f"wrote {rep['path']} ({rep['method']}; {rep['chips']} chips"
            f"{', ' + str(rep['unreadable']) + ' unreadable' if rep['unreadable'] else ''}); "
            f"called laden {rep['called_laden_before']:.0%} before, "
            f"{rep['called_laden_after']:.0%} after; parity max |diff| {rep['max_abs_diff']:.1e}")
    return line + (f"\nwarning: {rep['mix_warning']}" if rep.get("mix_warning") else "")


__all__ = ["adabn", "balanced_order", "called_laden", "chips_digest", "fine_tune", "laden_calls",
           "mix_warning", "recalibrate", "run_adapt", "self_train", "summary_line",
           "weights_for"]
