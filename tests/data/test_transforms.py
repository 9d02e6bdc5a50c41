"""Augmentation around the model's view: determinism, per-worker reseeding, geometry flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from shipload.data.datamodule import worker_init_fn
from shipload.data.datasets import ChipDataset, load_records
from shipload.data.transforms import (
    EvalTransform,
    InputSpec,
    TrainTransform,
    batch_radiometry,
    random_flips,
)
from shipload.view import View, encode_geometry


def test_eval_transform_is_deterministic(synth_set: Path) -> None:
    recs = load_records(synth_set)[:3]
    a = ChipDataset(recs, EvalTransform(InputSpec(32, 96)))[1]
    b = ChipDataset(recs, EvalTransform(InputSpec(32, 96)))[1]  # built afresh: same item
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["geometry"], b["geometry"])
    assert a["image"].shape == (3, 32, 96)
    # The manifest's geometry reaches the item (the renderer writes all five fields).
    assert a["geometry"][[0, 3, 6, 9, 11]].tolist() == [1.0] * 5


def _epoch_images(ds: ChipDataset, seed: int, epochs: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    loader = DataLoader(ds, batch_size=1, num_workers=2, worker_init_fn=worker_init_fn)
    return [torch.cat([b["image"] for b in loader]) for _ in range(epochs)]


def test_augmentation_differs_across_workers_and_epochs_and_repeats(synth_set: Path) -> None:
    rec = load_records(synth_set)[0]
    ds = ChipDataset([rec] * 4, TrainTransform(InputSpec(32, 96), seed=0))
    run1 = _epoch_images(ds, seed=5, epochs=2)
    run2 = _epoch_images(ds, seed=5, epochs=2)
    e0 = run1[0]
    # Items 0 and 1 come from different workers (round robin) at the same position in their
    # streams: without the per-worker reseed they would be identical.
    assert not torch.equal(e0[0], e0[1])
    assert not torch.equal(run1[0], run1[1])  # epochs differ
    assert all(torch.equal(a, b) for a, b in zip(run1, run2))  # same seed, same stream


def test_flips_move_pixels_and_geometry_together() -> None:
    """A bright mark in the top-left of the view with the sun up-left: after any flip, the
    mark and the encoded sun direction end in the same quadrant."""
    img = np.zeros((8, 16, 3), np.float32)
    img[0, 0] = 1.0
    g = encode_geometry({"sun_azimuth_deg": 315.0}, 0.0, 100, InputSpec())  # up-left
    seen = set()
    for seed in range(16):
        v = random_flips(View(img, g, 0.0, "image"), np.random.default_rng(seed))
        r, c = np.argwhere(v.image[..., 0] == 1.0)[0]
        sx, sy = v.geometry[7], v.geometry[8]
        assert (c < 8) == (sx < 0) and (r < 4) == (sy < 0)
        seen.add((int(r < 4), int(c < 8)))
    assert len(seen) == 4  # every flip happened


def test_part_maps_follow_every_geometric_step_of_the_training_transform() -> None:
    from shipload.synth.render import part_maps, render
    from tests.conftest import fixed_scene

    r = render(fixed_scene(heading_deg=60.0, chip_px=160, sun_elevation_deg=25.0), clean=True,
               layers=True)
    maps = part_maps(r.layers)
    ship = np.clip(0.3 * maps[..., 3] + maps[..., 4], 0, 1)  # deck dim, superstructure bright
    img = np.ascontiguousarray(np.repeat(ship[..., None], 3, axis=2))  # grey: casts keep it
    t = TrainTransform(InputSpec(48, 96))
    flipped = 0
    for seed in range(12):
        t.set_seed(seed)
        v = t(img, None, 60.0, maps)
        assert v.maps is not None and v.maps.shape == (48, 96, 5)
        # Radiometry changed the pixels, not where they are: the image still matches its map,
        # and better than it matches the map turned end for end.
        a = v.image.mean(axis=2).ravel()
        b = np.clip(0.3 * v.maps[..., 3] + v.maps[..., 4], 0, 1)
        right = np.corrcoef(a, b.ravel())[0, 1]
        assert right > 0.8 and right > np.corrcoef(a, b[::-1, ::-1].ravel())[0, 1] + 0.1, seed
        # The superstructure sits at one end: flips move it and its map together.
        cols = v.maps[..., 4].sum(axis=0)
        flipped += int(float((cols * np.arange(96)).sum() / cols.sum()) > 48)
    assert 0 < flipped < 12


def test_sensor_nuisance_never_moves_an_edge_of_the_green_band() -> None:
    from shipload.data.transforms import sensor_nuisance

    img = np.full((48, 48, 3), 0.2, np.float32)
    img[:, 20:] = 0.7  # a step edge between columns 19 and 20
    changed = 0
    for seed in range(60):
        out = sensor_nuisance(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        edge = np.abs(np.diff(out[..., 1], axis=1)).argmax(axis=1)
        assert np.all(edge == 19)  # green: the part outlines stay where the renderer put them
        changed += not np.allclose(out, img)
    assert changed > 20  # and the artefacts do fire
    np.testing.assert_array_equal(sensor_nuisance(img, np.random.default_rng(3)),
                                  sensor_nuisance(img, np.random.default_rng(3)))


def _hull_with_band() -> torch.Tensor:
    """(1, 3, 40, 60): water, a grey hull side, a red antifouling band, a dark shadow."""
    x = torch.full((1, 3, 40, 60), 0.15)
    x[:, :, 10:20] = 0.55  # hull side
    x[:, 0, 20:23], x[:, 1:, 20:23] = 0.6, 0.12  # band
    x[:, :, 23:27] = 0.05  # shadow
    return x


def test_batch_radiometry_redraws_the_look_and_never_moves_an_edge_or_the_red() -> None:
    x = _hull_with_band().repeat(64, 1, 1, 1)
    a = batch_radiometry(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, batch_radiometry(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, batch_radiometry(x, torch.Generator().manual_seed(2)))
    assert torch.equal(batch_radiometry(x, torch.Generator(), strength=0.0), x)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    # Each view gets its own draw: the hull side's colour differs between views.
    side = a[:, :, 15, 30]  # (B, 3)
    assert float(side.std(dim=0).min()) > 0.02
    # The edges stay on their rows: the four largest steps down the row profile (the mean
    # over columns and bands, which averages the noise away) are the four drawn ones.
    prof = a.mean(dim=(1, 3))  # (B, 40)
    steps = (prof[:, 1:] - prof[:, :-1]).abs()
    for b in range(64):
        assert set(np.argsort(-steps[b].numpy())[:4].tolist()) == {9, 19, 22, 26}
    # ...and the band stays the reddest part of the view.
    redness = a[:, 0] - a[:, 1:].amax(dim=1)  # (B, 40, 60)
    assert bool((redness[:, 20:23].amin(dim=(1, 2)) > redness[:, :20].amax(dim=(1, 2))).all())


def test_the_data_module_redraws_training_views_only(tmp_path: Path) -> None:
    import lightning as L

    from shipload.data.datamodule import ShiploadDataModule

    def batch() -> dict[str, torch.Tensor]:
        img = (_hull_with_band().repeat(4, 1, 1, 1) * 255).round().to(torch.uint8)
        return {"image": img, "image2": img.clone(), "index": torch.arange(4)}

    dm = ShiploadDataModule(batch_radiometry=1.0)
    dm.trainer = L.Trainer(accelerator="cpu", logger=False, default_root_dir=tmp_path)
    dm.trainer.validating = True
    plain = dm.on_after_batch_transfer(batch(), 0)
    assert torch.equal(plain["image"], batch()["image"].float() / 255)
    dm.trainer.training = True
    a, b = dm.on_after_batch_transfer(batch(), 0), dm.on_after_batch_transfer(batch(), 0)
    assert torch.equal(a["image"], b["image"])  # seeded by the items: a resume redraws the same
    assert not torch.allclose(a["image"], plain["image"], atol=0.02)
    assert not torch.allclose(a["image"], a["image2"], atol=0.02)  # the two cuts apart
    with pytest.raises(ValueError, match="batch_radiometry"):
        ShiploadDataModule(batch_radiometry=-1.0)
