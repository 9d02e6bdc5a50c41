"""Analysts' labels in SQLite: every label is an event, the latest event of a chip wins.

The database runs in WAL mode with ``synchronous=FULL``: a label is committed to disk before
the server acknowledges it, so a killed server (even ``kill -9``) loses no acknowledged label.
Nothing is ever updated or deleted: an undo is a new event (the label before it, or none), so
each chip's whole history is kept, and two tabs labelling at once simply append; the later
commit wins.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LABELS = ("empty", "laden", "unsure")
"""What an analyst can say of a chip (``unsure`` is kept but never exported)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    label TEXT,            -- NULL: the chip's label was withdrawn (an undo to "no label")
    user TEXT NOT NULL,
    ts TEXT NOT NULL       -- UTC, ISO 8601
);
CREATE INDEX IF NOT EXISTS events_path ON events (path, id);
"""


@dataclass(frozen=True)
class Event:
    """One label event.

    Attributes:
        id: commit order (the later id wins).
        path: the chip, as predict's row names it.
        label: ``empty``, ``laden``, ``unsure`` or None (withdrawn).
        user: who made it.
        ts: when (UTC, ISO 8601).
    """

    id: int
    path: str
    label: str | None
    user: str
    ts: str


class LabelStore:
    """The label events of one review database, with each chip's current label in memory.

    Args:
        path: the SQLite file (created with its folder when missing).
        user: the name recorded with every label this store writes by default.
    """

    def __init__(self, path: str | Path, user: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.user = user
        self._lock = threading.Lock()  # one writer at a time: ids follow commit order
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # on disk before the reply
        self._db.executescript(_SCHEMA)
        self.current: dict[str, Event] = {}
        for row in self._db.execute("SELECT id, path, label, user, ts FROM events ORDER BY id"):
            self._apply(Event(*row))

    def _apply(self, e: Event) -> None:
        if e.label is None:
            self.current.pop(e.path, None)
        else:
            self.current[e.path] = e

    def put(self, path: str, label: str | None, user: str | None = None) -> Event:
        """Record a label (None withdraws it) and return the committed event.

        Raises:
            ValueError: a label other than ``empty``, ``laden``, ``unsure`` or None.
        """
        if label is not None and label not in LABELS:
            raise ValueError(f"label {label!r}: use one of {', '.join(LABELS)} (or null to undo)")
        ts = datetime.now(UTC).isoformat(timespec="milliseconds")
        who = user or self.user
        with self._lock:
            cur = self._db.execute("INSERT INTO events (path, label, user, ts) VALUES (?,?,?,?)",
                                   (path, label, who, ts))
            e = Event(int(cur.lastrowid or 0), path, label, who, ts)
            self._apply(e)
        return e

    def history(self, path: str) -> list[Event]:
        """Every event of one chip, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, path, label, user, ts FROM events WHERE path=? "
                                    "ORDER BY id", (path,)).fetchall()
        return [Event(*r) for r in rows]

    def import_csv(self, csv_path: Path, to_key: Callable[[str], str | None]) -> int:
        """Seed an empty store from an exported ``path,label`` file; returns labels imported.

        Args:
            csv_path: a labels file (paths relative to it, as ``export_csv`` writes them).
            to_key: maps a resolved absolute path to the predictions' key, or None when the
                chip is not among them (skipped).
        """
        n = 0
        with open(csv_path, newline="") as f:
            for r in csv.DictReader(f):
                label, p = (r.get("label") or "").strip(), (r.get("path") or "").strip()
                if label not in LABELS or not p:
                    continue
                key = to_key(str((csv_path.parent / p).resolve()))
                if key is not None:
                    self.put(key, label, "import")
                    n += 1
        return n

    def export_csv(self, out: str | Path, resolve: Callable[[str], Path]) -> int:
        """Write ``path,label`` for every chip labelled empty or laden, atomically.

        Paths are written relative to the CSV's folder, as training, ``evaluate`` and
        ``adapt --labels`` read them. The file is written beside the target and renamed over
        it, so a reader never sees half a file and a crash leaves the old one.

        Args:
            out: the labels CSV.
            resolve: the chip file of a predictions key.

        Returns:
            Rows written.
        """
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            items = sorted((k, e.label) for k, e in self.current.items()
                           if e.label in ("empty", "laden"))
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            for key, label in items:
                w.writerow([os.path.relpath(resolve(key).resolve(), out.parent.resolve()), label])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        return len(items)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
