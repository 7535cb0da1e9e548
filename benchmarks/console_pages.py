"""Console page speed: the training-job list with 1,000 jobs and a tuning job with 200 trials.

Records are created directly in a temporary registry (no training). The console runs on
127.0.0.1 under uvicorn (one process, as ``fmkit console`` runs it). Two timings per page:

- time to first byte: a fresh HTTP connection, GET, until the status line and headers
  arrive (median and max of ``--repeat`` requests);
- rendered in the browser: headless Chromium (Debian's chromium + chromium-driver, driven by
  Selenium) loads the page with its CSS and script; Navigation Timing's ``loadEventEnd -
  startTime`` (median and max of ``--repeat`` loads).

Targets (issue 17): first byte under 300 ms, rendered under 1 s.

    .venv/bin/python benchmarks/console_pages.py [--jobs 1000] [--trials 200] [--repeat 10]
        [--append]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from console.browser import available, chromium, console_server  # noqa: E402
from console.records import add_tuning_job  # noqa: E402


def fill(home: Path, n_jobs: int, n_trials: int) -> None:
    """``n_jobs`` finished training jobs (10 epochs each) and a tuning job of ``n_trials``."""
    import json
    import random

    from fmkit.registry import Registry

    reg = Registry(home)
    rng = random.Random(0)
    t0 = time.time() - 86400
    statuses = ["Completed"] * 8 + ["Failed", "Stopped"]

    def insert(conn):  # one transaction: the registry's own tables, as jobs/ writes them
        for i in range(n_jobs):
            name = f"bench-job-{i:04d}"
            start = t0 + 60 * i
            hp = {"predictor_type": "regressor" if i % 2 else "binary_classifier",
                  "num_factors": 8 * (1 + i % 8), "solver": ["sgd", "mcmc", "als"][i % 3],
                  "epochs": 10}
            metric = ({"test:rmse": 0.9 + rng.random() * 0.1} if i % 2
                      else {"test:binary_classification_accuracy": 0.7 + rng.random() * 0.02})
            conn.execute(
                "INSERT INTO training_jobs (name, status, hyperparameters, channels, "
                "final_metrics, model_dir, start_time, end_time, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, statuses[i % 10], json.dumps(hp), json.dumps({"train": "/d/train"}),
                 json.dumps(metric), f"/models/{name}", start, start + 30 + i % 50, "cli"))
            conn.executemany(
                "INSERT INTO epoch_metrics (job_name, epoch, metrics, time) VALUES (?, ?, ?, ?)",
                [(name, ep, json.dumps({"train:rmse": 1.2 - 0.02 * ep}), start + ep)
                 for ep in range(10)])

    reg.db.write(insert)
    add_tuning_job(reg, "bench-tune", trials=n_trials)


def ttfb(url: str) -> float:
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1] if url.count("/") > 2 else "/"
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    t = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    first = time.perf_counter() - t
    body = resp.read()
    conn.close()
    assert resp.status == 200 and body, (url, resp.status)
    return first


def rendered(driver, url: str) -> float:
    driver.get(url)  # returns after the load event
    ms = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n.loadEventEnd - n.startTime;")
    return float(ms) / 1000.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    why = available()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        fill(home, args.jobs, args.trials)
        print(f"records: {args.jobs} jobs + 1 tuning job of {args.trials} trials in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        pages = [
            (f"training jobs, first page (200 of {args.jobs})", "/jobs"),
            (f"training jobs, all {args.jobs}", f"/jobs?limit={args.jobs}"),
            (f"tuning job, {args.trials} trials", "/tuning/bench-tune"),
            ("one training job (10 epochs)", "/jobs/bench-job-0001"),
        ]
        rows = []
        with console_server(home) as base:
            for _, path in pages:  # warm up: imports, SQLite page cache
                ttfb(base + path)
            timings = {path: [ttfb(base + path) for _ in range(args.repeat)] for _, path in pages}
            render: dict[str, list[float]] = {}
            if why is None:
                with chromium() as driver:
                    for _, path in pages:
                        rendered(driver, base + path)
                        render[path] = [rendered(driver, base + path) for _ in range(args.repeat)]
            for label, path in pages:
                size = len(http_get(base + path))
                r = render.get(path)
                rows.append((label, path, size, statistics.median(timings[path]),
                             max(timings[path]), statistics.median(r) if r else None,
                             max(r) if r else None))
    lines = ["| page | HTML bytes | first byte, median (max) "
             "| rendered in Chromium, median (max) |",
             "|---|---:|---:|---:|"]
    for label, path, size, tm, tx, rm, rx in rows:
        shown = f"{rm * 1000:.0f} ms ({rx * 1000:.0f})" if rm is not None else f"skipped: {why}"
        lines.append(f"| {label} (`{path}`) | {size:,} | {tm * 1000:.0f} ms ({tx * 1000:.0f}) "
                     f"| {shown} |")
    table = "\n".join(lines)
    print(table)
    if args.append:
        load = os.getloadavg()[0]
        section = (
            f"\n## Console pages ({time.strftime('%Y-%m-%d')})\n\n"
            f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; load "
            f"average at the start {load:.2f}. Command: `python benchmarks/console_pages.py "
            f"--jobs {args.jobs} --trials {args.trials} --repeat {args.repeat}`. The console "
            "under uvicorn on 127.0.0.1 over a temporary registry; first byte over a fresh "
            "connection; rendered = Navigation Timing loadEventEnd in headless Chromium "
            f"(Debian's chromium, Selenium). Targets: first byte < 300 ms, rendered < 1 s.\n\n"
            + table + "\n")
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(section)


def http_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (127.0.0.1)
        return bytes(resp.read())


if __name__ == "__main__":
    main()
