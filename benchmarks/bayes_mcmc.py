"""Bayesian FM on MovieLens 100K ua: fmkit's Gibbs sampler and ALS against myFM, side by side.

For each task (rating regression; binary label rating >= 4) with and without side features
(age bucket, gender, occupation, genres) and, with ``--implicit yes``, implicit feedback
(each row's user's training movies and movie's training raters), fits fmkit ``fit_mcmc``
and myFM's Gibbs sampler at the same rank, sweeps, burn-in and prior groups (one per
field), for several seeds, and reports fit wall time (median) and test metrics (mean +-
std). Both samplers get the implicit fields as relation blocks (myFM's ``RelationBlock``;
fmkit finds them itself). ``--interactions all,user_item`` also runs fmkit's user x item
model (pairs only between the user block and the item block; myFM has no such model, so
it runs the ordinary FM on the same rows). Then fmkit ALS.

Run::

    .venv/bin/python benchmarks/bayes_mcmc.py [--data ../shared/data/ml-100k] [--seeds 3]
        [--sweeps 200] [--rank 8] [--tasks rating,binary] [--side no,yes]
        [--implicit no] [--interactions all] [--no-myfm] [--append]

``--append`` adds the results to benchmarks/RESULTS.md. myFM is optional
(``pip install myfm``); its import needs ``pkg_resources``, shimmed here when setuptools
does not provide it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from fmkit.bayes import fit_als, fit_mcmc
from fmkit.bayes.gibbs import default_burn_in
from fmkit.bayes.relations import find_relations
from fmkit.config import FMConfig
from fmkit.datasets.movielens import load_movielens
from fmkit.inference.predictor import Predictor
from fmkit.metrics import compute_metrics

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "ml-100k"
KEYS = {"rating": ["test:rmse"],
        "binary": ["test:binary_classification_accuracy", "test:auc",
                   "test:binary_classification_cross_entropy"]}
SHORT = {"test:rmse": "RMSE", "test:binary_classification_accuracy": "acc",
         "test:auc": "AUC", "test:binary_classification_cross_entropy": "logloss"}


def _import_myfm() -> Any:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import importlib.metadata as md

        shim = types.ModuleType("pkg_resources")

        class DistributionNotFound(Exception):
            pass

        shim.DistributionNotFound = DistributionNotFound  # type: ignore[attr-defined]
        shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
            version=md.version(name))
        sys.modules["pkg_resources"] = shim
    import myfm

    return myfm


def run_fmkit(data: Any, task: str, seed: int, sweeps: int, rank: int, burn_in: int,
              interactions: str = "all") -> tuple[tuple[float, float], dict[str, float]]:
    predictor_type = "regressor" if task == "rating" else "binary_classifier"
    cfg = FMConfig.from_values({
        "predictor_type": predictor_type, "num_factors": rank, "epochs": sweeps,
        "burn_in": burn_in, "keep_samples": sweeps - burn_in, "seed": seed,
        "factors_init_sigma": 0.1, "feature_dim": data.vocabulary.feature_dim,
        "solver": "mcmc", "interactions": interactions})
    start, cpu = time.perf_counter(), time.process_time()
    artifact, _ = fit_mcmc(cfg, data.train, groups=data.vocabulary.groups(),
                           user_block=data.vocabulary.role_mask("user"))
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    scores = Predictor(artifact).predict_scores(data.test)
    return seconds, compute_metrics(predictor_type, data.test.labels, scores)


def run_myfm(myfm: Any, data: Any, task: str, seed: int, sweeps: int, rank: int,
             burn_in: int) -> tuple[tuple[float, float], dict[str, float]]:
    F = data.vocabulary.feature_dim
    X, rel = _myfm_relations(myfm, data.train.to_csr(F), data.vocabulary.groups())
    Xt, rel_t = _myfm_relations(myfm, data.test.to_csr(F), data.vocabulary.groups())
    groups = data.vocabulary.groups()
    shapes = np.bincount(groups).tolist()
    cls = myfm.MyFMRegressor if task == "rating" else myfm.MyFMClassifier
    model = cls(rank=rank, random_seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):  # myFM's progress bar
        model.fit(X, data.train.labels.astype(np.float64), X_rel=rel, n_iter=sweeps,
                  n_kept_samples=sweeps - burn_in, group_shapes=shapes)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    if task == "rating":
        scores = model.predict(Xt, rel_t)
        return seconds, compute_metrics("regressor", data.test.labels, scores)
    scores = model.predict_proba(Xt, rel_t)
    return seconds, compute_metrics("binary_classifier", data.test.labels, scores)


def _myfm_relations(myfm: Any, csr: Any, groups: Any) -> tuple[Any, list[Any]]:
    """Split off the per-entity key ranges (the trailing implicit fields) as RelationBlocks.

    myFM places relation columns after X's, in block order, which is where
    ``prepare movielens --implicit`` puts them.
    """
    csr = csr.astype(np.float64).tocsr()
    rels = find_relations(csr, groups)
    if not rels:
        return csr, []
    assert rels[-1].stop == csr.shape[1] and all(  # contiguous and last
        a.stop == b.start for a, b in zip(rels, rels[1:], strict=False))
    blocks = [myfm.RelationBlock(r.entity.tolist(), r.table) for r in rels]
    return csr[:, :rels[0].start].tocsr(), blocks


def run_als(data: Any, seed: int, rank: int) -> tuple[tuple[float, float], dict[str, float]]:
    cfg = FMConfig.from_values({"predictor_type": "regressor", "num_factors": rank,
                                "epochs": 15, "seed": seed,
                                "feature_dim": data.vocabulary.feature_dim})
    start, cpu = time.perf_counter(), time.process_time()
    artifact, _ = fit_als(cfg, data.train)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    scores = Predictor(artifact).predict_scores(data.test)
    return seconds, compute_metrics("regressor", data.test.labels, scores)


Run = tuple[tuple[float, float], dict[str, float]]


def summarise(name: str, task: str, runs: list[Run]) -> str:
    wall = statistics.median(r[0][0] for r in runs)
    cpu = statistics.median(r[0][1] for r in runs)
    parts = [f"{name:<22} fit {wall:6.2f} s wall, {cpu:6.2f} s CPU (medians of {len(runs)})"]
    for key in KEYS[task]:
        vals = [r[1][key] for r in runs]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        parts.append(f"{SHORT[key]} {statistics.mean(vals):.4f} +- {sd:.4f}")
    return " | ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=200)
    ap.add_argument("--burn-in", type=int, default=None,
                    help="default: fmkit's per-task default (20 rating, 50 binary), both tools")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--tasks", default="rating,binary")
    ap.add_argument("--side", default="no,yes")
    ap.add_argument("--implicit", default="no",
                    help="no, yes or no,yes: implicit feedback fields (prepare --implicit)")
    ap.add_argument("--interactions", default="all",
                    help="all, user_item or all,user_item: fmkit's model(s); myFM runs the "
                         "ordinary FM")
    ap.add_argument("--no-myfm", action="store_true")
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()

    myfm = None if args.no_myfm else _import_myfm()
    # compile (or load cached) numba kernels outside the timings
    warm = load_movielens(args.data, split="ua", target="rating")
    fit_mcmc(FMConfig.from_values({"predictor_type": "regressor", "num_factors": 2,
                                   "epochs": 2, "burn_in": 1}), warm.train.slice(0, 500))
    lines = []
    for task, side, implicit in [(t, s, i) for t in args.tasks.split(",")
                                 for i in args.implicit.split(",") for s in args.side.split(",")]:
        data = load_movielens(args.data, split="ua", target=task,
                              side_features=side == "yes", implicit=implicit == "yes")
        predictor_type = "regressor" if task == "rating" else "binary_classifier"
        burn_in = (default_burn_in(args.sweeps, predictor_type) if args.burn_in is None
                   else args.burn_in)
        title = (f"{task}, {'with' if side == 'yes' else 'without'} side features"
                 f"{', with implicit feedback' if implicit == 'yes' else ''} "
                 f"(feature_dim {data.vocabulary.feature_dim}, "
                 f"{len(data.vocabulary.fields)} groups, burn-in {burn_in})")
        print(title, flush=True)
        lines.append(f"- {title}:")
        ours = {("fmkit mcmc" if i == "all" else f"fmkit mcmc {i}"): i
                for i in args.interactions.split(",")}
        names = [*ours] + ([] if myfm is None else ["myFM 0.4 gibbs"])
        runs: dict[str, list[Run]] = {n: [] for n in names}
        for seed in range(args.seeds):  # alternate the tools so load hits them alike
            for name, interactions in ours.items():
                runs[name].append(run_fmkit(data, task, seed, args.sweeps, args.rank,
                                            burn_in, interactions))
            if myfm is not None:
                runs["myFM 0.4 gibbs"].append(run_myfm(
                    myfm, data, task, seed, args.sweeps, args.rank, burn_in))
        for name in names:
            line = summarise(name, task, runs[name])
            print("  " + line, flush=True)
            lines.append(f"  - {line}")
        for name in ours if myfm is not None else ():
            ratios = [statistics.median(r[0][i] for r in runs[name])
                      / statistics.median(r[0][i] for r in runs["myFM 0.4 gibbs"])
                      for i in (0, 1)]
            line = (f"{name} / myFM fit time: {ratios[0]:.2f} wall, {ratios[1]:.2f} CPU "
                    "(fmkit on numba's threads, myFM on one: wall time is what a user waits)")
            print("  " + line, flush=True)
            lines.append(f"  - {line}")
        if task == "rating" and side == "no" and implicit == "no":
            als = [run_als(data, seed, args.rank) for seed in range(args.seeds)]
            line = summarise("fmkit als (15 epochs)", task, als)
            print("  " + line, flush=True)
            lines.append(f"  - {line}")
    if args.append:
        uname = " ".join(platform.uname())
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cmd = "python benchmarks/bayes_mcmc.py " + " ".join(sys.argv[1:])
        section = [
            "", f"## Bayesian FM (MCMC, ALS) vs myFM on ml-100k ua — {stamp}", "",
            f"Machine: `{uname}`, nproc {os.cpu_count()}; other work shared the 2 cores, "
            "so timings are noisy (runs alternate with the baseline in one script).",
            f"Command: `{cmd}`. Rank {args.rank}, {args.sweeps} sweeps, the same burn-in "
            "for both tools (shown per task), every sample after burn-in averaged, one "
            "prior group per field for both; fit time excludes data loading and test "
            "scoring; metrics are mean +- std over seeds 0..n-1.", "",
            *lines, "",
        ]
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write("\n".join(section))


if __name__ == "__main__":
    main()
