"""A restart keeps buckets, objects, jobs, models and endpoints (serving again or Failed,
never silently gone); the command refuses a non-loopback host without --allow-remote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sagemaker_api.local import (
    BUCKET,
    REGION,
    LocalServer,
    planted_data,
    recordio_bytes,
    stop_endpoints,
)


def _clients(url: str) -> dict[str, Any]:
    import boto3

    kw = {"endpoint_url": url, "region_name": REGION, "aws_access_key_id": "x",
          "aws_secret_access_key": "x"}
    return {n: boto3.client(n, **kw) for n in ("s3", "sagemaker", "sagemaker-runtime")}


def _wait(fn: Any, done: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.slow
def test_restart_keeps_state_and_endpoints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = LocalServer(home).start()
    try:
        c = _clients(first.url)
        c["s3"].create_bucket(Bucket=BUCKET)
        X, y = planted_data()
        c["s3"].put_object(Bucket=BUCKET, Key="train/t.protobuf", Body=recordio_bytes(X, y))
        c["sagemaker"].create_training_job(
            TrainingJobName="kept-job", RoleArn="arn:aws:iam::000000000000:role/r",
            AlgorithmSpecification={"TrainingImage": "fmkit:latest",
                                    "TrainingInputMode": "File"},
            HyperParameters={"feature_dim": str(X.shape[1]), "num_factors": "4",
                             "predictor_type": "binary_classifier", "epochs": "1"},
            InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train/"}}}],
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                            "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 600})
        desc = _wait(lambda: c["sagemaker"].describe_training_job(TrainingJobName="kept-job"),
                     lambda d: d["TrainingJobStatus"] != "InProgress")
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        c["sagemaker"].create_model(
            ModelName="kept-model", ExecutionRoleArn="arn:aws:iam::000000000000:role/r",
            PrimaryContainer={"Image": "fmkit:latest",
                              "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]})
        c["sagemaker"].create_endpoint_config(
            EndpointConfigName="kept-config", ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": "kept-model",
                "InitialInstanceCount": 1, "InstanceType": "ml.t2.medium"}])
        c["sagemaker"].create_endpoint(EndpointName="kept-endpoint",
                                       EndpointConfigName="kept-config")
        ep = _wait(lambda: c["sagemaker"].describe_endpoint(EndpointName="kept-endpoint"),
                   lambda d: d["EndpointStatus"] != "Creating")
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
    finally:
        first.stop()
    # the machine "reboots": the endpoint's server is gone too
    from fmkit.registry import Registry

    pid = Registry(home).endpoints.get("kept-endpoint").pid
    os.killpg(pid, signal.SIGKILL)
    _wait(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode,
          lambda rc: rc != 0, 10)

    second = LocalServer(home).start()
    try:
        c = _clients(second.url)
        assert BUCKET in [b["Name"] for b in c["s3"].list_buckets()["Buckets"]]
        assert c["s3"].head_object(Bucket=BUCKET, Key="train/t.protobuf")["ContentLength"] > 0
        assert c["sagemaker"].describe_training_job(
            TrainingJobName="kept-job")["TrainingJobStatus"] == "Completed"
        assert c["sagemaker"].describe_model(ModelName="kept-model")["ModelName"]
        ep = _wait(lambda: c["sagemaker"].describe_endpoint(EndpointName="kept-endpoint"),
                   lambda d: d["EndpointStatus"] != "Creating")
        # restored by the new server at start-up (same model, same port)
        assert ep["EndpointStatus"] == "InService", ep.get("FailureReason")
        answer = c["sagemaker-runtime"].invoke_endpoint(
            EndpointName="kept-endpoint", ContentType="application/json",
            Body=json.dumps({"instances": [{"features": X[0].toarray()[0].tolist()}]}))
        assert "predictions" in json.loads(answer["Body"].read())
    finally:
        stop_endpoints(home)
        second.stop()


def test_remote_host_needs_allow_remote(tmp_path: Path) -> None:
    env = dict(os.environ, FMKIT_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "fmkit", "sagemaker-api", "--host", "0.0.0.0",
                           "--port", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr and "no authentication" in done.stderr
    assert "Traceback" not in done.stderr


def test_server_process_answers_and_stops(tmp_path: Path) -> None:
    """`python -m fmkit.sagemaker_api` (what `fmkit sagemaker-api` starts) serves and ends
    on SIGTERM."""
    import boto3

    from sagemaker_api.local import free_port

    port = free_port()
    env = dict(os.environ, FMKIT_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "fmkit.sagemaker_api", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sts = boto3.client("sts", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
                           aws_access_key_id="x", aws_secret_access_key="x")
        identity = _wait(lambda: _try(sts.get_caller_identity), lambda v: v is not None, 60)
        assert identity is not None and identity["Account"] == "000000000000"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"AWS_ENDPOINT_URL" in err and b"Traceback" not in err


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - not up yet
        return None
