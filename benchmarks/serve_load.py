"""HTTP load generator for the serving benchmarks; run as its own process.

Keep-alive HTTP/1.1 over raw asyncio sockets (cheap per request, so the client steals as
little CPU as possible from the server on a small machine).

    python benchmarks/serve_load.py --port 8080 --path /invocations --body-file req.json \
        --mode latency --requests 2000
    python benchmarks/serve_load.py --port 8080 --body-file req.json --mode throughput \
        --concurrency 32 --duration 5

Prints one JSON object: requests, errors, statuses, seconds, rps, p50_ms, p99_ms, mean_ms.
With ``--bodies-file`` (JSON list of {"body", "content_type"}) requests cycle through many
bodies (the soak benchmark's mix of good and bad requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _request(host: str, port: int, path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    close = False
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body, close
    body = await reader.readexactly(length) if length else b""
    return status, body, close


class _Load:
    def __init__(self, host: str, port: int, requests: list[bytes],
                 expect: list[int | None] | None = None) -> None:
        self.host, self.port, self.requests = host, port, requests
        self.expect = expect or [None] * len(requests)
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.sent = 0

    async def worker(self, stop_at: float | None, quota: int | None) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while True:
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                if quota is not None:
                    if self.sent >= quota:
                        return
                which = self.sent % len(self.requests)
                req = self.requests[which]
                self.sent += 1
                t0 = time.perf_counter()
                writer.write(req)
                status, _, close = await _read_response(reader)
                self.latencies.append(time.perf_counter() - t0)
                self.statuses[status] += 1
                if self.expect[which] is not None and status != self.expect[which]:
                    self.unexpected[f"body {which}: {status}"] += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(self.host, self.port)
        finally:
            writer.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.bodies_file:
        items = json.loads(Path(args.bodies_file).read_text())
        requests = [_request(args.host, args.port, it.get("path", args.path),
                             it["body"].encode("latin-1"), it["content_type"]) for it in items]
        expect = [it.get("expect") for it in items]
    else:
        body = Path(args.body_file).read_bytes()
        requests = [_request(args.host, args.port, args.path, body, args.content_type)]
        expect = None
    load = _Load(args.host, args.port, requests, expect)
    # warm-up on one connection
    warm = _Load(args.host, args.port, requests)
    await warm.worker(None, args.warmup)
    t0 = time.perf_counter()
    if args.mode == "latency":
        await load.worker(None, args.requests)
    else:
        stop = t0 + args.duration
        await asyncio.gather(*(load.worker(stop, None) for _ in range(args.concurrency)))
    seconds = time.perf_counter() - t0
    n = len(load.latencies)
    return {
        "mode": args.mode, "requests": n, "seconds": round(seconds, 3),
        "rps": round(n / seconds, 1),
        "p50_ms": round(1000 * _percentile(load.latencies, 0.50), 3),
        "p99_ms": round(1000 * _percentile(load.latencies, 0.99), 3),
        "mean_ms": round(1000 * sum(load.latencies) / max(1, n), 3),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "concurrency": 1 if args.mode == "latency" else args.concurrency,
        "unexpected": dict(load.unexpected),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/invocations")
    parser.add_argument("--body-file")
    parser.add_argument("--bodies-file")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--mode", choices=("latency", "throughput"), default="latency")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_run(args))))


if __name__ == "__main__":
    main()
