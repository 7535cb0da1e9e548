"""Tuning quality on MovieLens 100K ``ua``, binary target (rating >= 4): issue 6, item 4.

Runs one bayesian tuning job over the FM preset space (trial 1 = fmkit's recommended
defaults, so the job shows whether tuning improves on them), ``--max-parallel-jobs 2``,
with a 10-minute budget, and compares the best test accuracy with the defaults and with
SageMaker's published tuned best (0.697). Appends a section to benchmarks/RESULTS.md with
``--record``.

    .venv/bin/python benchmarks/tune_movielens.py --data-dir ../shared/data/ml-100k --record

Equivalent command line (after ``fmkit prepare movielens --split ua --target binary``):

    fmkit tune --train DIR/train --test DIR/test --predictor-type binary_classifier \\
        --objective test:binary_classification_accuracy --max-jobs 20 \\
        --max-parallel-jobs 2 --strategy bayesian --include-defaults --max-run-seconds 600
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

SAGEMAKER_TUNED_BEST = 0.697
HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(HERE.parents[1] / "shared/data/ml-100k"))
    parser.add_argument("--max-jobs", type=int, default=20)
    parser.add_argument("--max-parallel-jobs", type=int, default=2)
    parser.add_argument("--strategy", default="bayesian")
    parser.add_argument("--max-run-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("fmkit.quality", "fmkit.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from fmkit.datasets.movielens import load_movielens
    from fmkit.registry import Registry
    from fmkit.tuning import Tuner

    data = load_movielens(args.data_dir, split="ua", target="binary")
    objective = "test:binary_classification_accuracy"
    with tempfile.TemporaryDirectory() as home:
        registry = Registry(home)
        tuner = Tuner({"predictor_type": "binary_classifier"}, None,
                      objective_metric_name=objective, strategy=args.strategy,
                      max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel_jobs,
                      name="ml100k-ua-binary", registry=registry,
                      max_run_seconds=args.max_run_seconds, seed=args.seed,
                      include_defaults=True)
        started = time.perf_counter()
        result = tuner.fit(data.train, data.test, vocabulary=data.vocabulary)
        wall = time.perf_counter() - started
    trials = sorted(result.trials, key=lambda t: t.number)
    defaults = next((t for t in trials if t.number == 1), None)
    best = result.best_trial
    statuses: dict[str, int] = {}
    for t in trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        f"tuning job: {result.status}, {len(trials)} trials "
        f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}) in {wall:.0f} s "
        f"with {args.max_parallel_jobs} in parallel",
        f"trial 1 (fmkit defaults): {objective} = "
        f"{show(defaults.objective_value if defaults else None)} "
        f"({defaults.status if defaults else '-'}"
        f"{', ' + defaults.failure_reason if defaults and defaults.failure_reason else ''})",
        f"best trial {best.number if best else '-'}: {objective} = {show(result.best_value)}",
        f"SageMaker's published tuned best: {SAGEMAKER_TUNED_BEST:.3f}; margin "
        f"{(result.best_value or 0) - SAGEMAKER_TUNED_BEST:+.4f}",
        "best hyperparameters: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in result.best_hyperparameters.items()),
        "trials (number, status, objective, seconds): " + "; ".join(
            f"{t.number} {t.status} {show(t.objective_value)} {t.seconds:.0f}s"
            for t in trials),
    ]
    print("\n".join(lines))
    if args.record:
        uname = platform.uname()
        nproc = subprocess.run(["nproc"], capture_output=True, text=True,
                               check=False).stdout.strip()
        section = [
            "",
            f"## Tuning: MovieLens 100K ua binary, {args.max_jobs}-trial {args.strategy} job "
            "(benchmarks/tune_movielens.py)",
            "",
            f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: `{' '.join(uname)}`, nproc {nproc} (other work shared the machine, "
            "so the wall time is an upper bound)",
            f"- command: `.venv/bin/python benchmarks/tune_movielens.py --max-jobs "
            f"{args.max_jobs} --max-parallel-jobs {args.max_parallel_jobs} --strategy "
            f"{args.strategy} --max-run-seconds {args.max_run_seconds:g} --record`",
            "",
            *[f"- {line}" for line in lines],
            "",
        ]
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n".join(section))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
