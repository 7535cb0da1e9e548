"""Serving benchmark: fmkit's server against a naive Flask + torch server, side by side.

Both servers serve the same model (SageMaker's MovieLens u1 regressor, F=2625, K=64, when
../shared/data/sagemaker-fm-u1 exists; else a random model of that size) on 127.0.0.1, and a
separate load process (benchmarks/serve_load.py) sends single-instance sparse JSON requests
({"instances": [{"data": {"features": {"keys": [u, 943 + m], "shape": [2625], ...}}}]}):

- latency: sequential requests on one keep-alive connection: p50 / p99;
- throughput: 32 concurrent keep-alive clients for a fixed time: requests/s (and p99).

    .venv/bin/python benchmarks/serve_latency.py [--duration 5] [--requests 2000] [--append]

``--append`` adds a section to benchmarks/RESULTS.md. Timings are noisy on a shared machine:
compare the ratios of the two servers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED_MODEL = ROOT.parent / "shared" / "data" / "sagemaker-fm-u1"


def model_dir(tmp: Path) -> tuple[str, str]:
    """Return (model path, description)."""
    if (SHARED_MODEL / "model.tar.gz").is_file():
        return str(SHARED_MODEL / "model.tar.gz"), "SageMaker u1 regressor (F=2625, K=64)"
    from fmkit.artifact import Artifact, save

    rng = np.random.default_rng(0)
    art = Artifact.from_point(3.5, rng.normal(0, 0.1, 2625), rng.normal(0, 0.05, (2625, 64)),
                              "regressor")
    save(art, tmp / "fm")
    return str(tmp / "fm"), "random regressor (F=2625, K=64)"


def free_port() -> int:
    from fmkit.jobs.endpoints import free_port as fp

    return fp()


def wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    from fmkit.jobs.endpoints import ping

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        if ping(f"http://127.0.0.1:{port}", timeout_s=0.5):
            return
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def start_fmkit(model: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fmkit", "serve", "--model-dir", model,
                             "--port", str(port), "--workers", str(workers),
                             "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_ready(port, proc)
    return proc, port


def start_naive(model: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_naive_flask.py"), "--model-dir",
                             model, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_ready(port, proc)
    return proc, port


def load(port: int, body_file: str, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, str(HERE / "serve_load.py"), "--port", str(port), "--body-file",
           body_file, "--mode", mode, "--requests", str(args.requests), "--duration",
           str(args.duration), "--concurrency", str(args.concurrency)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]

    tmp = Path(tempfile.mkdtemp(prefix="fmkit-bench-"))
    model, description = model_dir(tmp)
    body = {"instances": [{"data": {"features": {"keys": [195, 943 + 241], "shape": [2625],
                                                 "values": [1.0, 1.0]}}}]}
    body_file = tmp / "request.json"
    body_file.write_text(json.dumps(body))

    rows = []
    for name, starter in (("naive Flask + torch", lambda: start_naive(model)),
                          ("fmkit serve --workers 1", lambda: start_fmkit(model, 1)),
                          ("fmkit serve --workers 2", lambda: start_fmkit(model, 2))):
        proc, port = starter()
        try:
            lat = load(port, str(body_file), "latency", args)
            thr = load(port, str(body_file), "throughput", args)
        finally:
            stop(proc)
        rows.append((name, lat, thr))
        print(f"{name:26s} latency p50 {lat['p50_ms']:7.3f} ms  p99 {lat['p99_ms']:7.3f} ms | "
              f"{args.concurrency} clients: {thr['rps']:8.1f} req/s, p99 {thr['p99_ms']:7.2f} ms"
              f"  statuses {thr['statuses']}", flush=True)

    naive_rps = rows[0][2]["rps"]
    lines = [
        "| server | p50 (ms) | p99 (ms) | req/s, 32 clients | p99 under load (ms) | x naive |",
        "|---|---|---|---|---|---|",
    ]
    for name, lat, thr in rows:
        lines.append(f"| {name} | {lat['p50_ms']:.3f} | {lat['p99_ms']:.3f} | {thr['rps']:.0f} | "
                     f"{thr['p99_ms']:.2f} | {thr['rps'] / naive_rps:.1f} |")
    table = "\n".join(lines)
    print(table)
    if args.append:
        section = (
            f"\n## Serving: single-instance sparse JSON, fmkit vs naive Flask + torch "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
            f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()}, load average "
            f"{load_start:.1f} at the start; other "
            "helpers' jobs shared these 2 cores during the run, so absolute numbers are noisy; "
            "compare the rows of one run.\n"
            f"- model: {description}; load from a separate process on 127.0.0.1 "
            f"(benchmarks/serve_load.py, keep-alive); latency = {args.requests} sequential "
            f"requests; throughput = {args.concurrency} concurrent clients for "
            f"{args.duration:g} s.\n"
            f"- command: `.venv/bin/python benchmarks/serve_latency.py --append`\n\n{table}\n"
        )
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write(section)


if __name__ == "__main__":
    main()
