"""Whole commands as a user times them: fmkit vs xLearn and myFM on MovieLens 100K ua.

Every row is a whole process (interpreter start, imports, reading the files, training,
scoring the test rows, writing the model), timed from outside: wall seconds and CPU seconds
(user + system of the child), median of ``--repeats`` runs (5). The commands run in rounds
(every command once per round), so a spell of load on the shared cores falls on all of
them. Test metrics come from each run's own output (fmkit: metrics.json; the peers: their
predictions of ua.test).

- ``fmkit train`` with fmkit's defaults (binary and rating) on the prepared ua split
  (``fmkit prepare movielens``, recordIO-protobuf on disk, prepared before timing) against
  xLearn's FM (k=16, 10 epochs, adagrad, lr 0.1, lambda 0.002, 2 threads: the settings of
  ``benchmarks/movielens_quality.py``) on the same split as libsvm files, training and
  predicting ua.test in one process;
- ``fmkit train --solver mcmc`` (rank 8, 200 sweeps) against myFM's Gibbs sampler (rank 8,
  200 iterations) in a script that reads ua.base/ua.test, one-hot encodes users and items,
  fits and predicts the test rows;
- ``fmkit evaluate``, ``fmkit recommend``, ``fmkit prepare movielens``, ``import fmkit``
  and ``fmkit --help``.

Peers, installed into the same virtualenv (they are not fmkit dependencies)::

    USER=$USER .venv/bin/pip install xlearn myfm

(xLearn reads ``USER`` from the environment; myFM 0.4 imports ``pkg_resources``, shimmed by
its script here when setuptools does not provide it). A peer that is missing is skipped.

Before timing, fmkit's modules are byte-compiled (``compileall``), as pip leaves an
installed package and as the peers' modules are: this machine sets PYTHONDONTWRITEBYTECODE,
under which an editable checkout would compile every module in every run (0.1 s).

Run: ``.venv/bin/python benchmarks/whole_command.py [--data-dir ../shared/data/ml-100k]
[--repeats 5]``; appends a section to benchmarks/RESULTS.md (``--no-append`` to only
print). FMKIT_HOME points at a temporary folder, so the registry starts empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "ml-100k"
PY = sys.executable
# the console script a user runs (``python -m fmkit`` where it is not installed)
_SCRIPT = Path(sys.executable).with_name("fmkit")
FMKIT = [str(_SCRIPT)] if _SCRIPT.is_file() else [PY, "-m", "fmkit"]

_XLEARN = """
import os, sys
os.environ.setdefault("USER", "bench")
import xlearn as xl
task, train, test, out = sys.argv[1:5]
fm = xl.create_fm()
fm.setTrain(train)
fm.setQuiet()
fm.fit({"task": task, "lr": 0.1, "lambda": 0.002, "k": 16, "epoch": 10, "opt": "adagrad",
        "nthread": 2, "metric": "none"}, out + ".model")
fm.setTest(test)
if task == "binary":
    fm.setSigmoid()
fm.predict(out + ".model", out)
"""

_MYFM = """
import sys, types
try:
    import pkg_resources  # noqa: F401
except ImportError:  # myFM 0.4 imports it for its version; setuptools may not provide it
    import importlib.metadata as md
    shim = types.ModuleType("pkg_resources")
    class DistributionNotFound(Exception):
        pass
    shim.DistributionNotFound = DistributionNotFound
    shim.get_distribution = lambda name: types.SimpleNamespace(version=md.version(name))
    sys.modules["pkg_resources"] = shim
import numpy as np
import scipy.sparse as sp
import myfm
data, task, out = sys.argv[1:4]
def load(name):
    a = np.loadtxt(f"{data}/{name}", dtype=np.int64)
    return a[:, 0] - 1, a[:, 1] - 1, a[:, 2].astype(np.float64)
(u, i, r), (ut, it, rt) = load("ua.base"), load("ua.test")
users, items = 943, 1682
def one_hot(u, i):
    n = u.shape[0]
    cols = np.stack([u, users + i], 1).ravel()
    return sp.csr_matrix((np.ones(2 * n), (np.repeat(np.arange(n), 2), cols)),
                         shape=(n, users + items))
X, Xt = one_hot(u, i), one_hot(ut, it)
cls = myfm.MyFMRegressor if task == "rating" else myfm.MyFMClassifier
fm = cls(rank=8, random_seed=0)
y = r if task == "rating" else (r >= 4).astype(np.float64)
fm.fit(X, y, n_iter=200, n_kept_samples=180, group_shapes=[users, items])
np.save(out, fm.predict(Xt) if task == "rating" else fm.predict_proba(Xt))
"""


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Run one whole process; return (wall s, CPU s of the child). Fails loudly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _metric(kind: str, truth: np.ndarray, pred: np.ndarray) -> str:
    if kind == "binary":
        return f"acc {float(np.mean((pred >= 0.5) == (truth >= 0.5))):.4f}"
    return f"RMSE {float(np.sqrt(np.mean((pred - truth) ** 2))):.4f}"


def _fmkit_metric(model_dir: Path, kind: str) -> str:
    m = json.loads((model_dir / "metrics.json").read_text())
    if kind == "binary":
        return f"acc {m['test:binary_classification_accuracy']:.4f}"
    return f"RMSE {m['test:rmse']:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("FMKIT_DATA_DIR", str(DEFAULT_DATA)))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--src", help="time the fmkit of this source folder (PYTHONPATH), e.g. "
                    "an earlier release exported with `git archive`")
    ap.add_argument("--label", default="", help="words for the section title")
    args = ap.parse_args()
    data = Path(args.data_dir).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="fmkit-whole-"))
    env = dict(os.environ, FMKIT_HOME=str(tmp / "home"), USER=os.environ.get("USER", "bench"))
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(args.src).resolve()),
                                                          env.get("PYTHONPATH")]))
    # fmkit's modules byte-compiled, as pip leaves an installed package (and an editable
    # one after its first run) and as the peers' are: where PYTHONDONTWRITEBYTECODE is set
    # (this machine sets it) Python would otherwise compile every module on every run
    pkg = subprocess.run([PY, "-c", "import fmkit, os; print(os.path.dirname(fmkit.__file__))"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([PY, "-m", "compileall", "-q", pkg], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    load_start = os.getloadavg()
    # untimed setup: the prepared channels (recordIO for fmkit, libsvm for xLearn), one
    # model for evaluate/recommend, and numba's cached builds warmed by one run each
    prepared = {}
    for kind in ("binary", "rating"):
        for fmt, ext in (("recordio-protobuf", "rec"), ("libsvm", "libsvm")):
            out = tmp / f"{kind}-{ext}"
            run([*FMKIT, "prepare", "movielens", "--data-dir", str(data), "--target", kind,
                 "--format", fmt, "--output", str(out)], env, tmp)
            prepared[kind, ext] = out
    truth = {kind: np.loadtxt(prepared[kind, "libsvm"] / "test" / "test.libsvm", usecols=0)
             for kind in ("binary", "rating")}
    ptype = {"binary": "binary_classifier", "rating": "regressor"}

    def train(kind: str, *extra: str) -> list[str]:
        d = prepared[kind, "rec"]
        return [*FMKIT, "train", "--train", str(d / "train"), "--test", str(d / "test"),
                "--model-dir", str(tmp / f"model-{kind}{'-'.join(extra)}"), "--no-progress",
                "--predictor-type", ptype[kind], *extra]

    mcmc = ("--solver", "mcmc", "--num-factors", "8", "--epochs", "200")
    rows: dict[str, dict[str, Any]] = {}

    def add(name: str, cmd: list[str], metric: Any = None) -> None:
        rows[name] = {"cmd": cmd, "metric": metric, "wall": [], "cpu": []}

    add("import fmkit", [PY, "-c", "import fmkit"])
    add("fmkit --help", [*FMKIT, "--help"])
    add("fmkit prepare movielens (ua, binary)",
        [*FMKIT, "prepare", "movielens", "--data-dir", str(data), "--output", str(tmp / "p")])
    for kind in ("binary", "rating"):
        add(f"fmkit train, fmkit defaults ({kind})", train(kind),
            lambda kind=kind: _fmkit_metric(tmp / f"model-{kind}", kind))
        if _have("xlearn"):
            d = prepared[kind, "libsvm"]
            out = tmp / f"xl-{kind}.out"
            add(f"xLearn FM, k=16, 10 epochs ({kind})",
                [PY, "-c", _XLEARN, "binary" if kind == "binary" else "reg",
                 str(d / "train" / "train.libsvm"), str(d / "test" / "test.libsvm"), str(out)],
                lambda kind=kind, out=out: _metric(kind, truth[kind], np.loadtxt(out)))
    for kind in ("rating", "binary"):
        add(f"fmkit train --solver mcmc, rank 8, 200 sweeps ({kind})", train(kind, *mcmc),
            lambda kind=kind: _fmkit_metric(tmp / f"model-{kind}{'-'.join(mcmc)}", kind))
        if _have("myfm"):
            out = tmp / f"myfm-{kind}.npy"
            add(f"myFM, rank 8, 200 iterations ({kind})",
                [PY, "-c", _MYFM, str(data), kind, str(out)],
                lambda kind=kind, out=out: _metric(kind, truth[kind], np.load(out)))
    model = tmp / "model-binary"
    add("fmkit evaluate (ua binary model)",
        [*FMKIT, "evaluate", "--model-dir", str(model), "--test",
         str(prepared["binary", "rec"] / "test")])
    add("fmkit recommend --user 196 -k 10",
        [*FMKIT, "recommend", "--model-dir", str(model), "--user", "196", "-k", "10"])
    # warm-up round (untimed): numba loads or compiles its cached builds, files are cached
    for name in ("fmkit train, fmkit defaults (binary)", "fmkit train, fmkit defaults (rating)",
                 "fmkit train --solver mcmc, rank 8, 200 sweeps (rating)",
                 "fmkit train --solver mcmc, rank 8, 200 sweeps (binary)"):
        run(rows[name]["cmd"], env, tmp)
    for r in range(args.repeats):
        for row in rows.values():
            wall, cpu = run(row["cmd"], env, tmp)
            row["wall"].append(wall)
            row["cpu"].append(cpu)
            if r == 0 and row["metric"] is not None:
                row["metric"] = row["metric"]()
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    load_end = os.getloadavg()
    med = {n: (statistics.median(r["wall"]), statistics.median(r["cpu"])) for n, r in rows.items()}
    uname = " ".join(platform.uname())
    lines = [
        f"\n## Whole commands on MovieLens 100K ua, fmkit vs xLearn and myFM"
        f"{' ' + args.label if args.label else ''} "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; `uname -a`: {uname}. Load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.2f}' for x in load_start)} at the start and "
        f"{', '.join(f'{x:.2f}' for x in load_end)} at the end (other work shared the cores).",
        f"Command: `python benchmarks/whole_command.py --repeats {args.repeats}"
        f"{' --src ' + args.src if args.src else ''}`: every row a "
        f"whole process, median (min-max) of {args.repeats} runs taken in rounds; CPU = user + "
        "system seconds of the process. Data prepared before timing; FMKIT_HOME empty at the "
        "start.\n",
        "| command | wall s | CPU s | test metric |",
        "|---|---:|---:|---|",
    ]
    for name, row in rows.items():
        w = row["wall"]
        lines.append(f"| {name} | {med[name][0]:.2f} ({min(w):.2f}-{max(w):.2f}) | "
                     f"{med[name][1]:.2f} | {row['metric'] or ''} |")
    lines.append("")

    def ratio(a: str, b: str, label: str, target: str) -> None:
        if a in med and b in med:
            lines.append(f"- {label}: {med[a][0] / med[b][0]:.2f}x wall, "
                         f"{med[a][1] / med[b][1]:.2f}x CPU (target {target})")

    for kind in ("binary", "rating"):
        ratio(f"fmkit train, fmkit defaults ({kind})", f"xLearn FM, k=16, 10 epochs ({kind})",
              f"fmkit train / xLearn, {kind}", "<= 1")
    for kind in ("rating", "binary"):
        ratio(f"fmkit train --solver mcmc, rank 8, 200 sweeps ({kind})",
              f"myFM, rank 8, 200 iterations ({kind})", f"fmkit MCMC / myFM, {kind}", "<= 0.5")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_append:
        with open(args.results, "a") as f:
            f.write(text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
