"""The endless rendered stream: fresh chips every epoch, deterministic, resumable, per rank."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from shipload.data.stream import EpochSampler, RenderedStream
from shipload.synth import SynthConfig
from shipload.synth.params import AppearanceConfig
from shipload.view import InputSpec


def _cfg() -> SynthConfig:
    cfg = SynthConfig()
    return dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, max_chip_px=96),
                               appearance=AppearanceConfig(randomize=True))


def test_sampler_gives_fresh_indices_each_epoch_and_repeats_on_resume() -> None:
    s = EpochSampler(5)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 == [0, 1, 2, 3, 4] and e1 == [5, 6, 7, 8, 9]
    resumed = EpochSampler(5)
    resumed.set_epoch(1)  # what Lightning does after --ckpt_path last at epoch 1
    assert list(resumed) == e1
    val = EpochSampler(3, offset=100, fixed=True)
    val.set_epoch(4)
    assert list(val) == [100, 101, 102]


def test_items_depend_only_on_their_index() -> None:
    spec = InputSpec(32, 64)
    a = RenderedStream(_cfg(), 7, spec)
    b = RenderedStream(_cfg(), 7, spec)
    x1, x2 = a[3], b[3]
    _ = a[4]  # another item in between must not change item 3
    assert torch.equal(x1["image"], a[3]["image"]) and torch.equal(x1["image"], x2["image"])
    assert torch.equal(x1["geometry"], x2["geometry"])
    assert not torch.equal(a[3]["image"], a[5]["image"])
    assert x1["freeboard_m"] > 0 and 0 <= x1["load_fraction"] <= 1


def test_geometry_dropout_leaves_some_chips_without_geometry() -> None:
    ds = RenderedStream(_cfg(), 1, InputSpec(32, 64), augment=False, geometry_dropout=0.5,
                        field_dropout=0.0, heading_prob=0.0)
    present = [int(ds[i]["geometry"][[0, 3, 6, 9, 11]].sum()) for i in range(16)]
    assert 0 in present and 5 in present and set(present) <= {0, 5}


def test_framing_cut_keeps_the_ship_near_the_centre_of_a_tighter_square() -> None:
    from shipload.data.stream import framing_cut
    from shipload.synth.params import sample_scene

    s = sample_scene(_cfg(), 3, 0)
    h = s.chip_px
    img = np.zeros((h, h, 3), np.float32)
    cx, cy = h / 2 + s.centre_offset_px[0], h / 2 + s.centre_offset_px[1]
    img[int(cy), int(cx)] = 1.0  # a marker where the ship's centre is
    lo = min(h, round(1.1 * s.length_m / s.gsd_m))
    sides = set()
    for k in range(30):
        cut = framing_cut(img, s, np.random.default_rng(k))
        b = cut.shape[0]
        sides.add(b)
        assert cut.shape == (b, b, 3) and lo <= b <= h
        ys, xs = np.nonzero(cut[..., 0])
        assert len(xs) == 1, "the ship's centre must stay inside every cut"
        if 0 < int(cy) - ys[0] < h - b and 0 < int(cx) - xs[0] < h - b:  # not clipped
            assert abs(xs[0] - b / 2) <= 0.1 * b + 1 and abs(ys[0] - b / 2) <= 0.1 * b + 1
    assert len(sides) > 5  # the cut's side varies


def test_framing_pairs_give_a_second_cut_of_the_same_ship() -> None:
    ds = RenderedStream(_cfg(), 7, InputSpec(32, 64), framing_pairs=True)
    it = ds[2]
    assert it["image2"].shape == it["image"].shape
    assert it["geometry2"].shape == it["geometry"].shape
    assert not torch.equal(it["image"], it["image2"])
    again = RenderedStream(_cfg(), 7, InputSpec(32, 64), framing_pairs=True)[2]
    assert torch.equal(it["image2"], again["image2"])  # still a function of the index alone


def test_parts_give_the_part_maps_in_the_view_of_the_first_cut() -> None:
    from shipload.contract import PART_NAMES

    ds = RenderedStream(_cfg(), 7, InputSpec(32, 64), framing_pairs=True, parts=True)
    it = ds[2]
    assert it["parts"].shape == (len(PART_NAMES), 32, 64)
    assert float(it["parts"].min()) >= 0 and float(it["parts"].max()) <= 1
    deck = it["parts"][PART_NAMES.index("deck")]
    assert float(deck.sum()) > 20  # the ship is in the view
    # The maps are extra: the image is the same as without them.
    plain = RenderedStream(_cfg(), 7, InputSpec(32, 64), framing_pairs=True)[2]
    assert torch.equal(it["image"], plain["image"]) and "parts" not in plain


def test_look_pairs_render_the_same_ship_with_another_look() -> None:
    from shipload.data.stream import redraw_look
    from shipload.synth.params import sample_scene
    from shipload.synth.render import render

    cfg = _cfg()
    s = sample_scene(cfg, 7, 2)
    looks = {redraw_look(s, cfg, k).look.describe() for k in range(12)}  # type: ignore[union-attr]
    assert len(looks) > 3  # another look each time...
    other = redraw_look(s, cfg, 0)
    assert dataclasses.replace(other, look=None) == dataclasses.replace(s, look=None)
    a, b = render(s, layers=True), render(other, layers=True)
    assert a.cues == b.cues  # ...and the same ship, sun, sensor and cue widths
    np.testing.assert_array_equal(a.layers["hull_side"], b.layers["hull_side"])
    assert not np.allclose(a.rgb, b.rgb, atol=0.02)

    ds = RenderedStream(cfg, 7, InputSpec(32, 64), framing_pairs=True, look_pairs=True)
    plain = RenderedStream(cfg, 7, InputSpec(32, 64), framing_pairs=True)
    it, it0 = ds[2], plain[2]
    assert torch.equal(it["image"], it0["image"])  # the first cut is unchanged
    assert not torch.equal(it["image2"], it0["image2"])  # the second has another look
    assert torch.equal(it["image2"], ds[2]["image2"])  # still a function of the index alone


def test_look_pairs_are_refused_without_pairs_or_without_looks() -> None:
    import pytest

    with pytest.raises(ValueError, match="framing_pairs"):
        RenderedStream(_cfg(), 7, InputSpec(32, 64), look_pairs=True)
    plain = dataclasses.replace(_cfg(), appearance=AppearanceConfig(randomize=False))
    with pytest.raises(ValueError, match="randomize"):
        RenderedStream(plain, 7, InputSpec(32, 64), framing_pairs=True, look_pairs=True)


def test_reshoot_pairs_expose_the_other_look_again() -> None:
    import pytest

    from shipload.data.stream import reshoot
    from shipload.synth.params import sample_scene
    from shipload.synth.render import render

    cfg = _cfg()
    s = dataclasses.replace(sample_scene(cfg, 7, 2), neighbour=False)  # a neighbour moves
    again = reshoot(s)
    assert dataclasses.replace(again, seed=s.seed) == s  # the same ship, look and cut
    a, b = render(s, layers=True), render(again, layers=True)
    assert a.cues == b.cues
    np.testing.assert_array_equal(a.layers["hull_side"], b.layers["hull_side"])
    assert not np.allclose(a.rgb, b.rgb, atol=0.01)  # another exposure: new noise and textures

    looks = RenderedStream(cfg, 7, InputSpec(32, 64), framing_pairs=True, look_pairs=True)
    shots = RenderedStream(cfg, 7, InputSpec(32, 64), framing_pairs=True, look_pairs=True,
                           reshoot_pairs=True)
    it, it0 = shots[2], looks[2]
    assert torch.equal(it["image"], it0["image"])  # the first cut is unchanged
    assert not torch.equal(it["image2"], it0["image2"])  # the second is exposed anew
    assert torch.equal(it["image2"], shots[2]["image2"])  # still a function of the index alone
    with pytest.raises(ValueError, match="look_pairs"):
        RenderedStream(cfg, 7, InputSpec(32, 64), framing_pairs=True, reshoot_pairs=True)
