"""Contact sheet of rendered chips with the label and load fraction under each."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shipload.synth.writer import read_label_rows


def contact_sheet(root: str | Path, out_png: str | Path, n: int = 24, cols: int = 6,
                  tile: int = 160) -> Path:
    """Write a grid of the first ``n`` chips of a rendered set (balanced empty/laden).

    Each tile shows the chip resized to ``tile`` px and, beneath it, the label, the load
    fraction, the GSD and the freeboard, so a person can check that the classes differ.

    Returns:
        The PNG path.
    """
    root = Path(root)
    rows = read_label_rows(root)
    empty = [r for r in rows if r["label"] == "empty"][: n // 2]
    laden = [r for r in rows if r["label"] == "laden"][: n - len(empty)]
    pick = [r for pair in zip(empty, laden) for r in pair] or rows[:n]
    pick = pick + [r for r in empty + laden if r not in pick]
    pick = sorted(pick[:n], key=lambda r: float(r["gsd_m"]))
    text_h = 34
    tiles = []
    for r in pick:
        from shipload.data.io import read_chip

        img = read_chip(root / r["path"])
        im = cv2.resize((img * 255).astype(np.uint8), (tile, tile), interpolation=cv2.INTER_AREA)
        canvas = np.full((tile + text_h, tile, 3), 255, np.uint8)
        canvas[:tile] = im
        colour = (20, 90, 200) if r["label"] == "empty" else (200, 60, 20)
        cv2.putText(canvas, f"{r['label']}  lf={float(r['load_fraction']):.2f}", (4, tile + 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"gsd {float(r['gsd_m']):.2f} m  fb {float(r['freeboard_m']):.1f} m",
                    (4, tile + 29), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (60, 60, 60), 1, cv2.LINE_AA)
        tiles.append(canvas)
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out_png
