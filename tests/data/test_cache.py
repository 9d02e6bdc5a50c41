"""The cached stream: a fixed set of rendered items, replayed in a new order with fresh flips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shipload.data.cache import CachedStream, cache_key, fill_cache, stream_args
from shipload.data.stream import RenderedStream
from shipload.synth import SynthConfig
from shipload.synth.params import AppearanceConfig
from shipload.view import InputSpec, flip_geometry


def _args(**kw: object) -> dict[str, object]:
    cfg = SynthConfig()
    cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, max_chip_px=96),
                              appearance=AppearanceConfig(randomize=True))
    return stream_args(cfg, 7, InputSpec(32, 64), framing_pairs=True, parts=True,
                       look_pairs=True, **kw)


def _same_up_to_flips(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor],
                      cut: str) -> bool:
    """Whether ``got``'s cut is ``ref``'s (uint8-quantised) under one of the four flips."""
    want = torch.round(ref[f"image{cut}"] * 255) / 255
    for h in (False, True):
        for v in (False, True):
            img = want
            img = img.flip(2) if h else img
            img = img.flip(1) if v else img
            if torch.allclose(got[f"image{cut}"].float() / 255, img, atol=1e-6):
                g = flip_geometry(ref[f"geometry{cut}"].numpy(), h, v)
                return bool(np.allclose(got[f"geometry{cut}"].numpy(), g))
    return False


def test_cached_items_are_the_streams_items_replayed_with_flips(tmp_path: Path) -> None:
    args = _args()
    ds = CachedStream(args, 4, tmp_path)
    path = ds.fill(workers=1)
    assert (path / "done").is_file() and json.loads((path / "meta.json").read_text())["n"] == 4
    stream = RenderedStream(**args)
    refs = [stream[i] for i in range(4)]
    # One pass (indices 0..3) visits each cached item once, in a seeded order.
    seen = []
    for index in range(4):
        it = ds[index]
        j = int(it["index"])
        seen.append(j)
        assert _same_up_to_flips(it, refs[j], "") and _same_up_to_flips(it, refs[j], "2")
        assert it["parts"].shape == refs[j]["parts"].shape
        assert it["image"].dtype == it["parts"].dtype == torch.uint8  # floats on the device
        assert int(it["label"]) == int(refs[j]["label"])
        assert float(it["freeboard_m"]) == pytest.approx(float(refs[j]["freeboard_m"]))
    assert sorted(seen) == [0, 1, 2, 3]
    # The next pass replays the same items in another order (the seed fixes both).
    second = [int(ds[4 + k]["index"]) for k in range(4)]
    assert sorted(second) == [0, 1, 2, 3]
    assert [int(ds[k]["index"]) for k in range(8)] == seen + second
    # Flips are drawn afresh per global index: over a few passes some item comes both ways.
    imgs = {}
    for index in range(40):
        it = ds[index]
        imgs.setdefault(int(it["index"]), set()).add(it["image"].numpy().tobytes())
    assert max(len(s) for s in imgs.values()) > 1


def test_a_complete_cache_is_reused_and_a_partial_one_is_not(tmp_path: Path) -> None:
    args = _args()
    first = fill_cache(args, 3, tmp_path, workers=1, progress=False)
    stamp = (first / "image.npy").stat().st_mtime_ns
    again = fill_cache(args, 3, tmp_path, workers=1, progress=False)
    assert again == first and (first / "image.npy").stat().st_mtime_ns == stamp
    # Another configuration (here: the geometry dropout) is another cache.
    other = _args(geometry_dropout=0.9)
    assert cache_key(other, 3) != cache_key(args, 3)
    # A fill killed half-way leaves only a .partial folder, which is never read.
    (tmp_path / f".{first.name}.999.partial").mkdir()
    ds = CachedStream(args, 3, tmp_path)
    with pytest.raises(RuntimeError, match="not filled"):
        ds.arrays()
    assert ds.fill(workers=1) == first


def test_rendering_in_processes_gives_the_same_cache(tmp_path: Path) -> None:
    args = _args()
    one = fill_cache(args, 4, tmp_path / "a", workers=1, progress=False)
    two = fill_cache(args, 4, tmp_path / "b", workers=2, progress=False)
    for k in ("image", "image2", "parts", "geometry", "label"):
        assert np.array_equal(np.load(one / f"{k}.npy"), np.load(two / f"{k}.npy")), k


def test_the_data_module_turns_uint8_views_into_floats_after_transfer() -> None:
    from shipload.data.datamodule import ShiploadDataModule

    b = {"image": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8),
         "parts": torch.zeros((2, 5, 4, 4), dtype=torch.uint8),
         "geometry": torch.ones((2, 16)), "label": torch.tensor([0, 1])}
    out = ShiploadDataModule().on_after_batch_transfer(b, 0)
    assert out["image"].dtype == torch.float32 and float(out["image"].max()) == 1.0
    assert out["parts"].dtype == torch.float32 and out["label"].dtype == torch.long


def test_a_bad_cache_size_is_refused() -> None:
    from shipload.data.datamodule import ShiploadDataModule

    with pytest.raises(ValueError, match="stream_cache needs data.stream"):
        ShiploadDataModule(stream=False, stream_cache=10)
    with pytest.raises(ValueError, match="count >= 1"):
        ShiploadDataModule(stream=True, stream_cache=-1)


def test_smoke_fit_trains_on_the_cached_stream(tmp_path: Path) -> None:
    """A fit that fills the cache, then trains with forked loader workers on it.

    In a child process with a time limit: were the cache rendered in the fit's own process,
    OpenCV's thread pool there would deadlock the DataLoader workers forked after it (it did).
    """
    import subprocess
    import sys

    from tests.model.test_task import smoke_args

    args = smoke_args(tmp_path, "--trainer.max_epochs=2", "--data.stream_cache=24",
                      "--data.num_workers=2", f"--data.cache_dir={tmp_path / 'cache'}")
    code = ("import sys; from shipload.training import cli_main; "
            "c = cli_main(sys.argv[1:]); print('steps', c.trainer.global_step)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-3000:]
    caches = list((tmp_path / "cache").glob("stream-*"))
    assert len(caches) == 1 and (caches[0] / "done").is_file()
    assert np.load(caches[0] / "image.npy", mmap_mode="r").shape[0] == 24
    # Two epochs of 64 items from 24 cached ones: 4 steps of 16 each epoch.
    assert "steps 8" in r.stdout
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()


def test_exposure_pairs_reach_the_stream_and_its_cache_key() -> None:
    from shipload.data.datamodule import ShiploadDataModule

    def args(reshoot: bool) -> dict:  # type: ignore[type-arg]
        cfg = Path(__file__).resolve().parents[2] / "configs" / "synth_train.yaml"
        dm = ShiploadDataModule(stream=True, synth_config=str(cfg),
                                framing_pairs=True, look_pairs=True, reshoot_pairs=reshoot)
        return dm._train_stream_args()

    on, off = args(True), args(False)
    assert on["reshoot_pairs"] is True and off["reshoot_pairs"] is False
    assert cache_key(on, 3) != cache_key(off, 3)  # never replays the other kind's pairs
