"""The object store and body decoding on their own: key rules, listing order, ranges,
aws-chunked framing in any split, and the body bound (through an in-process client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmkit.sagemaker_api.bodies import AwsChunkedDecoder
from fmkit.sagemaker_api.objects import ObjectStore, check_key
from fmkit.sagemaker_api.protocol import ApiError
from fmkit.sagemaker_api.s3 import _parse_range


@pytest.mark.parametrize("key", ["", "a/", "../x", "a/../b", "a//b", "./a", "a\x00b",
                                 "x" * 1025, "a/" + "y" * 256])
def test_keys_that_are_refused(key: str) -> None:
    with pytest.raises(ApiError):
        check_key(key)


@pytest.mark.parametrize("key", ["a", "a/b/c.rec", "sp ace+plus%41", "é/ü", ".hidden/x"])
def test_keys_that_are_files(key: str) -> None:
    assert check_key(key) == key


def test_listing_is_sorted_by_bytes_and_survives_a_new_store(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "s3")
    store.create_bucket("bkt")
    for key in ["b", "a/2", "a/10", "Z", "é"]:
        f, temp = store.new_temp()
        with f:
            f.write(key.encode())
        store.commit("bkt", key, temp, etag='"x"', metadata={"k": key})
    expected = sorted(["b", "a/2", "a/10", "Z", "é"], key=str.encode)
    assert store.keys("bkt") == expected
    again = ObjectStore(tmp_path / "s3")
    assert again.keys("bkt") == expected
    assert again.head("bkt", "a/2").metadata == {"k": "a/2"}
    objects, prefixes, truncated, last = again.list("bkt", delimiter="/", max_keys=2)
    assert prefixes == ["a/"] and [o.key for o in objects] == ["Z"] and truncated
    assert last == "a/"
    rest, _, more, _ = again.list("bkt", delimiter="/", start_after=last)
    assert [o.key for o in rest] == ["b", "é"] and not more
    store.delete("bkt", "a/2")
    store.delete("bkt", "a/10")
    assert not (tmp_path / "s3" / "bkt" / "a").exists()  # empty folders go with the keys


def test_a_symlink_out_of_the_bucket_is_refused(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "s3")
    store.create_bucket("bkt")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("no")
    (tmp_path / "s3" / "bkt" / "link").symlink_to(outside)
    with pytest.raises(ApiError, match="outside its bucket"):
        store.head("bkt", "link/secret")


@pytest.mark.parametrize(("text", "size", "expected"), [
    ("bytes=0-4", 10, (0, 4)), ("bytes=5-", 10, (5, 9)), ("bytes=-3", 10, (7, 9)),
    ("bytes=2-100", 10, (2, 9)), ("bytes=-20", 10, (0, 9))])
def test_ranges(text: str, size: int, expected: tuple[int, int]) -> None:
    assert _parse_range(text, size) == expected


@pytest.mark.parametrize("text", ["bytes=10-", "bytes=5-2", "items=0-1", "bytes=0-1,3-4",
                                  "bytes=x-1", "bytes=-0"])
def test_unsatisfiable_ranges(text: str) -> None:
    with pytest.raises(ApiError) as err:
        _parse_range(text, 10)
    assert err.value.status == 416


def test_aws_chunked_in_every_split() -> None:
    body = (b"5;chunk-signature=ab\r\nhello\r\n3;chunk-signature=cd\r\nxyz\r\n0;chunk-signature"
            b"=ef\r\nx-amz-checksum-crc32:AAAA\r\n\r\n")
    for step in range(1, len(body) + 1):
        decoder = AwsChunkedDecoder()
        out = b"".join(decoder.feed(body[i:i + step]) for i in range(0, len(body), step))
        decoder.finish(b"")
        assert out == b"helloxyz", step
        assert decoder.trailers == {"x-amz-checksum-crc32": "AAAA"}, step


def test_aws_chunked_errors() -> None:
    with pytest.raises(ApiError, match="chunk size"):
        AwsChunkedDecoder().feed(b"zz\r\n")
    decoder = AwsChunkedDecoder()
    decoder.feed(b"5\r\nhel")
    with pytest.raises(ApiError, match="ended"):
        decoder.finish(b"")


def test_object_bodies_are_bounded(tmp_path: Path) -> None:
    import httpx

    from sagemaker_api.local import LocalServer

    server = LocalServer(tmp_path, max_object_bytes=100, restore_endpoints=False).start()
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/s3/aws4_request"}
    try:
        with httpx.Client(base_url=server.url, headers=auth) as client:
            assert client.put("/bkt").status_code == 200
            assert client.put("/bkt/small", content=b"x" * 100).status_code == 200
            big = client.put("/bkt/big", content=b"x" * 101)
            assert big.status_code == 400 and b"EntityTooLarge" in big.content
            assert client.head("/bkt/big").status_code == 404
            assert client.get("/bkt/small").content == b"x" * 100
    finally:
        server.stop()
