"""``shipload review``: the local web app where analysts check calls and label chips.

Security as a local tool: it binds to 127.0.0.1 unless told otherwise; it serves chips only by
their row number in the predictions (no path ever reaches the file system from a request, so
a traversal attempt is a 404); every request that changes state must carry the page's
per-session token (another site the analyst has open cannot read it, so it cannot post
labels); and requests must name this host (no DNS rebinding).
"""

from __future__ import annotations

import getpass
import hmac
import math
import secrets
import socket
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from shipload.contract import InputSpec
from shipload.data.io import png_bytes, read_chip
from shipload.errors import UsageError
from shipload.review.page import dumps, render
from shipload.review.store import LABELS, LabelStore
from shipload.review.table import PAGE_SIZE, STATES, Table
from shipload.view import prepare_view

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
THUMB_PX = 240  # longest side of a served chip


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json")


def placeholder(message: str, width: int = 160, height: int = 120) -> bytes:
    """A grey PNG with a cross and the error written on it."""
    img = np.full((height, width, 3), 204, np.uint8)  # RGB; putText draws on 8-bit only
    cv2.line(img, (0, 0), (width - 1, height - 1), (160, 160, 160), 2)
    cv2.line(img, (0, height - 1), (width - 1, 0), (160, 160, 160), 2)
    for k, line in enumerate(textwrap.wrap(message, 26)[:7]):
        cv2.putText(img, line, (4, 14 + 15 * k), cv2.FONT_HERSHEY_PLAIN, 0.8, (150, 0, 0), 1,
                    cv2.LINE_AA)
    return png_bytes(img.astype(np.float32) / 255)


def model_spec(predictions: Path) -> InputSpec:
    """The input spec of the model that made ``predictions`` (from its ``.meta.json``)."""
    import json

    from shipload.runtime import read_metadata

    try:
        meta = json.loads(Path(str(predictions) + ".meta.json").read_text())
        return InputSpec.from_mapping(read_metadata(Path(meta["model"])))
    except Exception:  # no sidecar, or the model has moved: the view is a guide, not a call
        return InputSpec()


class Review:
    """The app's state: the predictions, the label store and the session token.

    Args:
        predictions: predict's output (CSV, JSONL or Parquet).
        labels_csv: where "Export" writes ``path,label``; the label database sits beside it
            (``.sqlite``). An existing CSV seeds a new database.
        user: recorded with every label.
        spec: the model view shown beside each chip (default: the input spec of the model
            named in the predictions' ``.meta.json``, else the shipped model's).
    """

    def __init__(self, predictions: str | Path, labels_csv: str | Path | None = None,
                 user: str | None = None, spec: InputSpec | None = None) -> None:
        self.table = Table(predictions)
        src = Path(predictions)
        self.labels_csv = (Path(labels_csv) if labels_csv
                           else src.with_name(src.stem + ".labels.csv"))
        self.db_path = self.labels_csv.with_suffix(".sqlite")
        fresh = not self.db_path.exists()
        self.store = LabelStore(self.db_path, user or getpass.getuser())
        self.imported = 0
        if fresh and self.labels_csv.is_file():
            self.imported = self.store.import_csv(self.labels_csv, self.table.key_of_file)
        self.spec = spec or model_spec(src)
        self.token = secrets.token_urlsafe(24)
        self.image = lru_cache(maxsize=1024)(self._image)

    def _image(self, i: int, kind: str) -> tuple[bytes, str]:
        """(PNG, error): the chip (kind ``chip``) or the model's view (``view``)."""
        c = self.table.chips[i]
        try:
            img = read_chip(c.file)
            if kind == "view":
                geo = c.geometry()
                heading = geo.pop("heading_deg", None)
                img = prepare_view(img, self.spec, geo, heading).image
            else:
                h, w = img.shape[:2]
                s = THUMB_PX / max(h, w)
                if s < 1:
                    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                                     interpolation=cv2.INTER_AREA)
            return png_bytes(img), ""
        except Exception as e:  # any unreadable chip becomes a placeholder, never a 500
            msg = f"{type(e).__name__}: {e}".replace(str(c.file), c.file.name)
            return placeholder(msg), msg

    # -- routes ------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """GET /: the grid, filtered and paged by the query string."""
        q = request.query_params
        filters = {"call": q.get("call", "all"), "band": q.get("band", "all"),
                   "state": q.get("state", "all"), "q": q.get("q", "")}
        if filters["state"] not in STATES:
            filters["state"] = "all"
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        labels = self.store.current
        sel = self.table.select(labels, filters["call"], filters["band"], filters["state"],
                                filters["q"])
        pages = math.ceil(len(sel) / PAGE_SIZE)
        page = min(page, max(pages, 1))
        rows = [self.table.chips[i] for i in sel[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
        body = await run_in_threadpool(
            render, self.table.source.name, self.token,
            [(c, labels.get(c.key)) for c in rows], self.table.counts(labels), filters, page,
            pages, len(sel), str(self.labels_csv))
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    async def chip(self, request: Request) -> Response:
        """GET /chip/{i} and /view/{i}: a row's chip or model view, as PNG (404 if no row)."""
        i = request.path_params["i"]
        if not 0 <= i < len(self.table.chips):
            return Response("no such chip", status_code=404)
        kind = "view" if request.url.path.startswith("/view/") else "chip"
        data, err = await run_in_threadpool(self.image, i, kind)
        headers = {"Cache-Control": "private, max-age=300"}
        if err:
            headers["X-Chip-Error"] = err.encode("ascii", "replace").decode()[:300]
        return Response(data, media_type="image/png", headers=headers)

    def _authorised(self, request: Request) -> bool:
        sent = request.headers.get("x-shipload-token", "")
        return hmac.compare_digest(sent.encode(), self.token.encode())

    async def label(self, request: Request) -> Response:
        """POST /api/label {path, label}: 403 without the token, 400 for an unknown chip."""
        if not self._authorised(request):
            return _json({"error": "missing or wrong session token: reload the page"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return _json({"error": "the body must be JSON: {\"path\": ..., \"label\": ...}"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object"}, 400)
        key, label = body.get("path"), body.get("label")
        if not isinstance(key, str) or key not in self.table.by_key:
            return _json({"error": f"{key!r} is not a chip of {self.table.source.name}"}, 400)
        if label is not None and label not in LABELS:
            return _json({"error": f"label {label!r}: use one of {', '.join(LABELS)} or null"},
                         400)
        e = await run_in_threadpool(self.store.put, key, label)
        # The reply comes only after the commit: an acknowledged label is on disk.
        return _json({"path": key, "label": e.label, "event": e.id, "user": e.user, "ts": e.ts,
                      "counts": self.table.counts(self.store.current)})

    async def export(self, request: Request) -> Response:
        """POST /api/export: write the labels CSV atomically."""
        if not self._authorised(request):
            return _json({"error": "missing or wrong session token: reload the page"}, 403)
        files = {c.key: c.file for c in self.table.chips}
        try:
            n = await run_in_threadpool(self.store.export_csv, self.labels_csv, files.__getitem__)
        except OSError as e:
            return _json({"error": f"cannot write {self.labels_csv}: {e}"}, 500)
        return _json({"path": str(self.labels_csv), "rows": n})

    async def counts(self, request: Request) -> Response:
        """GET /api/counts."""
        return _json(self.table.counts(self.store.current))

    async def history(self, request: Request) -> Response:
        """GET /api/history?path=...: every label event of one chip."""
        key = request.query_params.get("path", "")
        if key not in self.table.by_key:
            return _json({"error": f"{key!r} is not a chip of {self.table.source.name}"}, 404)
        return _json([e.__dict__ for e in self.store.history(key)])

    def app(self, allowed_hosts: list[str] | None = None) -> Starlette:
        """The Starlette application."""
        routes = [
            Route("/", self.page), Route("/chip/{i:int}", self.chip),
            Route("/view/{i:int}", self.chip), Route("/api/label", self.label, methods=["POST"]),
            Route("/api/export", self.export, methods=["POST"]),
            Route("/api/counts", self.counts), Route("/api/history", self.history),
        ]
        hosts = allowed_hosts or ["127.0.0.1", "localhost", "[::1]", "testserver"]
        return Starlette(routes=routes,
                         middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


def serve(predictions: str | Path, labels: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8765, open_browser: bool = False, user: str | None = None,
          allow_remote: bool = False) -> None:
    """Run the review app until interrupted.

    Raises:
        UsageError: a non-local host without ``allow_remote``, a port in use, bad predictions.
    """
    if host not in LOCAL_HOSTS and not allow_remote:
        raise UsageError(f"--host {host} would let other machines reach your labels and chips; "
                         "pass --allow-remote as well if that is what you want")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port} ({e.strerror}); "
                             "pass another --port") from None
    rv = Review(predictions, labels, user)
    import uvicorn

    hosts = ["127.0.0.1", "localhost", "[::1]"] if host in LOCAL_HOSTS else ["*"]
    url = f"http://{'localhost' if host in LOCAL_HOSTS else host}:{port}/"
    if host not in LOCAL_HOSTS:
        print(f"WARNING: serving on {host}: anyone who can reach this machine on port {port} "
              "can see the chips and, with the page's token, label them", flush=True)
    print(f"shipload review: {len(rv.table.chips)} chips, {len(rv.store.current)} labelled"
          f"{f' ({rv.imported} imported from {rv.labels_csv})' if rv.imported else ''}\n"
          f"  labels: {rv.db_path} (every label is saved as you make it)\n"
          f"  export: {rv.labels_csv}\n  open {url}  (Ctrl-C stops)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        uvicorn.run(rv.app(hosts), host=host, port=port, log_level="warning")
    finally:
        rv.store.close()
