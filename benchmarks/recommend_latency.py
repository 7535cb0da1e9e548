"""Top-10 recommendation latency: fmkit's all-items product against the seed's way.

Two models:

- MovieLens: SageMaker's u1 regressor (../shared/data/sagemaker-fm-u1, F=2625, K=64) with a
  vocabulary of 943 users and 1,682 items and the u1.base pairs as training items (random
  weights of that shape when the shared data is absent);
- synthetic: 1,000 users x 1,000,000 items, K=64, ~50 training items per user.

For each model and random users, with the user's training items excluded:

- ``fmkit /recommend``: POST /recommend {"user", "k": 10} to ``fmkit serve`` (load from a
  separate process, benchmarks/serve_load.py, one keep-alive connection, sequential);
- ``Recommender.recommend``: the same in process (no HTTP);
- the seed's way: one instance per unrated item scored through POST /invocations, then a
  client-side sort (MovieLens: one request of ~1,600 instances per user). For 1M items a
  request that large cannot pass the 6 MB limit, so the seed's way is measured in process as
  ``Predictor.predict_batch`` over every unrated row plus ``argpartition``: a lower bound.

    .venv/bin/python benchmarks/recommend_latency.py [--users 200] [--append]
"""

from __future__ import annotations

import os

# one BLAS thread per process, as for a serving worker (set before numpy loads; inherited by
# the server process): on 2 shared cores a second thread only adds contention
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve_latency import start_fmkit, stop  # noqa: E402

ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"


def movielens_model(tmp: Path) -> tuple[Path, str]:
    from fmkit.artifact import Artifact, load as load_artifact, save
    from fmkit.features.vocabulary import Field, Vocabulary

    n_users, n_items = 943, 1682
    if (SHARED / "sagemaker-fm-u1" / "model.tar.gz").is_file():
        art = load_artifact(SHARED / "sagemaker-fm-u1" / "model.tar.gz")
        what = "SageMaker u1 regressor"
    else:
        rng = np.random.default_rng(0)
        art = Artifact.from_point(3.5, rng.normal(0, .1, 2625), rng.normal(0, .05, (2625, 64)),
                                  "regressor")
        what = "random regressor of the u1 shape"
    base = SHARED / "ml-100k" / "u1.base"
    if base.is_file():
        data = np.loadtxt(base, dtype=np.int64)
        users, items = data[:, 0] - 1, data[:, 1] - 1
    else:
        rng = np.random.default_rng(1)
        users, items = rng.integers(0, n_users, 80000), rng.integers(0, n_items, 80000)
    seen = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)),
                         shape=(n_users, n_items))
    seen.sum_duplicates()
    seen.data[:] = 1
    vocab = Vocabulary(2625, [
        Field("user", 0, n_users, "user", True, tuple(str(i) for i in range(1, n_users + 1))),
        Field("item", n_users, n_items, "item", True, tuple(str(i) for i in range(1, n_items + 1))),
    ], "user", "item", item_counts=np.bincount(items, minlength=n_items).tolist())
    art.vocabulary, art.seen = vocab.to_dict(), seen
    save(art, tmp / "ml")
    return tmp / "ml", f"{what} + vocabulary (943 users, 1,682 items, u1.base as seen)"


def synthetic_model(tmp: Path, n_items: int) -> tuple[Path, str]:
    from fmkit.artifact import Artifact, save
    from fmkit.features.vocabulary import Field, Vocabulary

    n_users, K = 1000, 64
    rng = np.random.default_rng(2)
    F = n_users + n_items
    art = Artifact.from_point(0.1, rng.normal(0, 0.1, F).astype(np.float32),
                              rng.normal(0, 0.1, (F, K)).astype(np.float32), "regressor")
    per_user = 50
    seen = sp.csr_matrix((np.ones(n_users * per_user, np.float32),
                          rng.integers(0, n_items, n_users * per_user),
                          np.arange(0, n_users * per_user + 1, per_user)),
                         shape=(n_users, n_items))
    seen.sum_duplicates()
    vocab = Vocabulary(F, [
        Field("user", 0, n_users, "user", True, tuple(f"u{i}" for i in range(n_users))),
        Field("item", n_users, n_items, "item", True, tuple(f"i{i}" for i in range(n_items))),
    ], "user", "item")
    art.vocabulary, art.seen = vocab.to_dict(), seen
    save(art, tmp / "synthetic")
    return tmp / "synthetic", f"synthetic regressor, {n_users} users x {n_items:,} items, K={K}"


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def in_process(model: Path, users: list[str], n_items: int, seed_requests: int) -> dict:
    from fmkit.model_store import load_model as load_artifact
    from fmkit.inference.predictor import Predictor
    from fmkit.inference.recommend import Recommender
    from fmkit.sparse import SparseBatch

    art = load_artifact(model)
    t0 = time.perf_counter()
    rec = Recommender(art)
    build_s = time.perf_counter() - t0
    for u in users[:5]:
        rec.recommend(u, k=10)
    times = []
    for u in users:
        t = time.perf_counter()
        rec.recommend(u, k=10)
        times.append(1000 * (time.perf_counter() - t))
    predictor = Predictor(art)
    seed_times = []
    n_users = art.seen.shape[0]
    for u in users[:seed_requests]:
        t = time.perf_counter()
        pos = rec.user_position(u)
        unrated = np.setdiff1d(np.arange(n_items), art.seen[pos].indices)
        m = unrated.shape[0]
        batch = SparseBatch.from_arrays(
            np.stack([np.full(m, pos), n_users + unrated], 1).ravel(),
            np.arange(0, 2 * m + 1, 2), np.ones(2 * m, np.float32), feature_dim=art.feature_dim)
        scores = predictor.predict_batch(batch, validate=False)["score"]
        top = np.argpartition(-scores, 10)[:10]
        top[np.argsort(-scores[top])]
        seed_times.append(1000 * (time.perf_counter() - t))
    return {"recommend": percentiles(times), "seed_in_process": percentiles(seed_times),
            "table_build_s": build_s}


def http(model: Path, users: list[str], n_items: int, tmp: Path, seed_http: bool,
         args: argparse.Namespace) -> dict:
    from fmkit.model_store import load_model as load_artifact

    out = {}
    proc, port = start_fmkit(str(model), 1)
    try:
        bodies = [{"path": "/recommend", "content_type": "application/json",
                   "body": json.dumps({"user": u, "k": 10})} for u in users]
        (tmp / "rec.json").write_text(json.dumps(bodies))
        out["recommend_http"] = _run_load(port, tmp / "rec.json", len(users))
        if seed_http:
            art = load_artifact(model)
            n_users = art.seen.shape[0]
            seed = []
            for u in users[: args.seed_requests]:
                pos = int(u) - 1
                unrated = np.setdiff1d(np.arange(n_items), art.seen[pos].indices)
                inst = [{"data": {"features": {"keys": [pos, n_users + int(i)], "shape": [2625],
                                               "values": [1, 1]}}} for i in unrated]
                seed.append({"path": "/invocations", "content_type": "application/json",
                             "body": json.dumps({"instances": inst})})
            (tmp / "seed.json").write_text(json.dumps(seed))
            out["seed_http"] = _run_load(port, tmp / "seed.json", len(seed))
    finally:
        stop(proc)
    return out


def _run_load(port: int, bodies: Path, n: int) -> dict:
    import subprocess

    cmd = [sys.executable, str(HERE / "serve_load.py"), "--port", str(port), "--bodies-file",
           str(bodies), "--mode", "latency", "--requests", str(n), "--warmup", "10"]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    assert set(res["statuses"]) == {"200"}, res["statuses"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seed-requests", type=int, default=50)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="fmkit-rec-bench-"))
    rng = np.random.default_rng(3)
    rows = []

    ml, ml_what = movielens_model(tmp)
    users = [str(u) for u in rng.integers(1, 944, args.users)]
    ip = in_process(ml, users, 1682, args.seed_requests)
    hp = http(ml, users, 1682, tmp, True, args)
    rows.append(("MovieLens, 1,682 items", ml_what, ip, hp))
    print(json.dumps({"movielens": {"in_process": ip, "http": hp}}, indent=1), flush=True)

    syn, syn_what = synthetic_model(tmp, args.items)
    users = [f"u{u}" for u in rng.integers(0, 1000, args.users)]
    ip = in_process(syn, users, args.items, max(3, args.seed_requests // 10))
    hp = http(syn, users, args.items, tmp, False, args)
    rows.append((f"synthetic, {args.items:,} items", syn_what, ip, hp))
    print(json.dumps({"synthetic": {"in_process": ip, "http": hp}}, indent=1), flush=True)

    lines = ["| model | fmkit POST /recommend p50 / p99 (ms) | Recommender.recommend p50 / p99 "
             "(ms) | seed's way p50 / p99 (ms) | speed-up (p50) |", "|---|---|---|---|---|"]
    for name, _, ip, hp in rows:
        r = hp["recommend_http"]
        if "seed_http" in hp:
            s = hp["seed_http"]
            seed_txt = f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} (HTTP /invocations)"
            seed_p50 = s["p50_ms"]
        else:
            s50, s99 = ip["seed_in_process"]
            seed_txt = f"{s50:.1f} / {s99:.1f} (in process, lower bound)"
            seed_p50 = s50
        lines.append(f"| {name} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
                     f"{ip['recommend'][0]:.2f} / {ip['recommend'][1]:.2f} | {seed_txt} | "
                     f"{seed_p50 / r['p50_ms']:.0f}x |")
    table = "\n".join(lines)
    print(table)
    if args.append:
        models = "\n".join(f"- {name}: {what}" for name, what, _, _ in rows)
        section = (
            f"\n## Recommend top-10: all items in one product vs the seed's per-item scoring "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
            f"- machine: `{' '.join(platform.uname())}`, nproc {os.cpu_count()}, load average "
            f"{load_start:.1f} at the start; other "
            "helpers' jobs shared these 2 cores during the run, so absolute numbers are noisy.\n"
            f"{models}\n"
            f"- {args.users} random users per model, training items excluded; HTTP load from a "
            "separate process on 127.0.0.1, one keep-alive connection; OPENBLAS_NUM_THREADS="
            f"{os.environ.get('OPENBLAS_NUM_THREADS')} (one BLAS thread per server worker).\n"
            f"- command: `.venv/bin/python benchmarks/recommend_latency.py --append`\n\n"
            f"{table}\n"
        )
        with open(HERE / "RESULTS.md", "a") as fh:
            fh.write(section)


if __name__ == "__main__":
    main()
