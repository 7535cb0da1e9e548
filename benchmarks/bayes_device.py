"""Bayesian FM on a quiet machine: numba (CPU) vs torch (CUDA) vs myFM, one seed per task.

Meant for a GPU machine: fits MovieLens 100K ua (rating and rating >= 4, with and without
side features; rank 8, 200 sweeps) with fmkit's numba backend, its torch backend on CUDA
and, when importable, myFM; then a synthetic click log (``--click-rows`` rows, 39 one-hot
fields, 200k keys) with both fmkit backends for ``--click-sweeps`` sweeps.

Run::

    python benchmarks/bayes_device.py --data ../shared/data/ml-100k [--click-rows 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
import types
from typing import Any

import numpy as np

from fmkit.bayes import fit_mcmc
from fmkit.bayes.gibbs import default_burn_in
from fmkit.config import FMConfig
from fmkit.datasets.movielens import load_movielens
from fmkit.datasets.synthetic import make_click_data
from fmkit.inference.predictor import Predictor
from fmkit.metrics import compute_metrics

KEY = {"rating": "test:rmse", "binary": "test:auc"}


def _myfm() -> Any:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import importlib.metadata as md

        shim = types.ModuleType("pkg_resources")
        shim.DistributionNotFound = type("DistributionNotFound", (Exception,), {})
        shim.get_distribution = lambda n: types.SimpleNamespace(version=md.version(n))
        sys.modules["pkg_resources"] = shim
    try:
        import myfm
    except ImportError:
        return None
    return myfm


def _timed(fn: Any) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--click-rows", type=int, default=1_000_000)
    ap.add_argument("--click-sweeps", type=int, default=10)
    args = ap.parse_args()
    import torch

    cuda = torch.cuda.is_available()
    print(f"machine: {' '.join(platform.uname())}, nproc {os.cpu_count()}, "
          f"cuda {torch.cuda.get_device_name(0) if cuda else 'none'}", flush=True)
    myfm = _myfm()
    backends = ["numba"] + (["torch"] if cuda else [])
    warm = load_movielens(args.data, split="ua", target="rating")
    for b in backends:  # compile numba kernels, initialise CUDA
        fit_mcmc(FMConfig.from_values({"predictor_type": "regressor", "num_factors": 2,
                                       "epochs": 3, "burn_in": 1, "device":
                                       "cuda" if b == "torch" else "cpu"}),
                 warm.train.slice(0, 2000), backend=b)
    for task in ("rating", "binary"):
        for side in (False, True):
            data = load_movielens(args.data, split="ua", target=task, side_features=side)
            pt = "regressor" if task == "rating" else "binary_classifier"
            burn = default_burn_in(args.sweeps, pt)
            groups = data.vocabulary.groups()
            print(f"{task}, side features {side}, burn-in {burn}:", flush=True)
            for b in backends:
                cfg = FMConfig.from_values({
                    "predictor_type": pt, "num_factors": 8, "epochs": args.sweeps,
                    "burn_in": burn, "keep_samples": args.sweeps - burn, "seed": 0,
                    "device": "cuda" if b == "torch" else "cpu"})
                (art, _), wall, cpu = _timed(lambda: fit_mcmc(cfg, data.train, groups=groups,
                                                              backend=b))
                m = compute_metrics(pt, data.test.labels,
                                    Predictor(art).predict_scores(data.test))
                print(f"  fmkit {b:<6} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
                      f"{KEY[task]} {m[KEY[task]]:.4f}", flush=True)
            if myfm is not None:
                F = data.vocabulary.feature_dim
                X = data.train.to_csr(F).astype(np.float64)
                cls = myfm.MyFMRegressor if task == "rating" else myfm.MyFMClassifier
                model = cls(rank=8, random_seed=0)

                def fit() -> Any:
                    with contextlib.redirect_stderr(io.StringIO()):
                        return model.fit(X, data.train.labels.astype(np.float64),
                                         n_iter=args.sweeps,
                                         n_kept_samples=args.sweeps - burn,
                                         group_shapes=np.bincount(groups).tolist())

                _, wall, cpu = _timed(fit)
                Xt = data.test.to_csr(F).astype(np.float64)
                scores = model.predict(Xt) if task == "rating" else model.predict_proba(Xt)
                m = compute_metrics(pt, data.test.labels, scores)
                print(f"  myFM         {wall:6.2f} s wall {cpu:6.2f} s CPU  "
                      f"{KEY[task]} {m[KEY[task]]:.4f}", flush=True)
    click = make_click_data(args.click_rows + 100_000, num_fields=39, feature_dim=200_000)
    train = click.batch.slice(0, args.click_rows)
    test = click.batch.slice(args.click_rows, args.click_rows + 100_000)
    groups = np.arange(200_000) // (200_000 // 39)
    print(f"click log: {args.click_rows} rows x 39 fields, {args.click_sweeps} sweeps:",
          flush=True)
    for b in backends:
        cfg = FMConfig.from_values({
            "predictor_type": "binary_classifier", "num_factors": 8,
            "epochs": args.click_sweeps, "burn_in": args.click_sweeps // 2, "keep_samples": 3,
            "seed": 0, "device": "cuda" if b == "torch" else "cpu"})
        (art, _), wall, cpu = _timed(lambda: fit_mcmc(cfg, train, groups=groups, backend=b))
        m = compute_metrics("binary_classifier", test.labels,
                            Predictor(art).predict_scores(test))
        print(f"  fmkit {b:<6} {wall:6.2f} s wall ({wall / args.click_sweeps:.3f} s/sweep) "
              f"AUC {m['test:auc']:.4f}", flush=True)


if __name__ == "__main__":
    main()
