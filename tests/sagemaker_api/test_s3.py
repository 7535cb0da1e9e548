"""The local S3 with boto3 (as the SDK uses it) and with s3fs (fmkit's own s3:// reader)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_buckets(clients: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-one")
    s3.head_bucket(Bucket="b-one")
    assert "b-one" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="b-missing")
    assert err.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError, match="InvalidBucketName"):
        s3.create_bucket(Bucket="Bad_Name")
    s3.put_object(Bucket="b-one", Key="k", Body=b"x")
    with pytest.raises(ClientError, match="BucketNotEmpty"):
        s3.delete_bucket(Bucket="b-one")
    s3.delete_object(Bucket="b-one", Key="k")
    s3.delete_bucket(Bucket="b-one")
    assert "b-one" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_objects_round_trip(clients: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-obj")
    key = "dir/a b+c%41é.txt"
    put = s3.put_object(Bucket="b-obj", Key=key, Body=b"hello world", ContentType="text/plain",
                        Metadata={"owner": "me"}, ChecksumAlgorithm="CRC32")
    assert put["ETag"] == '"5eb63bbbe01eeed093cb22bb8f5acdc3"'
    got = s3.get_object(Bucket="b-obj", Key=key)
    assert got["Body"].read() == b"hello world"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"owner": "me"}
    part = s3.get_object(Bucket="b-obj", Key=key, Range="bytes=6-")
    assert part["Body"].read() == b"world" and part["ContentRange"] == "bytes 6-10/11"
    assert s3.get_object(Bucket="b-obj", Key=key, Range="bytes=-3")["Body"].read() == b"rld"
    with pytest.raises(ClientError, match="InvalidRange"):
        s3.get_object(Bucket="b-obj", Key=key, Range="bytes=50-60")
    assert s3.head_object(Bucket="b-obj", Key=key)["ContentLength"] == 11
    s3.copy_object(Bucket="b-obj", Key="copy.txt", CopySource={"Bucket": "b-obj", "Key": key})
    assert s3.get_object(Bucket="b-obj", Key="copy.txt")["Body"].read() == b"hello world"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket="b-obj", Key="missing.txt")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    deleted = s3.delete_objects(Bucket="b-obj", Delete={"Objects": [{"Key": key},
                                                                    {"Key": "copy.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted([key, "copy.txt"])
    assert s3.list_objects_v2(Bucket="b-obj")["KeyCount"] == 0


def test_listing_prefix_delimiter_continuation(clients: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-list")
    keys = ["a/1", "a/2", "a/x/3", "b/4", "c"]
    for k in keys:
        s3.put_object(Bucket="b-list", Key=k, Body=k.encode())
    top = s3.list_objects_v2(Bucket="b-list", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in top["Contents"]] == ["c"]
    under = s3.list_objects_v2(Bucket="b-list", Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in under["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in under["CommonPrefixes"]] == ["a/x/"]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="b-list", PaginationConfig={"PageSize": 2})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == keys


def test_multipart_and_streamed_uploads(clients: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-big")
    data = bytes(range(256)) * (40 * 1024)  # 10 MiB: boto3 switches to multipart at 8 MB
    s3.upload_fileobj(io.BytesIO(data), "b-big", "big.bin")
    head = s3.head_object(Bucket="b-big", Key="big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    assert s3.get_object(Bucket="b-big", Key="big.bin")["Body"].read() == data

    class Unseekable(io.RawIOBase):  # botocore sends these aws-chunked with a trailer
        def __init__(self) -> None:
            self.inner = io.BytesIO(b"q" * 5000)

        def readable(self) -> bool:
            return True

        def readinto(self, buf: Any) -> int:
            chunk = self.inner.read(len(buf))
            buf[:len(chunk)] = chunk
            return len(chunk)

    s3.upload_fileobj(Unseekable(), "b-big", "stream.bin")
    assert s3.get_object(Bucket="b-big", Key="stream.bin")["Body"].read() == b"q" * 5000


def test_keys_cannot_leave_the_bucket(clients: Any, aws_env: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-safe")
    for key in ("../escape", "a/../../escape", "a//b", "./x"):
        with pytest.raises(ClientError, match="InvalidArgument"):
            s3.put_object(Bucket="b-safe", Key=key, Body=b"1")
    assert not (aws_env.home / "s3" / "escape").exists()
    assert not (aws_env.home / "escape").exists()
    s3.put_object(Bucket="b-safe", Key="ok", Body=b"1")  # the server is still fine


def test_objects_are_files(clients: Any, aws_env: Any) -> None:
    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-files")
    s3.put_object(Bucket="b-files", Key="x/y.txt", Body=b"on disk")
    assert (aws_env.home / "s3" / "b-files" / "x" / "y.txt").read_bytes() == b"on disk"
    (aws_env.home / "s3" / "b-files" / "dropped.txt").write_bytes(b"by hand")
    got = s3.get_object(Bucket="b-files", Key="dropped.txt")
    assert got["Body"].read() == b"by hand" and got["ETag"].startswith('"')


def test_fmkit_s3fs_reader(clients: Any) -> None:
    """fmkit.io's s3:// paths (s3fs, AWS_ENDPOINT_URL) read and write the local S3."""
    pytest.importorskip("s3fs")
    from fmkit.io import paths

    s3 = clients["s3"]
    s3.create_bucket(Bucket="b-s3fs")
    s3.put_object(Bucket="b-s3fs", Key="ch/part-0.txt", Body=b"zero")
    s3.put_object(Bucket="b-s3fs", Key="ch/part-1.txt", Body=b"one")
    assert paths.find_files("s3://b-s3fs/ch/") == ["s3://b-s3fs/ch/part-0.txt",
                                                   "s3://b-s3fs/ch/part-1.txt"]
    with paths.open_file("s3://b-s3fs/ch/part-1.txt") as f:
        assert f.read() == b"one"
    with paths.atomic_write("s3://b-s3fs/out/model.bin") as f:
        f.write(b"\x00" * 1000)
    assert s3.head_object(Bucket="b-s3fs", Key="out/model.bin")["ContentLength"] == 1000


def test_sts_caller_identity(clients: Any) -> None:
    identity = clients["sts"].get_caller_identity()
    assert identity["Account"] == "000000000000"


def _chunked(data: bytes, checksum: str) -> bytes:
    return (f"{len(data):x};chunk-signature=00\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode())


def test_aws_chunked_body_with_trailing_checksum(clients: Any, aws_env: Any) -> None:
    import base64
    import zlib

    import httpx

    clients["s3"].create_bucket(Bucket="b-chunk")
    data = b"chunked payload " * 100
    good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    headers = {"Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
               "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
               "x-amz-decoded-content-length": str(len(data)), "Expect": "100-continue",
               "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/s3/"
                                "aws4_request, SignedHeaders=host, Signature=0"}
    ok = httpx.put(f"{aws_env.url}/b-chunk/c.bin", content=_chunked(data, good),
                   headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-amz-checksum-crc32"] == good
    assert clients["s3"].get_object(Bucket="b-chunk", Key="c.bin")["Body"].read() == data
    bad = httpx.put(f"{aws_env.url}/b-chunk/d.bin", content=_chunked(data, "AAAAAA=="),
                    headers=headers)
    assert bad.status_code == 400 and b"BadDigest" in bad.content
    with pytest.raises(ClientError):
        clients["s3"].head_object(Bucket="b-chunk", Key="d.bin")
