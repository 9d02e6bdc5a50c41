"""The review app at scale: 50,000 predictions, page load and label round-trip, over real HTTP.

    python benchmarks/bench_review.py [--n 50000] [--repeats 20] [--labels 200]

Writes N prediction rows (p_laden spread over [0, 1], a third of them with a GSD), starts
`shipload review` on them in a child process and times, from this process, side by side:
- the floor: GET /api/counts, the cheapest request that goes through the same server;
- the first page (GET /, 48 chips least sure first, sorted and filtered over all N rows);
- a filtered page (unlabelled chips whose row text matches a string);
- a label round-trip (POST /api/label, committed to SQLite with fsync before the reply).
Targets (issue 18): first page under 1 s, label round-trip under 50 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def write_predictions(path: Path, n: int) -> None:
    rng_state = 12345
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "p_laden", "load_fraction", "freeboard_m", "geometry_used",
                    "axis_source", "status", "error", "gsd_m", "vessel_id"])
        for i in range(n):
            rng_state = (1103515245 * rng_state + 12345) % 2**31  # no NumPy needed
            p = rng_state / 2**31
            w.writerow([f"chips/c{i:06d}.png", "laden" if p >= 0.5 else "empty", f"{p:.4f}",
                        f"{p:.3f}", f"{2 + 8 * (1 - p):.2f}", "none", "image", "ok", "",
                        f"{0.3 + (i % 27) / 10:.2f}" if i % 3 == 0 else "", f"IMO{9000000 + i}"])


def timed(fn: object, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--labels", type=int, default=200)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        preds = Path(tmp) / "preds.csv"
        write_predictions(preds, a.n)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "shipload.cli", "review", str(preds),
                                 "--port", str(port)], stdout=subprocess.DEVNULL)
        try:
            while True:
                try:
                    first = time.perf_counter()
                    page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
                    first = time.perf_counter() - first
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - t0 > 120:
                        raise SystemExit("the review server did not start") from None
                    time.sleep(0.05)
            startup = time.perf_counter() - t0
            token = page.split('name="shipload-token" content="')[1].split('"')[0]
            get = lambda q: urllib.request.urlopen(url + q, timeout=30).read()  # noqa: E731
            floor = timed(lambda: get("/api/counts"), a.repeats)
            pages = timed(lambda: get("/"), a.repeats)
            filtered = timed(lambda: get("/?state=unlabelled&q=IMO9001"), a.repeats)
            keys = [f"chips/c{i:06d}.png" for i in range(a.labels)]
            it = iter(keys)

            def label() -> None:
                body = json.dumps({"path": next(it), "label": "laden"}).encode()
                req = urllib.request.Request(url + "/api/label", data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "X-Shipload-Token": token})
                urllib.request.urlopen(req, timeout=30).read()

            rtt = timed(label, a.labels)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    med = statistics.median
    p95 = lambda xs: sorted(xs)[int(0.95 * (len(xs) - 1))]  # noqa: E731
    ms = lambda x: f"{1000 * x:7.1f} ms"  # noqa: E731
    print(f"{a.n:,} predictions; server start to first page served: {startup:.2f} s")
    print(f"  first page (cold, right after start)  {ms(first)}")
    print(f"  floor: GET /api/counts    median {ms(med(floor))}   p95 {ms(p95(floor))}")
    print(f"  page  GET /                median {ms(med(pages))}   p95 {ms(p95(pages))}   "
          f"{med(pages) / med(floor):.1f}x floor   (target < 1000 ms)")
    print(f"  filtered page              median {ms(med(filtered))}   p95 {ms(p95(filtered))}   "
          f"{med(filtered) / med(floor):.1f}x floor")
    print(f"  label round-trip ({a.labels})    median {ms(med(rtt))}   p95 {ms(p95(rtt))}   "
          f"{med(rtt) / med(floor):.1f}x floor   (target < 50 ms)")


if __name__ == "__main__":
    main()
