"""An S3-compatible server (moto) on 127.0.0.1 for tests: the ``s3`` fixture.

Import both fixtures into a ``conftest.py``: ``from helpers.s3 import moto_server, s3``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server_mod = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the AWS environment at the moto server and create bucket ``fmkit-test``.

    Yields the bucket URI ``s3://fmkit-test``; the bucket is emptied afterwards.
    """
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_server)
    client.create_bucket(Bucket="fmkit-test")
    yield "s3://fmkit-test"
    listed = client.list_objects_v2(Bucket="fmkit-test").get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket="fmkit-test", Key=obj["Key"])
    client.delete_bucket(Bucket="fmkit-test")
