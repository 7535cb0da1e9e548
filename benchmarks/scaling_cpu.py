"""Multi-process scaling on CPU: 1 vs 2 gloo processes, rows/s, time to one process's accuracy.

Data: MovieLens 100K ua (``--data movielens``, the default: fmkit's defaults, binary
target, held-out metric accuracy on ua.test) or synthetic click logs (``--data click``:
39 fields, one key per field, Zipf within a field, labels from a planted FM; held-out
AUC). Every run trains the same global batch per step (``mini_batch_size`` is the global
batch: N processes take ``mini_batch_size / N`` rows each, docs/distributed.md), for the
same epochs, and scores the held-out rows after every epoch (validation channel, gathered
over processes). Runs:

- 1 process (``launch(nprocs=1)``: fit picks the numba CPU trainer, as ``fmkit train`` does);
- N processes on row-range shards, each shuffling its own (``fmkit train --instance-count N``);
- N processes on replicated data (``DistributedStrategy(replicated=True)``): each its part
  of the one-process global batches.

Reported: rows/s of the last epoch, step time and the part spent in the gradient exchange,
bytes sent per step, the held-out metric per epoch, and the seconds until a run first
reaches one process's final metric (less 0.002), which feeds docs/distributed.md.

Run: ``python benchmarks/scaling_cpu.py [--data movielens|click] [--procs 1,2]``; appends
to benchmarks/RESULTS.md. The machine may be shared with other work: compare the rows of
one run only.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from fmkit.config import FMConfig
from fmkit.distributed.launch import launch
from fmkit.engine.trainer import fit

HERE = Path(__file__).resolve().parent


class _Clock:
    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.start = time.perf_counter()
        self.marks: list[tuple[float, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self.marks.append((time.perf_counter() - self.start, logs[self.metric]))


def _timed_strategy(replicated: bool) -> Any:
    from fmkit.distributed.strategy import DistributedStrategy

    class Timed(DistributedStrategy):
        comm_s = 0.0

        def reduce_gradients(self, *a: Any) -> Any:  # type: ignore[override]
            t0 = time.perf_counter()
            out = super().reduce_gradients(*a)
            self.comm_s += time.perf_counter() - t0
            return out

    return Timed(replicated=replicated)


def worker(values: dict[str, Any], train: Any, val: Any, metric: str, replicated: bool,
           vocabulary: Any) -> dict[str, Any]:
    """One process of an N-process run (also N = 1, via launch)."""
    from fmkit.io.channels import row_range

    strategy = _timed_strategy(replicated)
    r, n = strategy.rank, strategy.world_size
    a, b = (0, train.n_rows) if replicated else row_range(train.n_rows, rank=r, world_size=n)
    c, d = row_range(val.n_rows, rank=r, world_size=n)
    clock = _Clock(metric)
    t0 = time.perf_counter()
    result = fit(FMConfig.from_values(values), train.slice(a, b), validation=val.slice(c, d),
                 strategy=strategy, callbacks=[clock], vocabulary=vocabulary)
    wall = time.perf_counter() - t0
    train_s = sum(h["seconds"] for h in result.history)
    return {"history": result.history, "marks": clock.marks, "wall": wall,
            "train_s": train_s, "comm_s": strategy.comm_s, "steps": strategy.steps,
            "bytes_sent": strategy.bytes_sent}


def _data(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], str, str, Any]:
    """(train, held-out, hyperparameters, metric key, description, vocabulary)."""
    if args.data == "movielens":
        from fmkit.datasets.movielens import load_movielens

        ml = load_movielens(args.data_dir, split="ua", target="binary")
        values = {"predictor_type": "binary_classifier", "seed": 0, "device": "cpu"}
        desc = (f"MovieLens 100K ua binary, {ml.train.n_rows:,} train + {ml.test.n_rows:,} "
                "held-out rows (ua.test), fmkit's defaults (k=32, 25 epochs, global batch "
                "256, adagrad)")
        return (ml.train, ml.test, values, "validation:binary_classification_accuracy", desc,
                ml.vocabulary)
    from fmkit.datasets.synthetic import make_click_data
    from fmkit.metrics import auc

    data = make_click_data(args.rows + 50_000, feature_dim=args.features, seed=0)
    train, val = data.batch.slice(0, args.rows), data.batch.slice(args.rows, args.rows + 50_000)
    planted = auc(val.labels, 1 / (1 + np.exp(-data.logits[args.rows:])))
    values = dict(predictor_type="binary_classifier", num_factors=args.k, epochs=args.epochs,
                  factors_lr=0.01, linear_lr=0.01, bias_lr=0.01, factors_wd=1e-6,
                  linear_wd=1e-6, shuffle=False, device="cpu", seed=0,
                  mini_batch_size=args.batch)
    desc = (f"click logs, 39 fields, {args.features:,} features, {args.rows:,} train + 50,000 "
            f"held-out rows, k = {args.k}, global batch {args.batch}, {args.epochs} epochs; "
            f"planted AUC {planted:.4f}")
    return train, val, values, "validation:auc", desc, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=("movielens", "click"), default="movielens")
    ap.add_argument("--data-dir", default=os.environ.get(
        "FMKIT_DATA_DIR", str(HERE.parents[1] / "shared" / "data" / "ml-100k")))
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=200_000)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4096, help="global batch (rows per step)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    train, val, values, metric, desc, vocab = _data(args)
    epochs = FMConfig.from_values(values).epochs
    runs: dict[str, tuple[int, dict[str, Any]]] = {}
    load_start = os.getloadavg()[0]
    for n in [int(x) for x in args.procs.split(",")]:
        for replicated in ((False,) if n == 1 else (False, True)):
            name = (f"{n} process" if n == 1 else
                    f"{n} processes, {'replicated data' if replicated else 'row-range shards'}")
            print(f"{name} ...", flush=True)
            runs[name] = (n, launch(worker, (values, train, val, metric, replicated, vocab),
                                    nprocs=n))
    one = next(r for n, r in runs.values() if n == 1)
    target = one["marks"][-1][1] - 0.002
    short = metric.split(":")[1]
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    lines = [f"## Multi-process scaling on CPU, gloo "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"- machine: `{uname}`, "
             f"nproc {os.cpu_count()}, Python {platform.python_version()}; load average "
             f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (shared "
             "with other work; both processes share the same 2 cores)",
             f"- command: `python benchmarks/scaling_cpu.py --data {args.data}"
             + ("" if args.data == "movielens" else
                f" --rows {args.rows} --batch {args.batch} --epochs {args.epochs}") + "`",
             f"- data: {desc}; target: one process's final held-out {short} less 0.002 = "
             f"{target:.4f}",
             "",
             f"| run | rows/s (last epoch) | step ms | of which exchange ms | bytes sent/step"
             f"/process | held-out {short}, first epochs ... last | final | seconds to "
             "target |",
             "|---|---|---|---|---|---|---|---|"]
    for name, (n, r) in runs.items():
        steps = r["steps"] if n > 1 else -(-train.n_rows // values.get(
            "mini_batch_size", FMConfig.from_values(values).mini_batch_size)) * epochs
        step_ms = r["train_s"] / max(steps, 1) * 1e3
        comm_ms = r["comm_s"] / max(r["steps"], 1) * 1e3 if n > 1 else 0.0
        per_step = r["bytes_sent"] / max(r["steps"], 1) if n > 1 else 0
        to_target = next((t for t, a in r["marks"] if a >= target), float("nan"))
        shown = [a for _, a in r["marks"]]
        curve = ", ".join(f"{a:.4f}" for a in shown[:3]) + (" ..." if len(shown) > 3 else "")
        lines.append(f"| {name} | {r['history'][-1]['rows_per_s']:,.0f} | {step_ms:.2f} | "
                     f"{comm_ms:.2f} | {per_step:,.0f} | {curve} | {shown[-1]:.4f} | "
                     f"{to_target:.1f} |")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with (HERE / "RESULTS.md").open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
