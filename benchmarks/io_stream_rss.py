"""Streaming in constant memory: peak RSS while a file 10x larger is read through iter_batches.

For each format (recordIO-protobuf, libsvm) a small and a 10x larger file of synthetic
click data (39 one-hot fields; five ``make_click_data`` chunks written over and over with
fmkit's writers) are streamed by a fresh subprocess with ``fmkit.io.iter_batches(path,
1000)``, which does a small numpy computation per batch (sums and a label mean), as a
trainer's loop would.
The subprocess reports its peak RSS (``VmHWM`` of /proc/self/status; ``ru_maxrss`` would
carry the parent's high-water mark across fork+exec) and its RSS right after the imports;
peak RSS should stay flat (within 20%) while the file grows 10x.

    .venv/bin/python benchmarks/io_stream_rss.py --append
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fmkit.io as fio
from fmkit.datasets.synthetic import make_click_data
from fmkit.sparse import SparseBatch

CHILD = r"""
import json, sys, time
import numpy as np
import fmkit.io as fio
def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
base = status_kb("VmRSS")
t = time.perf_counter()
rows = nnz = 0
total = 0.0
clicks = 0.0
for batch in fio.iter_batches(sys.argv[1], 1000, require_labels=True, zero_based=False):
    rows += batch.n_rows
    nnz += batch.nnz
    total += float(np.sum(batch.values, dtype=np.float64))
    clicks += float(batch.labels.sum())
seconds = time.perf_counter() - t
print(json.dumps({"rows": rows, "nnz": nnz, "seconds": seconds, "base_kb": base,
                  "peak_kb": status_kb("VmHWM"),
                  "click_rate": clicks / max(rows, 1)}))
"""


def make_file(path: Path, rows: int, chunks: list[SparseBatch]) -> float:
    """Write ``rows`` click-data rows, cycling through ``chunks``; return the size in MB."""
    size = chunks[0].n_rows
    with fio.open_writer(str(path), feature_dim=200_000) as w:
        for i, lo in enumerate(range(0, rows, size)):
            w.write(chunks[i % len(chunks)].slice(0, min(size, rows - lo)))
    return path.stat().st_size / 1e6


def stream(path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordio-rows", type=int, default=1_000_000)
    ap.add_argument("--libsvm-rows", type=int, default=200_000)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="fmkit-rss-"))
    scratch.mkdir(parents=True, exist_ok=True)
    chunks = [make_click_data(args.chunk, seed=i).batch for i in range(5)]
    lines = ["```",
             f"{'format':<18} {'rows':>10} {'file MB':>9} {'MB/s':>7} {'rows/s':>10} "
             f"{'RSS after import':>17} {'peak RSS':>9}"]
    verdicts = []
    try:
        for fmt, ext, small in (("recordio-protobuf", "rec", args.recordio_rows),
                                ("libsvm", "svm", args.libsvm_rows)):
            peaks = []
            for rows in (small, small * args.factor):
                path = scratch / f"click-{rows}.{ext}"
                t = time.perf_counter()
                mb = make_file(path, rows, chunks)
                made = time.perf_counter() - t
                r = stream(path)
                assert r["rows"] == rows and r["nnz"] == rows * 39
                peaks.append(r["peak_kb"] / 1024)
                lines.append(f"{fmt:<18} {rows:>10} {mb:>9.0f} {mb / r['seconds']:>7.0f} "
                             f"{rows / r['seconds']:>10,.0f} {r['base_kb'] / 1024:>14.0f} MB "
                             f"{r['peak_kb'] / 1024:>6.0f} MB")
                print(lines[-1], f"(file made in {made:.0f} s)", flush=True)
                path.unlink()
            ratio = peaks[1] / peaks[0]
            verdicts.append(f"- {fmt}: peak RSS x{ratio:.2f} for {args.factor}x the rows "
                            f"({'flat, within 20%' if ratio <= 1.2 else 'NOT within 20%'})")
            print(verdicts[-1], flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)
    lines.append("```")
    if args.append:
        header = [
            "## io_stream_rss: peak RSS while streaming a 10x larger file (iter_batches)",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()} (shared with "
            "other work while measured: throughput figures are noisy)",
            "- synthetic click data (make_click_data, 39 fields, feature_dim 200000), "
            "batch_size 1000, a fresh subprocess per file; MB/s and rows/s are the stream's",
            f"- command: `.venv/bin/python benchmarks/io_stream_rss.py {' '.join(sys.argv[1:])}`",
            "",
        ]
        with open(Path(__file__).parent / "RESULTS.md", "a") as f:
            f.write("\n" + "\n".join(header + lines + [""] + verdicts) + "\n")


if __name__ == "__main__":
    main()
