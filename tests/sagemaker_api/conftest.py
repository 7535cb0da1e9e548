"""Fixtures: a local SageMaker server on a free port (FMKIT_HOME in a temporary folder), SDK
sessions and boto3 clients pointing at it, and tiny data sets in its S3."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # before the SDK is imported
pytest.importorskip("sagemaker")
pytest.importorskip("boto3")

from sagemaker_api.local import (  # noqa: E402
    BUCKET,
    REGION,
    FakeClock,
    LocalServer,
    planted_data,
    recordio_bytes,
    stop_endpoints,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("sagemaker_home")
    srv = LocalServer(home).start()
    yield srv
    stop_endpoints(home)
    srv.stop()


@pytest.fixture
def aws_env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """Point every boto3 client at the server, with dummy credentials, and speed up the
    SDK's polling."""
    import sagemaker.session

    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setattr(sagemaker.session, "time", FakeClock())
    return server


@pytest.fixture
def session(aws_env: LocalServer) -> Any:
    """The notebook's one changed cell: a Session over the local server."""
    import boto3
    import sagemaker

    boto_session = boto3.Session(region_name=REGION)
    return sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker"),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime"),
        default_bucket=BUCKET,
        sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {
            "Modules": {"TelemetryOptOut": True}}}})


@pytest.fixture
def clients(aws_env: LocalServer) -> dict[str, Any]:
    import boto3

    return {name: boto3.client(name, region_name=REGION)
            for name in ("s3", "sagemaker", "sagemaker-runtime", "logs", "sts")}


@pytest.fixture
def fm_data(clients: dict[str, Any]) -> dict[str, Any]:
    """train/test channels in s3://fm-local/<unique>/, as the MovieLens notebook uploads."""
    s3 = clients["s3"]
    s3.create_bucket(Bucket=BUCKET)
    X, y = planted_data()
    prefix = f"data-{time.time_ns()}"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/train/train.protobuf",
                  Body=recordio_bytes(X[:200], y[:200]))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/test/test.protobuf",
                  Body=recordio_bytes(X[200:], y[200:]))
    return {"train": f"s3://{BUCKET}/{prefix}/train/", "test": f"s3://{BUCKET}/{prefix}/test/",
            "X": X, "y": y, "feature_dim": X.shape[1], "prefix": prefix}


