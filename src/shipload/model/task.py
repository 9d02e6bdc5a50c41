"""The Lightning task: empty/laden classification plus load-fraction regression."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MeanAbsoluteError, MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryCalibrationError,
    BinaryF1Score,
)

from shipload.bands import GSD_BANDS, band_masks
from shipload.contract import SPEC_KEYS
from shipload.model.backbones import ShiploadNet, ShipNet
from shipload.view import DEFAULT_ACROSS_SCALE, DEFAULT_HEIGHT, DEFAULT_WIDTH, Policy

STAGES = ("train", "val", "test")


def load_weights(net: nn.Module, path: str | Path) -> None:
    """Load network weights from a Lightning checkpoint or a shipped ``.pt`` state dict.

    Loads with ``weights_only=True``: a checkpoint cannot run code.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    sd = state.get("state_dict", state)
    sd = {k.removeprefix("net."): v for k, v in sd.items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    # Weights of an image-only model (before the geometry branch) load into the image path;
    # the geometry branch then starts fresh, its residual outputs at zero. ShipNet weights
    # load into shipnet_deep likewise: its added blocks start as the identity, and into a
    # network with the cue readout, whose logit term starts at zero.
    new = ("temperature", "offset", "geo_mlp.", "fuse.", "fused_cls.", "fused_load.",
           "freeboard_head.", "part_head.", "backbone.extra.", "readout.")
    if unexpected or [m for m in missing if not any(m.endswith(n) or m.startswith(n)
                                                    for n in new)]:
        raise ValueError(f"{path}: weights do not match this backbone "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def check_input_spec(path: str | Path, hp: Any) -> None:
    """Refuse weights whose recorded input view differs from the configured one."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    theirs = state.get("hyper_parameters") or {}
    # Not view_version: the same pixels cut by a better estimate are a view to fine-tune onto.
    keys = SPEC_KEYS[:5]
    diff = [f"{k}: weights {theirs[k]} vs config {hp[k]}" for k in keys
            if k in theirs and theirs[k] != hp[k]]
    if diff:
        args = " ".join(f"--model.{k} {theirs[k]}" for k in keys if k in theirs)
        raise ValueError(f"{path} was trained on another view ({'; '.join(diff)}); fine-tune "
                         f"with the same view: {args}")


MIN_TEMPERATURE_CHIPS = 200  # fewer validation chips give a temperature that is mostly noise


class ShiploadTask(L.LightningModule):
    """Empty/laden classifier with a load-fraction head.

    Args:
        backbone: ``shipnet`` (default, fast on CPU), ``shipnet_small``, ``shipnet_deep``
            (ShipNet with residual blocks ending its last two stages), ``resnet18``,
            ``resnet50``, ``mobilenet_v3_small``, ``mobilenet_v3_large``, ``efficientnet_b0``.
        input_height: model input rows.
        input_width: model input columns.
        resize_policy: ``hull_aligned``, ``letterbox`` or ``stretch`` (see data.transforms).
        across_scale: hull-aligned views sample this much finer across the hull than along it.
        frame_scale: hull-aligned views are cut around the ship found in the chip, this many
            times its length (0: the whole chip).
        view_version: the estimate of the hull's axis and extent that cuts hull-aligned views
            (``InputSpec.view_version``; 1 for every model up to stage 13). ``init_from``
            weights may have been trained on another version: fine-tuning moves them to this.
        lr: peak learning rate (one-cycle schedule).
        weight_decay: AdamW weight decay.
        load_loss_weight: weight of the load-fraction loss (masked where unknown).
        freeboard_loss_weight: weight of the log-freeboard loss (masked where unknown).
        label_smoothing: cross-entropy label smoothing.
        dropout: dropout before the heads.
        init_from: start from these weights (a ``.ckpt`` or the shipped ``models/shipload.pt``)
            to fine-tune on your own chips.
        calibrate: refit the softmax temperature on the validation logits each epoch.
        calibrate_offset: with ``calibrate``, also fit a shift of the laden logit (after the
            temperature), so that calls on validation chips do not lean to one class; the
            ONNX graph carries both.
        consistency_weight: weight of the framing-consistency loss, the symmetric KL between
            the class probabilities of two cuts of the same ship (batches from
            ``framing_pairs``). Both cuts also take every supervised loss.
        parts_loss_weight: weight of the auxiliary part-segmentation loss (``part_loss``) on
            batches that carry the renderer's part maps (``data.parts``); ShipNet only.
        style_mix: probability, per training batch and early stage, of MixStyle: each chip's
            feature statistics mixed with another chip's (``backbones.mix_style``), so the
            network cannot lean on the look those statistics carry. Training only (the
            exported graph is unchanged); ShipNet only; 0 turns it off.
        style_mix_alpha: Beta(alpha, alpha) concentration of MixStyle's mixing weight.
        readout: the cue readout (``shipload.model.physics.CueReadout``): ``none``;
            ``pooled`` (measured from the pooled features) or ``profile`` (from a profile
            across the hull of ShipNet's stride-4 map): the network measures the shadow's and
            the side's widths in beams and a small head turns them, with the geometry, into a
            term of the class logits. In the exported graph.
        measure_loss_weight: weight of the readout's measurement loss (smooth L1 on the log
            ratios, against the renderer's ``cues``); batches without ``cues`` skip it.
    """

    def __init__(
        self,
        backbone: str = "shipnet",
        input_height: int = DEFAULT_HEIGHT,
        input_width: int = DEFAULT_WIDTH,
        resize_policy: Policy = "hull_aligned",
        across_scale: float = DEFAULT_ACROSS_SCALE,
        frame_scale: float = 0.0,
        view_version: int = 1,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        load_loss_weight: float = 1.0,
        freeboard_loss_weight: float = 0.5,
        label_smoothing: float = 0.0,
        dropout: float = 0.2,
        init_from: str | None = None,
        calibrate: bool = True,
        calibrate_offset: bool = True,
        consistency_weight: float = 0.0,
        parts_loss_weight: float = 0.0,
        style_mix: float = 0.0,
        style_mix_alpha: float = 0.1,
        readout: Literal["none", "pooled", "profile"] = "none",
        measure_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.configure_models()
        self.configure_metrics()
        self._val_logits: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    @property
    def hp(self) -> Any:
        """The saved constructor arguments, attribute-style (typed loosely for mypy)."""
        return self.hparams

    def configure_models(self) -> None:
        """Build the network (and load ``init_from`` weights when fine-tuning).

        Raises:
            ValueError: ``init_from`` weights trained at another input size or policy than
                this model's: fine-tuning must use the view the weights were trained on; the
                part loss or MixStyle asked of a backbone other than ShipNet; a MixStyle
                setting out of range; an unknown readout, or the ``profile`` readout on a
                backbone other than ShipNet.
        """
        self.net = ShiploadNet(self.hp.backbone, self.hp.dropout, readout=self.hp.readout)
        if not 0.0 <= self.hp.style_mix <= 1.0 or self.hp.style_mix_alpha <= 0:
            raise ValueError(f"model.style_mix is a probability in [0, 1] (got "
                             f"{self.hp.style_mix}) and model.style_mix_alpha must be > 0 (got "
                             f"{self.hp.style_mix_alpha}); try --model.style_mix 0.5 "
                             "--model.style_mix_alpha 0.1")
        if self.hp.style_mix > 0:
            if not isinstance(self.net.backbone, ShipNet):
                raise ValueError(f"model.style_mix needs a ShipNet backbone (it mixes its "
                                 f"stages' statistics); set --model.style_mix 0 to train "
                                 f"{self.hp.backbone!r}")
            self.net.backbone.style_mix = float(self.hp.style_mix)
            self.net.backbone.style_mix_alpha = float(self.hp.style_mix_alpha)
        if self.net.part_head is None and self.hp.parts_loss_weight > 0:
            raise ValueError(f"model.parts_loss_weight needs a ShipNet backbone (the part "
                             f"decoder reads its stages); set --model.parts_loss_weight 0 to "
                             f"train {self.hp.backbone!r}")
        if self.net.part_head is not None and self.hp.parts_loss_weight <= 0:
            # Unused without the part loss: frozen, so that DDP does not wait for its gradients.
            self.net.part_head.requires_grad_(False)
        if self.hp.init_from:
            check_input_spec(self.hp.init_from, self.hp)
            load_weights(self.net, self.hp.init_from)

    def configure_metrics(self) -> None:
        """Per-stage metric collections, cloned TorchGeo-style."""
        base = MetricCollection({
            "acc": BinaryAccuracy(), "f1": BinaryF1Score(), "auroc": BinaryAUROC(),
            "ece": BinaryCalibrationError(n_bins=15),
        })
        # ModuleDict keys may not shadow nn.Module attributes ("train"), hence the "_" suffix.
        self.metrics = nn.ModuleDict({f"{s}_": base.clone(prefix=f"{s}_") for s in STAGES})
        self.mae = nn.ModuleDict({f"{s}_": MeanAbsoluteError() for s in STAGES})
        self.fb_mae = nn.ModuleDict({f"{s}_": MeanAbsoluteError() for s in STAGES})
        self.band_acc = nn.ModuleDict({
            f"{s}_": nn.ModuleList([BinaryAccuracy() for _ in GSD_BANDS]) for s in ("val", "test")})

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1], (B, G) → (logits (B, 2), load logit (B,), log FB (B,))."""
        return self.net(x, g)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        # Part maps belong to the first cut only: taken out before the pair is stacked.
        parts = batch.get("parts") if self.hp.parts_loss_weight > 0 else None
        if parts is None and self.hp.parts_loss_weight > 0 and stage == "train":
            raise ValueError("model.parts_loss_weight needs the renderer's part maps "
                             "(data.stream: true with data.parts: true); to train on files "
                             "set --model.parts_loss_weight 0 (configs/finetune.yaml does)")
        batch = {k: v for k, v in batch.items() if k != "parts"}
        pairs = "image2" in batch
        if pairs:  # two cuts of each ship: one batch of 2B, the truth repeated
            batch = pair_batch(batch)
        x, y = batch["image"], batch["label"]
        if stage == "train":
            x = x.contiguous(memory_format=torch.channels_last)
        part_loss_value = None
        out = self.net.forward_train(x, batch.get("geometry"),
                                     0 if parts is None else parts.shape[0])
        logits, load_logit, log_fb = out["logits"], out["load"], out["log_fb"]  # calibrated
        if parts is not None:
            part_loss_value = part_loss(out["parts"], parts)
            self.log(f"{stage}_parts_loss", part_loss_value, on_epoch=True, on_step=False,
                     batch_size=parts.shape[0])
        measure_loss = None
        if "measure" in out and "cues" in batch:
            measure_loss = F.smooth_l1_loss(out["measure"].float(), batch["cues"].float(),
                                            beta=0.1)
            self.log(f"{stage}_measure_loss", measure_loss, on_epoch=True, on_step=False,
                     batch_size=x.shape[0])
        # The losses see the raw logits: were they to see logits / T, each epoch's refit of T
        # would feed back into the weights (the network rescales its logits to suit T, the
        # next refit moves T again), and T drifts: a run of this recipe drove it to 0.05 in
        # five epochs and its loss blew up.
        raw = self.net.raw_logits(logits)
        cls_loss = F.cross_entropy(raw, y, label_smoothing=self.hp.label_smoothing)
        if pairs and self.hp.consistency_weight > 0:
            cons = framing_consistency(raw)
            self.log(f"{stage}_consistency", cons, on_epoch=True, on_step=False,
                     batch_size=x.shape[0] // 2)
            cls_loss = cls_loss + self.hp.consistency_weight * cons
        lf = batch["load_fraction"]
        known = torch.isfinite(lf)
        load_pred = torch.sigmoid(load_logit)
        if known.any():
            load_loss = F.smooth_l1_loss(load_pred[known], lf[known], beta=0.1)
        else:
            load_loss = load_pred.sum() * 0.0
        fb = batch.get("freeboard_m", torch.full_like(lf, math.nan))
        fb_known = torch.isfinite(fb) & (fb > 0)
        if fb_known.any():
            fb_loss = F.smooth_l1_loss(log_fb[fb_known], fb[fb_known].log(), beta=0.1)
            self.fb_mae[stage + "_"].update(log_fb.detach()[fb_known].exp(), fb[fb_known])
            self.log(f"{stage}_freeboard_mae_m", self.fb_mae[stage + "_"], on_epoch=True,
                     on_step=False, batch_size=int(fb_known.sum()))
        else:
            fb_loss = log_fb.sum() * 0.0
        loss = cls_loss + self.hp.load_loss_weight * load_loss
        loss = loss + self.hp.freeboard_loss_weight * fb_loss
        if part_loss_value is not None:
            loss = loss + self.hp.parts_loss_weight * part_loss_value
        if measure_loss is not None:
            loss = loss + self.hp.measure_loss_weight * measure_loss
        bs = x.shape[0]
        p = torch.softmax(logits.detach().float(), dim=1)[:, 1]
        self.metrics[stage + "_"].update(p, y)
        if known.any():
            self.mae[stage + "_"].update(load_pred.detach()[known], lf[known])
            self.log(f"{stage}_load_mae", self.mae[stage + "_"], on_epoch=True, on_step=False,
                     batch_size=int(known.sum()))
        self.log(f"{stage}_loss", loss, on_epoch=True, on_step=stage == "train",
                 prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        self.log_dict(self.metrics[stage + "_"], on_epoch=True, on_step=False, batch_size=bs,
                      prog_bar=stage != "train")
        if stage + "_" in self.band_acc:
            band_metrics: Any = self.band_acc[stage + "_"]
            for (name, sel), m in zip(band_masks(batch["gsd_m"], GSD_BANDS).items(),
                                      band_metrics):
                if sel.any():
                    m.update(p[sel], y[sel])
                    self.log(f"{stage}_acc_gsd_{name}", m, on_epoch=True, on_step=False,
                             batch_size=int(sel.sum()))
        if stage == "val" and self.hp.calibrate:
            # Keep uncalibrated logits (undo the current calibration) for the refit.
            self._val_logits.append(self.net.raw_logits(logits.detach().float()))
            self._val_labels.append(y)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Validation metrics; logits kept for the temperature refit."""
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Test metrics."""
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Refit the calibration temperature on this epoch's validation logits."""
        if not self._val_logits or self.trainer.sanity_checking:
            self._val_logits.clear()
            self._val_labels.clear()
            return
        z = torch.cat(self._val_logits)
        y = torch.cat(self._val_labels)
        self._val_logits.clear()
        self._val_labels.clear()
        if self.trainer.world_size > 1:
            z = torch.as_tensor(self.all_gather(z)).flatten(0, 1)
            y = torch.as_tensor(self.all_gather(y)).flatten(0, 1)
        if len(y) < MIN_TEMPERATURE_CHIPS:
            if not getattr(self, "_warned_temperature", False):
                rank_zero_warn(f"only {len(y)} validation chips: the calibration temperature "
                               f"is kept at {float(self.net.temperature):.3f}, not refitted "
                               f"(needs {MIN_TEMPERATURE_CHIPS}); raise data.val_fraction")
                self._warned_temperature = True
            return
        t, off = self.refit_calibration(z, y)
        self.log("temperature", t, rank_zero_only=True)
        self.log("laden_offset", off, rank_zero_only=True)

    def refit_calibration(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """Fit the calibration on (N, 2) raw validation logits and set it in the network.

        The temperature, and with ``calibrate_offset`` the laden-logit offset; returns
        (T, offset).
        """
        if self.hp.calibrate_offset:
            t, off = fit_calibration(logits, labels)
        else:
            t, off = fit_temperature(logits, labels), 0.0
        self.net.temperature.fill_(t)
        self.net.offset.fill_(off)
        return t, off

    def configure_optimizers(self) -> Any:
        """AdamW with a one-cycle learning-rate schedule over the whole run."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in self.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hp.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hp.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hp.lr, total_steps=total,
                                                    pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def pair_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch of B framing pairs → one batch of 2B: the first cuts, then the second cuts."""
    out = {k: torch.cat([v, v]) for k, v in batch.items() if k not in ("image2", "geometry2")}
    out["image"] = torch.cat([batch["image"], batch["image2"]])
    if "geometry" in batch:
        out["geometry"] = torch.cat([batch["geometry"], batch["geometry2"]])
    return out


def part_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Part-segmentation loss: per-pixel BCE plus soft Dice per chip and part.

    The cue parts are a few pixels wide in a view of 19,200: BCE alone is carried by the
    water. Dice weighs each part by its own area, so a 2-pixel band counts as much as a deck.
    Parts absent from a chip (no shadow under a high sun) add only their BCE.

    Args:
        logits: (B, P, H, W) part logits.
        target: (B, P, H, W) visible coverage in [0, 1].
    """
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(2, 3))
    total = p.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    present = target.sum(dim=(2, 3)) > 0.5  # (B, P)
    dice = 1 - (2 * inter + 1) / (total + 1)
    dice = dice[present].mean() if present.any() else logits.sum() * 0.0
    return bce + dice


def framing_consistency(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between the class distributions of the two halves of a paired batch.

    Args:
        logits: (2B, 2): rows i and B+i are two cuts of the same ship.
    """
    a, b = F.log_softmax(logits.float(), dim=1).chunk(2)
    return 0.5 * (F.kl_div(a, b, log_target=True, reduction="batchmean")
                  + F.kl_div(b, a, log_target=True, reduction="batchmean"))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T minimising the NLL of ``softmax(logits / T)``; clamped to [0.05, 20].

    Args:
        logits: (N, 2) uncalibrated logits.
        labels: (N,) class indices.
    """
    with torch.enable_grad():
        log_t = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=50)
        z, y = logits.detach().cpu(), labels.detach().cpu()

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), y)
            loss.backward()
            return loss

        opt.step(closure)
    t = float(log_t.detach().exp())
    return float(min(max(t, 0.05), 20.0)) if math.isfinite(t) else 1.0


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Temperature T and laden-logit offset b minimising the NLL of softmax(logits / T + [0, b]).

    The offset moves the threshold: a network whose calls lean to one class on its validation
    chips is re-centred there. T is clamped to [0.05, 20] and b to [-5, 5].

    Args:
        logits: (N, 2) uncalibrated logits.
        labels: (N,) class indices.

    Returns:
        (T, b); (1, 0) when the fit does not converge to finite values.
    """
    with torch.enable_grad():
        log_t = torch.zeros((), requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([log_t, b], lr=0.5, max_iter=100,
                                line_search_fn="strong_wolfe")
        z, y = logits.detach().cpu().double(), labels.detach().cpu()
        laden = torch.tensor([0.0, 1.0], dtype=torch.float64)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp() + b * laden, y)
            loss.backward()
            return loss

        opt.step(closure)
    t, off = float(log_t.detach().exp()), float(b.detach())
    if not (math.isfinite(t) and math.isfinite(off)):
        return 1.0, 0.0
    return float(min(max(t, 0.05), 20.0)), float(min(max(off, -5.0), 5.0))
