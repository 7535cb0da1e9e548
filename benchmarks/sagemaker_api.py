"""The local SageMaker API's overhead: the MovieLens notebook's job through the real SDK
against ``fmkit sagemaker-api``, beside the same job through ``fmkit train``/``fmkit deploy``.

Data: MovieLens 100K ``ua`` split, binary target, encoded as the notebook does
(``fmkit prepare movielens``); the notebook's hyperparameters (feature_dim 2625,
num_factors 64, predictor_type binary_classifier, mini_batch_size 1000, epochs 100) with
SageMaker's defaults.

Measured, median of ``--repeats`` runs taken in turns:

- ``fit()``: wall seconds from ``Estimator.fit(inputs, logs=True)`` to its return (job
  Completed, model.tar.gz in S3), and the job's own seconds in the registry;
  direct: wall seconds of ``fmkit train --hyperparameters hp.json`` (a new process);
- ``deploy()``: wall seconds from ``Estimator.deploy()`` to its return (InService);
  direct: ``fmkit deploy`` (returns once /ping answers).

The SDK's fixed poll sleeps (30 s before the first DescribeEndpoint, 10 s between log
reads, 30 s between DescribeTrainingJob calls) are shortened to 0.1 s real waits, as in the
tests, so the figures show fmkit's work and the API's overhead, not the SDK's timers.

Run: ``python benchmarks/sagemaker_api.py [--repeats 3]``; appends to benchmarks/RESULTS.md.
Needs ../shared/data/ml-100k (or --data-dir) and ``sagemaker>=2.257,<3``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ml-100k"
HYPERPARAMETERS = {"feature_dim": "2625", "num_factors": "64",
                   "predictor_type": "binary_classifier", "mini_batch_size": "1000",
                   "epochs": "100"}
REGION = "us-east-1"
BUCKET = "fm-bench"


def fmkit(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fmkit", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeClock:
    """The SDK's ``time``: each fixed sleep advances its clock and waits 0.1 s."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += float(seconds)
        time.sleep(0.1)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(time, name)


def start_server(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "fmkit.sagemaker_api", "--port",
                             str(port)], env=dict(env, FMKIT_HOME=str(home)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sagemaker-api server did not start")


def through_api(data: Path, home: Path, env: dict[str, str], repeats: int) -> dict[str, list]:
    import boto3
    import sagemaker
    import sagemaker.session

    port = free_port()
    proc = start_server(home, port, env)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="local",
                      AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION=REGION,
                      SAGEMAKER_SUPPRESS_V2_WARNING="1")
    sagemaker.session.time = FakeClock()
    out: dict[str, list] = {"fit": [], "job": [], "deploy": []}
    try:
        boto_session = boto3.Session(region_name=REGION)
        session = sagemaker.Session(
            boto_session=boto_session, default_bucket=BUCKET,
            sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {
                "Modules": {"TelemetryOptOut": True}}}})
        train = session.upload_data(str(data / "train"), key_prefix="movielens/train")
        test = session.upload_data(str(data / "test"), key_prefix="movielens/test")
        image = sagemaker.image_uris.retrieve("factorization-machines", REGION)
        sm = boto_session.client("sagemaker")
        for _ in range(repeats):
            est = sagemaker.estimator.Estimator(
                image, "arn:aws:iam::000000000000:role/local", instance_count=1,
                instance_type="ml.c4.xlarge", output_path=f"s3://{BUCKET}/output",
                sagemaker_session=session)
            est.set_hyperparameters(**HYPERPARAMETERS)
            start = time.perf_counter()
            with redirect_stdout(io.StringIO()):
                est.fit({"train": train, "test": test}, logs=True)
            out["fit"].append(time.perf_counter() - start)
            desc = sm.describe_training_job(TrainingJobName=est.latest_training_job.name)
            out["job"].append((desc["TrainingEndTime"] - desc["CreationTime"]).total_seconds())
            start = time.perf_counter()
            predictor = est.deploy(1, "ml.t2.medium")
            out["deploy"].append(time.perf_counter() - start)
            predictor.delete_model()
            predictor.delete_endpoint()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def direct(data: Path, home: Path, env: dict[str, str], repeats: int) -> dict[str, list]:
    env = dict(env, FMKIT_HOME=str(home))
    hp = home / "hyperparameters.json"
    hp.parent.mkdir(parents=True, exist_ok=True)
    hp.write_text(json.dumps(HYPERPARAMETERS))
    out: dict[str, list] = {"fit": [], "deploy": []}
    for i in range(repeats):
        model = home / f"model-{i}"
        out["fit"].append(fmkit("train", "--train", str(data / "train"), "--test",
                                str(data / "test"), "--hyperparameters", str(hp),
                                "--model-dir", str(model), env=env))
        out["deploy"].append(fmkit("deploy", "--model-dir", str(model), "--name",
                                   f"bench-{i}", env=env))
        fmkit("endpoints", "delete", f"bench-{i}", env=env)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    if not (args.data_dir / "ua.base").is_file():
        raise SystemExit(f"MovieLens 100K not found at {args.data_dir}; pass --data-dir")
    env = dict(os.environ, SAGEMAKER_SUPPRESS_V2_WARNING="1")
    with tempfile.TemporaryDirectory(prefix="fmkit-bench-sm-") as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "data"
        fmkit("prepare", "movielens", "--data-dir", str(args.data_dir), "--split", "ua",
              "--target", "binary", "--output", str(data), env=env)
        api = through_api(data, tmp_path / "api-home", env, args.repeats)
        cli = direct(data, tmp_path / "cli-home", env, args.repeats)

    def med(xs: list) -> str:
        return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"

    load = os.getloadavg()[0]
    lines = [
        f"## Local SageMaker API overhead, MovieLens 100K ua ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
        f"load average at the end {load:.2f}. Command: `python benchmarks/sagemaker_api.py "
        f"--repeats {args.repeats}`. The notebook's job: {json.dumps(HYPERPARAMETERS)}, "
        "SageMaker defaults. Median (min-max) of the runs; the SDK's fixed poll sleeps "
        "shortened to 0.1 s.",
        "",
        "| step | through the SDK + `fmkit sagemaker-api` | `fmkit train` / `fmkit deploy` |",
        "|---|---:|---:|",
        f"| train: `fit()` to Completed (s) | {med(api['fit'])} | {med(cli['fit'])} |",
        f"| train: the job's own seconds (registry) | {med(api['job'])} | - |",
        f"| `deploy()` to InService (s) | {med(api['deploy'])} | {med(cli['deploy'])} |",
        "",
        "SageMaker itself (not measured here: no AWS account): a training job first "
        "provisions an instance and pulls the image (secondary status Starting), and AWS "
        "describes that cold start as too slow for users who need under 20 seconds (the "
        "SageMaker Training Managed Warm Pools post, 2022); endpoint creation provisions "
        "instances too, and the SDK itself waits 30 s before its first DescribeEndpoint and "
        "30 s between polls, so `deploy()` there takes minutes.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
