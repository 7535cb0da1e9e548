"""Quality on MovieLens 100K (ua.base -> ua.test): SageMaker's settings vs fmkit's defaults.

Runs, each with 3 seeds (median and spread):

- binary (rating >= 4) with the SageMaker notebook's settings: num_factors 64,
  mini_batch_size 1000, epochs 100, other SageMaker defaults;
- binary and rating regression with fmkit's recommended defaults (``fmkit train`` given only
  predictor_type), without and with side features (age, gender, occupation, genres); with
  side features the defaults train a ``user_item`` model (``interactions=auto``), and the
  ordinary FM on the same rows (``interactions=all``) is shown beside it;
- the wall time of a whole ``fmkit train`` command (process start to exit) against xLearn's
  FM on the same split and file, if xlearn is installed.

Run: ``python benchmarks/movielens_quality.py [--data-dir ../shared/data/ml-100k]``;
appends to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fmkit.config import FMConfig
from fmkit.datasets.movielens import SIDE_SCALES, load_movielens
from fmkit.engine.trainer import fit

SEEDS = (0, 1, 2)
SAGEMAKER_NOTEBOOK = {"num_factors": 64, "mini_batch_size": 1000, "epochs": 100}


def run(data, predictor_type: str, values: dict, defaults: str) -> list[dict]:
    out = []
    for seed in SEEDS:
        cfg = FMConfig.from_values(dict(values, predictor_type=predictor_type, seed=seed),
                                   defaults=defaults)
        t0 = time.perf_counter()
        result = fit(cfg, data.train, test=data.test, vocabulary=data.vocabulary)
        out.append({**result.metrics, "seconds": time.perf_counter() - t0})
    return out


def summary(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def whole_train_seconds(data_dir: str, work: Path) -> dict[str, float]:
    """Wall time of `fmkit train` as a command vs xLearn's FM on the same libsvm file."""
    env = dict(os.environ, USER=os.environ.get("USER", "bench"))
    fmkit = [sys.executable, "-m", "fmkit"]
    subprocess.run(fmkit + ["prepare", "movielens", "--data-dir", data_dir, "--output",
                            str(work / "d"), "--format", "libsvm"], check=True,
                   capture_output=True, env=env)
    t0 = time.perf_counter()
    subprocess.run(fmkit + ["train", "--train", str(work / "d" / "train"), "--test",
                            str(work / "d" / "test"), "--model-dir", str(work / "m"),
                            "--predictor-type", "binary_classifier", "--no-progress"],
                   check=True, capture_output=True, env=env)
    out = {"fmkit train (command, fmkit defaults)": time.perf_counter() - t0}
    try:
        import xlearn  # noqa: F401
    except ImportError:
        return out
    script = f"""
import time, xlearn as xl
fm = xl.create_fm(); fm.setTrain({str(work / 'd' / 'train' / 'train.libsvm')!r})
fm.setValidate({str(work / 'd' / 'test' / 'test.libsvm')!r})
fm.fit({{"task": "binary", "lr": 0.1, "lambda": 0.002, "k": 16, "epoch": 10, "opt": "adagrad",
         "nthread": 2, "metric": "acc"}}, {str(work / 'xl.model')!r})
"""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, env=env,
                   cwd=work)
    out["xLearn FM (command, k=16, 10 epochs)"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get(
        "FMKIT_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared/data/ml-100k")))
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    binary = load_movielens(args.data_dir, split="ua", target="binary")
    rating = load_movielens(args.data_dir, split="ua", target="rating")
    binary_side = load_movielens(args.data_dir, split="ua", target="binary", side_features=True)
    rating_side = load_movielens(args.data_dir, split="ua", target="rating", side_features=True)
    rows = []
    acc, ce, f1, auc = ("test:binary_classification_accuracy",
                        "test:binary_classification_cross_entropy", "test:binary_f_beta",
                        "test:auc")
    r = run(binary, "binary_classifier", SAGEMAKER_NOTEBOOK, "sagemaker")
    rows.append(("binary, SageMaker notebook settings (k=64, mbs=1000, 100 epochs)",
                 f"acc {summary(r, acc)}, CE {summary(r, ce)}, F1 {summary(r, f1)}, "
                 f"AUC {summary(r, auc)}", summary(r, "seconds")))
    ordinary = {"interactions": "all"}
    for name, data, values in (
            ("binary, fmkit defaults", binary, {}),
            ("binary, fmkit defaults + side features", binary_side, {}),
            ("binary, side features, interactions=all", binary_side, ordinary)):
        r = run(data, "binary_classifier", values, "fmkit")
        rows.append((name, f"acc {summary(r, acc)}, AUC {summary(r, auc)}, CE {summary(r, ce)}, "
                           f"F1 {summary(r, f1)}", summary(r, "seconds")))
    for name, data, values in (
            ("rating, fmkit defaults", rating, {}),
            ("rating, fmkit defaults + side features", rating_side, {}),
            ("rating, side features, interactions=all", rating_side, ordinary)):
        r = run(data, "regressor", values, "fmkit")
        rows.append((name, f"RMSE {summary(r, 'test:rmse')}, MAE "
                           f"{summary(r, 'test:absolute_loss')}", summary(r, "seconds")))
    with tempfile.TemporaryDirectory() as tmp:
        walls = whole_train_seconds(args.data_dir, Path(tmp))
    names = ("num_factors", "epochs", "mini_batch_size", "optimizer", "bias_lr", "linear_lr",
             "factors_lr", "linear_wd", "factors_wd", "factors_init_sigma", "shuffle",
             "interactions")
    shown = {}
    for predictor_type in ("binary_classifier", "regressor"):
        defaults = FMConfig.from_values({"predictor_type": predictor_type}).to_dict()
        shown[predictor_type] = {k: defaults[k] for k in names}
    lines = [
        f"\n## MovieLens 100K quality, ua.base -> ua.test ({time.strftime('%Y-%m-%d')})\n",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; other work "
        "shared the machine. Command: `python benchmarks/movielens_quality.py`. "
        f"Median (min-max) over seeds {list(SEEDS)}.",
        f"fmkit defaults: `{json.dumps(shown)}`; side feature values: "
        f"`{json.dumps(SIDE_SCALES)}`.\n",
        "| setup | test metrics | fit seconds |",
        "|---|---|---:|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append("\nSageMaker's published result with the notebook's settings: accuracy 0.693, "
                 "cross-entropy 0.579, F1 0.734; its tuned best 0.697. Targets for fmkit's "
                 "defaults: accuracy >= 0.712, AUC >= 0.773 (xLearn), RMSE <= 0.925.\n")
    lines.append("| whole command on ua (binary) | wall seconds |")
    lines.append("|---|---:|")
    lines += [f"| {k} | {v:.2f} |" for k, v in walls.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.results, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
