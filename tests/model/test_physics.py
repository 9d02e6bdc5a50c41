"""The cue readout: its targets, the geometry factors it reads, and the network it grows."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from shipload.data.stream import scene_geometry
from shipload.export import LoadedModel, export_loaded, load_model
from shipload.model.backbones import ShiploadNet
from shipload.model.physics import canonical_side, geometry_factors
from shipload.model.task import ShiploadTask, load_weights
from shipload.synth.geometry import CUE_EPS, cue_targets, cue_widths
from shipload.synth.params import Scene, SynthConfig, sample_scene
from shipload.view import GEO_DIM, InputSpec, axis_from_heading, encode_geometry, flip_geometry
from tests.conftest import fixed_scene

SPEC = InputSpec(120, 160, "hull_aligned", 2.0, 1.1)


def _geometry(s: Scene) -> np.ndarray:
    """The scene's encoded geometry in a view whose axis is the hull's own."""
    return encode_geometry(scene_geometry(s), axis_from_heading(s.heading_deg), s.chip_px, SPEC)


def test_cue_targets_are_widths_in_beams_whatever_the_gsd() -> None:
    s = fixed_scene(load_fraction=0.0, off_nadir_deg=20.0, sensor_azimuth_deg=250.0)
    t = cue_targets(s)
    w = cue_widths(s)
    assert np.allclose(np.exp(t) - CUE_EPS, [w.shadow_width_px / w.beam_px,
                                             w.side_width_px / w.beam_px], rtol=1e-5)
    # Sun abeam at 45 degrees: the shadow is one freeboard wide.
    assert math.isclose(math.exp(t[0]) - CUE_EPS, s.freeboard_m / s.beam_m, rel_tol=1e-5)
    assert np.allclose(cue_targets(dataclasses.replace(s, gsd_m=2.5)), t)
    laden = cue_targets(dataclasses.replace(s, load_fraction=1.0))
    assert (laden < t).all()


def test_geometry_factors_turn_the_ratios_back_into_freeboard_in_beams() -> None:
    """Through the model's own encoding of the geometry, the measured ratio over the factor is
    the freeboard in beams: the readout's physics agrees with the renderer's."""
    cfg = SynthConfig()
    checked = 0
    for i in range(60):
        s = sample_scene(cfg, 3, i)
        g = torch.from_numpy(_geometry(s))[None]
        logf, known = geometry_factors(g)
        assert known.tolist() == [[1.0, 1.0]]
        f = torch.exp(logf[0]).numpy() - CUE_EPS
        r = np.exp(cue_targets(s)) - CUE_EPS
        for k in range(2):
            if f[k] > 0.05:  # a shadow or side wide enough to read
                assert math.isclose(r[k] / f[k], s.freeboard_m / s.beam_m, rel_tol=1e-3)
                checked += 1
    assert checked > 60


def test_factors_ignore_which_side_and_mark_what_is_missing() -> None:
    s = sample_scene(SynthConfig(), 3, 7)
    g = _geometry(s)
    a = geometry_factors(torch.from_numpy(g)[None])
    b = geometry_factors(torch.from_numpy(flip_geometry(g, True, True))[None])
    assert torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
    geo = {"gsd_m": s.gsd_m, "sun_elevation_deg": s.sun_elevation_deg}  # no sun azimuth
    g2 = encode_geometry(geo, 0.0, s.chip_px, SPEC)
    logf, known = geometry_factors(torch.from_numpy(g2)[None])
    assert known.tolist() == [[0.0, 0.0]] and logf.abs().sum() == 0


@pytest.mark.parametrize("source", ["pooled", "profile"])
def test_readout_starts_as_the_model_it_grew_from(tmp_path: Path, source: str) -> None:
    """Weights without the readout load; its logit term starts at zero, so the calls do not
    change until training moves it, while the measurement already gets gradients."""
    old = ShiploadNet("shipnet_small")
    torch.save({"state_dict": old.state_dict()}, tmp_path / "old.pt")
    net = ShiploadNet("shipnet_small", readout=source)
    load_weights(net, tmp_path / "old.pt")
    old.eval()
    net.eval()
    x, g = torch.rand(3, 3, 32, 96), torch.rand(3, GEO_DIM)
    with torch.no_grad():
        for a, b in zip(old(x, g), net(x, g)):
            assert torch.allclose(a, b, atol=1e-6)
    net.train()
    out = net.forward_train(x, g)
    assert out["measure"].shape == (3, 2) and "parts" not in out
    out["measure"].sum().backward()
    assert net.readout is not None and float(net.readout.measure.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("source", ["pooled", "profile"])
def test_measure_loss_trains_the_readout_only_where_cues_are_given(source: str) -> None:
    task = ShiploadTask(backbone="shipnet_small", input_height=32, input_width=64,
                        readout=source, measure_loss_weight=1.0)
    gen = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(4, 3, 32, 64, generator=gen),
             "geometry": torch.zeros(4, GEO_DIM), "label": torch.tensor([0, 1, 1, 0]),
             "load_fraction": torch.rand(4, generator=gen),
             "freeboard_m": torch.full((4,), 3.0), "gsd_m": torch.full((4,), 0.5),
             "cues": torch.full((4, 2), 3.0)}  # far from what an untrained head measures
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        task.eval()
        with torch.no_grad():
            with_cues = float(task._step(dict(batch), "val"))
            without = float(task._step({k: v for k, v in batch.items() if k != "cues"}, "val"))
        assert with_cues > without + 1.0
        task.train()
        task._step(dict(batch), "train").backward()
    assert task.net.readout is not None
    assert float(task.net.readout.measure.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("source", ["pooled", "profile"])
def test_readout_exports_with_parity(tmp_path: Path, source: str) -> None:
    """The readout is in the graph: exported, checked against PyTorch, and loaded back."""
    torch.manual_seed(0)
    net = ShiploadNet("shipnet_small", readout=source)
    assert net.readout is not None
    with torch.no_grad():  # a head that is not zero, so that parity checks its term
        net.readout.head[-1].weight.normal_(0, 0.5)
    spec = InputSpec(32, 64, "hull_aligned", 2.0, 1.1)
    hp = {"backbone": "shipnet_small", "readout": source, "input_height": 32, "input_width": 64,
          "resize_policy": "hull_aligned", "across_scale": 2.0, "frame_scale": 1.1}
    m = LoadedModel(net.eval(), spec, hp)
    rep = export_loaded(m, tmp_path / "ro.onnx", weights_out=tmp_path / "ro.pt")
    assert (tmp_path / "ro.onnx").is_file() and rep
    back = load_model(tmp_path / "ro.pt")
    assert back.net.readout is not None
    x, g = torch.rand(2, 3, 32, 64), torch.rand(2, GEO_DIM)
    with torch.no_grad():
        assert torch.allclose(back.net(x, g)[0], net(x, g)[0], atol=1e-6)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_readout_flags_reach_the_task(weight: float) -> None:
    task = ShiploadTask(backbone="shipnet_small", readout="profile", measure_loss_weight=weight)
    assert task.net.readout is not None and task.hp.measure_loss_weight == weight
    assert task.net.readout.needs_maps
    assert ShiploadTask(backbone="shipnet_small").net.readout is None
    with pytest.raises(ValueError, match="model.readout must be one of"):
        ShiploadTask(backbone="shipnet_small", readout="widths")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backbone: shipnet"):
        ShiploadTask(backbone="mobilenet_v3_small", readout="profile")
    assert ShiploadTask(backbone="mobilenet_v3_small", readout="pooled").net.readout is not None


def test_canonical_side_puts_the_sun_below_the_hull() -> None:
    """A profile and its mirror across the hull (with the geometry mirrored too) become the
    same; where the sun's azimuth is unknown nothing turns."""
    s = sample_scene(SynthConfig(), 3, 11)
    g = torch.from_numpy(_geometry(s))[None]
    gf = torch.from_numpy(flip_geometry(_geometry(s), False, True))[None]
    p = torch.rand(1, 4, 30)
    a, b = canonical_side(p, g), canonical_side(p.flip(2), gf)
    assert torch.equal(a, b)
    assert torch.equal(a, p.flip(2) if float(g[0, 8]) < 0 else p)
    none = torch.zeros_like(g)
    assert torch.equal(canonical_side(p, none), p)
