"""scripts/fill_cache.py: a fill ahead of the fit renders the very cache the fit then uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from fill_cache import fill  # noqa: E402


def test_fill_ahead_gives_the_fits_cache_and_refuses_no_cache(tmp_path: Path) -> None:
    from tests.model.test_task import smoke_args

    cache = tmp_path / "cache"
    args = smoke_args(tmp_path, "--data.stream_cache=6", f"--data.cache_dir={cache}",
                      "--data.chips_per_epoch=6", "--data.batch_size=3")[1:]  # without "fit"
    path = fill(args)
    assert (path / "done").is_file() and path.parent == cache
    stamp = (path / "image.npy").stat().st_mtime_ns
    # The fit with the same flags trains on it without rendering it again (in a child process:
    # see tests/data/test_cache.py on forked loader workers).
    code = "import sys; from shipload.training import cli_main; cli_main(sys.argv[1:])"
    r = subprocess.run([sys.executable, "-c", code, "fit", *args], capture_output=True,
                       text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in cache.iterdir()) == [path.name]
    assert (path / "image.npy").stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="no stream cache to fill: give --data.stream_cache"):
        fill(smoke_args(tmp_path / "b")[1:])
