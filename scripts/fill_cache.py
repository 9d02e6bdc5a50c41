"""Render a fit's stream cache ahead of the fit (on spare cores while another stage trains).

    python scripts/fill_cache.py --config configs/train.yaml \
        --data.synth_seed 29 --data.stream_cache 30000 [any other fit flag]

Takes the fit's own configs and flags (what would follow ``train.py fit``) and runs only what
the fit's ``prepare_data`` runs first (``ShiploadDataModule.fill_stream_cache``): it renders
``data.stream_cache`` items into ``data.cache_dir`` under the digest the fit itself computes
(``shipload.data.cache.cache_key``), so the fit run later with the same flags finds the cache
complete and trains at once. Nothing else of a fit happens: no checkpoint, no log folder. A
killed fill leaves only a ``.partial`` folder, which neither this nor the fit ever trusts; run
it again.

Run it beside a fit only where the fit leaves cores free (a GPU node's CPU): on 2 cores a
fill beside a bf16 fit slowed the fit five- to eightfold (18 optimiser steps a minute against
85-155 alone; the fill ran at about half its speed), likely because the fit's two compute
threads wait on each other whenever one loses its core. There, fill between fits instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from shipload.training import cli_main  # noqa: E402


def fill(args: Sequence[str]) -> Path:
    """Render the cache that ``train.py fit ARGS`` would train on; its folder.

    Raises:
        SystemExit: the flags give no cache (``data.stream_cache`` 0 or no ``data.stream``).
    """
    dm = cli_main(list(args), run=False).datamodule
    try:
        path: Path = dm.fill_stream_cache()
    except ValueError as e:
        raise SystemExit(str(e)) from None
    return path


if __name__ == "__main__":
    print(f"cache complete: {fill(sys.argv[1:])}")
