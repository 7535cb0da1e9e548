"""Multi-process scaling on CPU: 1 vs 2 gloo processes, rows/s, time to a target AUC.

Data: synthetic click logs (``make_click_data``: 39 fields, one key per field, Zipf within
a field, labels from a planted FM). Both runs see the same global batches' worth of rows
per step (1 process: ``--batch`` rows; N processes: ``--batch / N`` each), train for
``--epochs`` epochs and score the held-out rows after every epoch (validation channel,
gathered over processes). Per step the workers time the gradient exchange separately
from the rest, and count the bytes they send, which feeds the N-node model in
docs/distributed.md.

Run: ``python benchmarks/scaling_cpu.py [--rows 200000]``; appends to benchmarks/RESULTS.md.
The machine may be shared with other work: compare the two columns of one run only.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_click_data
from fmkit.distributed.launch import launch
from fmkit.engine.trainer import fit
from fmkit.metrics import auc


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.marks.append((time.perf_counter() - self.start, logs["validation:auc"]))


def _timed_strategy() -> Any:
    from fmkit.distributed.strategy import DistributedStrategy

    class Timed(DistributedStrategy):
        comm_s = 0.0

        def reduce_gradients(self, *a: Any) -> Any:  # type: ignore[override]
            t0 = time.perf_counter()
            out = super().reduce_gradients(*a)
            self.comm_s += time.perf_counter() - t0
            return out

    return Timed()


def worker(values: dict[str, Any], train: Any, val: Any) -> dict[str, Any]:
    """One process of the N-process run (also used with N = 1 via launch)."""
    from fmkit.io.channels import row_range

    strategy = _timed_strategy()
    r, n = strategy.rank, strategy.world_size
    a, b = row_range(train.n_rows, rank=r, world_size=n)
    c, d = row_range(val.n_rows, rank=r, world_size=n)
    clock = _Clock()
    t0 = time.perf_counter()
    result = fit(FMConfig.from_values(values), train.slice(a, b), validation=val.slice(c, d),
                 strategy=strategy, callbacks=[clock])
    wall = time.perf_counter() - t0
    train_s = sum(h["seconds"] for h in result.history)
    return {"history": result.history, "marks": clock.marks, "wall": wall,
            "train_s": train_s, "comm_s": strategy.comm_s, "steps": strategy.steps,
            "bytes_sent": strategy.bytes_sent}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=200_000)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4096, help="global batch (rows per step)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--procs", default="1,2")
    args = ap.parse_args()
    data = make_click_data(args.rows + 50_000, feature_dim=args.features, seed=0)
    train, val = data.batch.slice(0, args.rows), data.batch.slice(args.rows, args.rows + 50_000)
    planted = auc(val.labels, 1 / (1 + np.exp(-data.logits[args.rows:])))
    base = dict(predictor_type="binary_classifier", num_factors=args.k, epochs=args.epochs,
                factors_lr=0.01, linear_lr=0.01, bias_lr=0.01, factors_wd=1e-6,
                linear_wd=1e-6, shuffle=False, device="cpu", seed=0)
    runs = {}
    for n in [int(x) for x in args.procs.split(",")]:
        values = {**base, "mini_batch_size": args.batch // n}
        print(f"{n} process(es), {args.batch // n} rows each per step ...", flush=True)
        runs[n] = launch(worker, (values, train, val), nprocs=n)
    target = min(max(a for _, a in r["marks"]) for r in runs.values()) - 0.002
    lines = [f"## Multi-process scaling on CPU, gloo ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"- machine: `{subprocess.run(['uname', '-a'], capture_output=True, text=True).stdout.strip()}`, "
             f"nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}, "
             f"{platform.python_version()}; shared with other work (timings noisy); workers use "
             "cores / N intra-op threads each",
             f"- command: `python benchmarks/scaling_cpu.py --rows {args.rows} --batch {args.batch} "
             f"--epochs {args.epochs}`",
             f"- data: click logs, 39 fields, {args.features:,} features, {args.rows:,} train + "
             f"50,000 held-out rows, k = {args.k}, global batch {args.batch}; planted AUC "
             f"{planted:.4f}; target AUC {target:.4f} (best AUC both reach, less 0.002)",
             "",
             "| processes | rows/s (last epoch) | step ms | of which exchange ms | bytes sent/step/process "
             "| held-out AUC per epoch | seconds to target |",
             "|---|---|---|---|---|---|---|"]
    for n, r in runs.items():
        steps_per_epoch = max(r["steps"] // args.epochs, 1) if n > 1 else -(-args.rows // args.batch)
        step_ms = r["train_s"] / (steps_per_epoch * args.epochs) * 1e3
        comm_ms = r["comm_s"] / max(r["steps"], 1) * 1e3 if n > 1 else 0.0
        per_step = r["bytes_sent"] / max(r["steps"], 1) if n > 1 else 0
        to_target = next((t for t, a in r["marks"] if a >= target), float("nan"))
        aucs = ", ".join(f"{a:.4f}" for _, a in r["marks"])
        lines.append(f"| {n} | {r['history'][-1]['rows_per_s']:,.0f} | {step_ms:.1f} | "
                     f"{comm_ms:.2f} | {per_step:,.0f} | {aucs} | {to_target:.1f} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    results = Path(__file__).with_name("RESULTS.md")
    with results.open("a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
