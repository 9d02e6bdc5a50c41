"""The review app's API: traversal, the token, bad labels, broken chips, export, crashes."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from starlette.testclient import TestClient

from shipload.review.app import Review
from tests.review.conftest import free_port, start_server


def _client(preds: Path) -> tuple[Review, TestClient]:
    rv = Review(preds, user="ana")
    return rv, TestClient(rv.app(), base_url="http://127.0.0.1")


def _post(rv: Review, c: TestClient, url: str, body: object) -> object:
    return c.post(url, json=body, headers={"X-Shipload-Token": rv.token})


def test_page_lists_chips_least_sure_first_with_the_token(preds: Path) -> None:
    rv, c = _client(preds)
    r = c.get("/")
    assert r.status_code == 200
    assert f'content="{rv.token}"' in r.text
    shown = [rv.table.chips[int(i)] for i in
             __import__("re").findall(r'class="card[^"]*" data-i="(\d+)"', r.text)]
    margins = [abs(ch.p_laden - 0.5) for ch in shown if ch.call]
    assert len(shown) == 13 and margins == sorted(margins)
    assert "error" in c.get("/?call=error").text and c.get("/?page=99").status_code == 200


@pytest.mark.parametrize("url", ["/chip/..%2F..%2F..%2Fetc%2Fpasswd", "/chip/../../etc/passwd",
                                 "/chip/-1", "/chip/13", "/view/999", "/etc/passwd",
                                 "/static/..%2Fpreds.csv", "/chip/%2Fetc%2Fpasswd"])
def test_path_traversal_gets_404(preds: Path, url: str) -> None:
    _, c = _client(preds)
    assert c.get(url).status_code == 404


def test_chips_and_views_are_served_and_a_broken_chip_is_a_placeholder(preds: Path) -> None:
    rv, c = _client(preds)
    good = next(ch.i for ch in rv.table.chips if ch.call)
    for kind in ("chip", "view"):
        r = c.get(f"/{kind}/{good}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.std() > 1  # a real picture, not a blank
        assert "x-chip-error" not in r.headers
    view = cv2.imdecode(np.frombuffer(c.get(f"/view/{good}").content, np.uint8), 1)
    assert view.shape[:2] == (rv.spec.height, rv.spec.width)
    broken = next(ch.i for ch in rv.table.chips if not ch.call)
    r = c.get(f"/chip/{broken}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "ChipError" in r.headers["x-chip-error"]
    assert "zz_broken.png" in c.get("/?call=error").text


def test_state_changes_need_the_session_token(preds: Path) -> None:
    rv, c = _client(preds)
    key = rv.table.chips[0].key
    assert c.post("/api/label", json={"path": key, "label": "laden"}).status_code == 403
    r = c.post("/api/label", json={"path": key, "label": "laden"},
               headers={"X-Shipload-Token": "guess"})
    assert r.status_code == 403 and "token" in r.json()["error"]
    assert c.post("/api/export", json={}).status_code == 403
    assert not rv.store.current and not rv.labels_csv.exists()
    # A request naming another host (DNS rebinding) is refused before any route.
    assert c.get("/", headers={"host": "evil.example"}).status_code == 400


def test_unknown_chip_or_label_is_400_and_stores_nothing(preds: Path) -> None:
    rv, c = _client(preds)
    r = _post(rv, c, "/api/label", {"path": "/etc/passwd", "label": "laden"})
    assert r.status_code == 400 and "not a chip" in r.json()["error"]
    r = _post(rv, c, "/api/label", {"path": rv.table.chips[0].key, "label": "full"})
    assert r.status_code == 400 and "use one of" in r.json()["error"]
    r = c.post("/api/label", content=b"not json", headers={"X-Shipload-Token": rv.token})
    assert r.status_code == 400
    assert not rv.store.current


def test_label_undo_counts_and_export_that_adapt_reads(preds: Path) -> None:
    from shipload.adapt import _read_labels

    rv, c = _client(preds)
    called = [ch for ch in rv.table.chips if ch.call]
    a, b, u = called[0], called[1], called[2]
    r = _post(rv, c, "/api/label", {"path": a.key, "label": a.call}).json()
    assert r["counts"]["agree"] == 1 and r["user"] == "ana"
    other = "empty" if b.call == "laden" else "laden"
    r = _post(rv, c, "/api/label", {"path": b.key, "label": other}).json()
    assert r["counts"]["disagree"] == 1 and r["counts"]["accuracy"] == 0.5
    _post(rv, c, "/api/label", {"path": u.key, "label": "unsure"})
    r = _post(rv, c, "/api/label", {"path": u.key, "label": None}).json()  # undo
    assert r["label"] is None and r["counts"]["labelled"] == 2
    assert [e["label"] for e in c.get("/api/history", params={"path": u.key}).json()] == [
        "unsure", None]
    r = _post(rv, c, "/api/export", {}).json()
    assert r["rows"] == 2
    rows = list(csv.DictReader(open(rv.labels_csv)))
    assert {(Path(x["path"]).name, x["label"]) for x in rows} == {
        (a.file.name, a.call), (b.file.name, other)}
    for k, ch in enumerate(called[3:]):  # enough labels of both classes for adapt
        _post(rv, c, "/api/label", {"path": ch.key, "label": ("empty", "laden")[k % 2]})
    n = _post(rv, c, "/api/export", {}).json()["rows"]
    lab = _read_labels(rv.labels_csv, [str(ch.file) for ch in rv.table.chips])
    assert n == len(called) - 1 and len(lab) == n  # what `adapt --labels` reads


def test_concurrent_writers_over_http_lose_nothing(server: tuple[str, object],
                                                   preds: Path) -> None:
    url, _ = server
    token = _token(url)
    keys = [ch.key for ch in Review(preds).table.chips][:6]
    errors: list[int] = []

    def tab(t: int) -> None:
        for k in range(20):
            code = _label(url, token, keys[k % 6], ("empty", "laden")[(t + k) % 2])
            if code != 200:
                errors.append(code)

    ts = [threading.Thread(target=tab, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    hist = [json.loads(urllib.request.urlopen(
        f"{url}/api/history?path={urllib.request.quote(k)}").read()) for k in keys]
    assert sum(len(h) for h in hist) == 80
    page = urllib.request.urlopen(url + "/").read().decode()
    for k, h in zip(keys, hist):  # the page shows each chip's last committed label
        assert f'data-path="{k}" data-call' in page
        assert f'data-path="{k}" data-call="' in page
        i = page.index(f'data-path="{k}"')
        assert f'data-label="{h[-1]["label"]}"' in page[i : i + 200]


def test_kill_9_loses_no_acknowledged_label(preds: Path) -> None:
    port = free_port()
    proc = start_server(preds, port)
    url = f"http://127.0.0.1:{port}"
    token = _token(url)
    keys = [ch.key for ch in Review(preds).table.chips]
    acked: list[tuple[int, str, str]] = []  # (event id, chip, label) the server acknowledged
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            key, lab = keys[k % len(keys)], ("empty", "laden", "unsure")[k % 3]
            try:
                code, body = _label_body(url, token, key, lab)
            except OSError:
                return
            if code == 200:
                acked.append((body["event"], key, lab))
            k += 1

    t = threading.Thread(target=writer)
    t.start()
    deadline = time.time() + 60
    while len(acked) < 30 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # while labels are being posted
    proc.wait(timeout=30)
    stop.set()
    t.join(timeout=30)
    assert len(acked) >= 30
    rv = Review(preds)  # restart on the same database
    for event, key, lab in acked:
        assert (event, lab) in [(e.id, e.label) for e in rv.store.history(key)]
    last = {key: lab for _, key, lab in acked}
    # Every chip shows its last acknowledged label, or one posted after it (in flight).
    assert sum(rv.store.current[k].label == lab for k, lab in last.items()) >= len(last) - 1


def _token(url: str) -> str:
    page = urllib.request.urlopen(url + "/").read().decode()
    return page.split('name="shipload-token" content="')[1].split('"')[0]


def _label_body(url: str, token: str, key: str, label: str | None) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/api/label", method="POST",
                                 data=json.dumps({"path": key, "label": label}).encode(),
                                 headers={"Content-Type": "application/json",
                                          "X-Shipload-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), {}


def _label(url: str, token: str, key: str, label: str | None) -> int:
    return _label_body(url, token, key, label)[0]


def test_cli_refuses_remote_host_busy_port_and_missing_file(
        preds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from shipload.cli import main

    assert main(["review", str(preds), "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["review", str(preds), "--port", str(s.getsockname()[1])]) == 2
    assert "pass another --port" in capsys.readouterr().err
    assert main(["review", str(tmp_path / "none.csv"), "--port", str(free_port())]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.sqlite"))  # nothing written on the way out


def test_the_view_is_that_of_the_model_that_made_the_predictions(preds: Path,
                                                                   smoke_onnx: Path) -> None:
    Path(str(preds) + ".meta.json").write_text(json.dumps({"model": str(smoke_onnx)}))
    rv, c = _client(preds)
    assert (rv.spec.height, rv.spec.width) == (32, 64)  # the smoke model's input
    good = next(ch.i for ch in rv.table.chips if ch.call)
    view = cv2.imdecode(np.frombuffer(c.get(f"/view/{good}").content, np.uint8), 1)
    assert view.shape[:2] == (32, 64)
