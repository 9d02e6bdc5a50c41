"""``shipload tally``: sightings over port calls → loadings, discharges and barrels, with intervals.

Per call, the sightings of its vessel from ``arrival - window`` to ``departure + window`` are
split at the call's midpoint: the earliest before it gives the arrival state, the latest after
it the departure state. ``barrels = (departure load - arrival load) x capacity``.

Uncertainty: each sighting's load is taken as normal, mean the model's ``load_fraction``,
variance ``load_sigma**2 + p(1 - p)`` (the load head's error, measured on held-out chips, plus
the class ambiguity the calibrated ``p_laden`` states), truncated to [0, 1]. Intervals are the
5th and 95th percentiles of seeded Monte Carlo draws, per call and for the totals (sightings
independent).
"""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shipload.errors import DataError, UsageError

CALL_COLUMNS = ["call_id", "vessel_id", "port", "arrival_utc", "departure_utc", "arrival_load",
                "departure_load", "barrels", "barrels_lo", "barrels_hi", "n_sightings",
                "status"]
DRAWS = 4000


def parse_time(value: str, where: str) -> datetime:
    """ISO 8601; a time without a zone is UTC.

    Raises:
        DataError: unparseable, naming ``where`` (file, line and field).
    """
    v = (value or "").strip()
    try:
        t = datetime.fromisoformat(v.replace("z", "Z"))
    except ValueError:
        raise DataError(f"{where}: {value!r} is not an ISO 8601 time (e.g. "
                        "2024-03-01T06:00:00Z)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass
class Sighting:
    """One predicted chip of a vessel."""

    time: datetime
    load: float
    p_laden: float
    path: str


@dataclass
class Call:
    """One port call from CALLS.csv."""

    call_id: str
    vessel_id: str
    port: str
    arrival: datetime
    departure: datetime
    capacity_bbl: float
    sightings: list[Sighting] = field(default_factory=list)


def read_predictions(path: str | Path) -> dict[str, list[Sighting]]:
    """Sightings by vessel from predict's output (CSV, JSONL or Parquet).

    Rows need ``vessel_id`` and ``acquired_utc`` (passed through from the manifest); error
    rows and rows without a vessel are skipped.

    Raises:
        UsageError: missing file or columns. DataError: a bad time (file, line, field).
    """
    from shipload.batch import read_rows

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--predictions {p}: no such file")
    rows = read_rows(p)
    missing = [c for c in ("vessel_id", "acquired_utc", "p_laden", "load_fraction")
               if rows and c not in rows[0]]
    if missing or not rows:
        raise UsageError(f"--predictions {p}: {'no rows' if not rows else f'missing {missing}'};"
                         " predict a manifest whose rows carry vessel_id and acquired_utc "
                         "(shipload chips writes one)")
    out: dict[str, list[Sighting]] = {}
    for n, r in enumerate(rows, start=2):
        if r.get("status", "ok") != "ok" or not r.get("vessel_id"):
            continue
        t = parse_time(r["acquired_utc"], f"{p}:{n}: acquired_utc")
        out.setdefault(r["vessel_id"], []).append(
            Sighting(t, float(r["load_fraction"]), float(r["p_laden"]), r.get("path", "")))
    for v in out.values():
        v.sort(key=lambda s: s.time)
    return out


def read_calls(path: str | Path, bbl_per_tonne: float) -> list[Call]:
    """Read CALLS.csv.

    Columns: ``call_id, vessel_id, port, arrival_utc, departure_utc`` and ``capacity_bbl``
    or ``dwt_t``.

    Raises:
        UsageError: missing file or columns. DataError: bad times, departure before arrival,
            a missing or non-positive capacity, a duplicate call id (file, line and field).
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--calls {p}: no such file")
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        need = [c for c in ("call_id", "vessel_id", "port", "arrival_utc", "departure_utc")
                if c not in cols]
        if need or not ({"capacity_bbl", "dwt_t"} & set(cols)):
            raise UsageError(f"--calls {p}: missing column(s) {need or ['capacity_bbl or dwt_t']}")
        calls, seen = [], set()
        for n, r in enumerate(reader, start=2):
            where = f"{p}:{n}"
            arr = parse_time(r["arrival_utc"], f"{where}: arrival_utc")
            dep = parse_time(r["departure_utc"], f"{where}: departure_utc")
            if dep < arr:
                raise DataError(f"{where}: departure_utc {r['departure_utc']} is before "
                                f"arrival_utc {r['arrival_utc']}")
            if not r["vessel_id"]:
                raise DataError(f"{where}: vessel_id is empty")
            if r["call_id"] in seen:
                raise DataError(f"{where}: call_id {r['call_id']!r} appears twice")
            seen.add(r["call_id"])
            cap = _capacity(r, bbl_per_tonne, where)
            calls.append(Call(r["call_id"], r["vessel_id"], r["port"], arr, dep, cap))
    if not calls:
        raise UsageError(f"--calls {p}: no rows")
    return calls


def _capacity(r: dict[str, str], bbl_per_tonne: float, where: str) -> float:
    for key, scale in (("capacity_bbl", 1.0), ("dwt_t", 0.95 * bbl_per_tonne)):
        v = (r.get(key) or "").strip()
        if v:
            try:
                x = float(v)
            except ValueError:
                raise DataError(f"{where}: {key}={v!r} is not a number") from None
            if not x > 0 or not math.isfinite(x):
                raise DataError(f"{where}: {key}={v!r} must be a positive number")
            # Cargo capacity ~ 0.95 x DWT (bunkers and stores take the rest).
            return x * scale
    raise DataError(f"{where}: no capacity: give capacity_bbl (preferred) or dwt_t")


def _draw(s: Sighting, sigma: float, rng: np.random.Generator) -> np.ndarray:
    sd = math.sqrt(sigma**2 + s.p_laden * (1 - s.p_laden))
    return np.clip(rng.normal(s.load, sd, DRAWS), 0.0, 1.0)


def tally(calls: list[Call], sightings: dict[str, list[Sighting]], window_h: float = 48.0,
          load_sigma: float = 0.2, seed: int = 0) -> tuple[list[dict[str, Any]],
                                                             dict[str, Any]]:
    """Per-call loads and barrels, and the totals.

    Returns:
        (rows of ``calls.csv``, the summary).
    """
    rng = np.random.default_rng(seed)
    w = timedelta(hours=window_h)
    rows: list[dict[str, Any]] = []
    total_draws = np.zeros(DRAWS)
    loaded_draws = np.zeros(DRAWS)
    n_load = n_dis = n_both = 0
    for c in calls:
        mid = c.arrival + (c.departure - c.arrival) / 2
        seen = [s for s in sightings.get(c.vessel_id, [])
                if c.arrival - w <= s.time <= c.departure + w]
        c.sightings = seen
        before = [s for s in seen if s.time <= mid]
        after = [s for s in seen if s.time > mid]
        row: dict[str, Any] = {"call_id": c.call_id, "vessel_id": c.vessel_id, "port": c.port,
                               "arrival_utc": c.arrival.isoformat(),
                               "departure_utc": c.departure.isoformat(),
                               "arrival_load": None, "departure_load": None, "barrels": None,
                               "barrels_lo": None, "barrels_hi": None,
                               "n_sightings": len(seen)}
        a = before[0] if before else None
        d = after[-1] if after else None
        if a:
            row["arrival_load"] = round(a.load, 3)
        if d:
            row["departure_load"] = round(d.load, 3)
        if a and d:
            draws = (_draw(d, load_sigma, rng) - _draw(a, load_sigma, rng)) * c.capacity_bbl
            b = (d.load - a.load) * c.capacity_bbl
            lo, hi = np.percentile(draws, [5, 95])
            row.update(barrels=round(b), barrels_lo=round(float(lo)), barrels_hi=round(float(hi)))
            n_both += 1
            total_draws += draws
            loaded_draws += np.maximum(draws, 0.0)
            if lo > 0:
                row["status"], n_load = "loading", n_load + 1
            elif hi < 0:
                row["status"], n_dis = "discharge", n_dis + 1
            else:
                row["status"] = "unclear"
        else:
            row["status"] = ("arrival_only" if a else "departure_only" if d else "not_seen")
        rows.append(row)
    loaded_rows = [r for r in rows if r["status"] == "loading"]
    summary = {
        "calls": len(calls), "calls_with_both_states": n_both, "loadings": n_load,
        "discharges": n_dis, "unclear": n_both - n_load - n_dis,
        "one_sided": sum(r["status"] in ("arrival_only", "departure_only") for r in rows),
        "not_seen": sum(r["status"] == "not_seen" for r in rows),
        "barrels_loaded_in_loadings": int(sum(r["barrels"] for r in loaded_rows)),
        "net_barrels": int(sum(r["barrels"] for r in rows if r["barrels"] is not None)),
        "net_barrels_90": [int(v) for v in np.percentile(total_draws, [5, 95])],
        "barrels_loaded_90": [int(v) for v in np.percentile(loaded_draws, [5, 95])],
        "window_h": window_h, "load_sigma": load_sigma,
        "uncertainty": "per sighting: load ~ N(load_fraction, load_sigma^2 + p(1-p)) on [0, 1];"
                       f" 5-95 % of {DRAWS} seeded draws",
    }
    return rows, summary


def run_tally(predictions: str | Path, calls_csv: str | Path, out: str | Path,
              window_h: float = 48.0, bbl_per_tonne: float = 7.33, load_sigma: float = 0.2,
              allow_unseen: bool = False) -> dict[str, Any]:
    """Read, tally and write ``calls.csv``, ``summary.json`` and ``index.html`` into ``out``.

    Raises:
        UsageError: bad arguments; DataError: bad rows; a call's vessel in no prediction row
            (unless ``allow_unseen``), which is usually a mismatch of ids between the files.
    """
    if window_h < 0:
        raise UsageError(f"--window-h must be >= 0, got {window_h}")
    if not 5.0 <= bbl_per_tonne <= 10.0:
        raise UsageError(f"--bbl-per-tonne must lie in 5..10 (crude ~7.33), got {bbl_per_tonne}")
    calls = read_calls(calls_csv, bbl_per_tonne)
    sightings = read_predictions(predictions)
    if not allow_unseen:
        unknown = [(i, c) for i, c in enumerate(calls, start=2) if c.vessel_id not in sightings]
        if unknown:
            i, c = unknown[0]
            known = ", ".join(sorted(sightings)[:5])
            raise DataError(f"{calls_csv}:{i}: vessel_id {c.vessel_id!r} is in no prediction "
                            f"row ({len(unknown)} call(s) like this; known ids: {known}). Fix "
                            "the ids, or pass --allow-unseen to report such calls as not_seen")
    rows, summary = tally(calls, sightings, window_h, load_sigma)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".calls.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CALL_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: "" if r.get(k) is None else r[k] for k in CALL_COLUMNS} for r in rows)
    tmp.replace(out / "calls.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "index.html").write_text(_html(calls, rows, summary, Path(predictions).parent))
    return summary


def _html(calls: list[Call], rows: list[dict[str, Any]], summary: dict[str, Any],
          root: Path) -> str:
    from shipload.batch import chip_file
    from shipload.data.io import thumbnail_uri

    esc = html.escape
    by_vessel: dict[str, list[tuple[Call, dict[str, Any]]]] = {}
    for c, r in zip(calls, rows):
        by_vessel.setdefault(c.vessel_id, []).append((c, r))
    parts = []
    for vessel, items in sorted(by_vessel.items()):
        t0 = min(c.arrival for c, _ in items) - timedelta(days=1)
        t1 = max(c.departure for c, _ in items) + timedelta(days=1)
        span = max((t1 - t0).total_seconds(), 1.0)

        def x(t: datetime, t0: datetime = t0, span: float = span) -> float:
            return 100.0 * (t - t0).total_seconds() / span

        bars, chips = [], []
        for c, r in items:
            left, width = x(c.arrival), max(x(c.departure) - x(c.arrival), 0.5)
            label = f"{c.call_id}: {r['status']}" + (
                f", {r['barrels']:+,} bbl" if r["barrels"] is not None else "")
            bars.append(f'<div class="call {esc(r["status"])}" style="left:{left:.2f}%;'
                        f'width:{width:.2f}%" title="{esc(label)}">{esc(c.call_id)}</div>')
            for s in c.sightings:
                src = thumbnail_uri(chip_file(s.path, root), 96)
                img = f'<img src="{src}" alt="chip">' if src else "<span>no chip</span>"
                chips.append(f'<figure>{img}<figcaption>{esc(s.time.strftime("%Y-%m-%d %H:%M"))}'
                             f"<br>load {s.load:.2f}, p {s.p_laden:.2f}</figcaption></figure>")
        cells = []
        for _, r in items:
            has = r["barrels"] is not None
            barrels = format(r["barrels"], ",") if has else "–"
            interval = f"{r['barrels_lo']:,} … {r['barrels_hi']:,}" if has else ""
            loads = ["–" if r[k] is None else f"{r[k]:.2f}"
                     for k in ("arrival_load", "departure_load")]
            cells.append(f"<tr><td>{esc(r['call_id'])}</td><td>{esc(r['port'])}</td>"
                         f"<td>{loads[0]}</td><td>{loads[1]}</td><td>{barrels}</td>"
                         f"<td>{interval}</td><td>{esc(r['status'])}</td></tr>")
        table = "".join(cells)
        parts.append(f'<section><h2>{esc(vessel)}</h2><div class="timeline">{"".join(bars)}</div>'
                     f'<div class="chips">{"".join(chips)}</div><table><tr><th>call</th>'
                     "<th>port</th><th>arrival load</th><th>departure load</th><th>barrels</th>"
                     f"<th>90 % interval</th><th>status</th></tr>{table}</table></section>")
    sm = summary
    lo, hi = sm["net_barrels_90"]
    head = (f"<p><b>{sm['calls']} calls</b>, {sm['calls_with_both_states']} seen on both sides: "
            f"{sm['loadings']} loadings, {sm['discharges']} discharges, {sm['unclear']} unclear; "
            f"{sm['one_sided']} one-sided, {sm['not_seen']} not seen. Net barrels loaded over the "
            f"calls seen on both sides: <b>≈ {sm['net_barrels']:,}</b> (90 % interval "
            f"{lo:,} – {hi:,}); in the clear loadings alone: "
            f"{sm['barrels_loaded_in_loadings']:,}.</p>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}"
             ".timeline{position:relative;height:28px;background:#eef;margin:.5em 0}"
             ".call{position:absolute;top:2px;height:24px;font-size:11px;overflow:hidden;"
             "color:#fff;background:#888;border-radius:3px;padding-left:2px}"
             ".loading{background:#c0392b}.discharge{background:#2471a3}"
             ".chips{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;font-size:11px}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:2px 6px;font-size:13px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>shipload tally</title>"
            f"<style>{style}</style></head><body><h1>Port calls and barrels</h1>{head}"
            f"{''.join(parts)}<p style='color:#666;font-size:12px'>{esc(sm['uncertainty'])}</p>"
            "</body></html>\n")
