"""Format resolution: names, MIME types, extensions and sniffing."""

from __future__ import annotations

import pytest

from fmkit.errors import FormatError
from fmkit.io import formats


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a/train.recordio", "recordio-protobuf"), ("x.REC", "recordio-protobuf"),
     ("x.pbr", "recordio-protobuf"), ("test.protobuf", "recordio-protobuf"),
     ("a.libsvm", "libsvm"), ("a.svm", "libsvm"), ("s3://b/p/a.csv", "csv"),
     ("m.npz", "npz"), ("part-0000", None), ("x.json", None)],
)
def test_extensions(path: str, expected: str | None) -> None:
    assert formats.from_extension(path) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("application/x-recordio-protobuf", "recordio-protobuf"),
     ("Application/X-RecordIO-Protobuf; charset=binary", "recordio-protobuf"),
     ("text/csv; label_size=1", "csv"), ("text/libsvm", "libsvm"),
     ("application/x-npz", "npz")],
)
def test_content_types(content_type: str, expected: str) -> None:
    assert formats.from_content_type(content_type) == expected


def test_unknown_names_and_types_are_format_errors() -> None:
    with pytest.raises(FormatError, match="unsupported content type 'application/json'"):
        formats.from_content_type("application/json")
    with pytest.raises(FormatError, match="unknown data format 'parquet'"):
        formats.codec("parquet")
    assert formats.codec("RecordIO").name == "recordio-protobuf"


@pytest.mark.parametrize(
    ("head", "expected"),
    [(bytes.fromhex("0a23d7ce35000000"), "recordio-protobuf"), (b"PK\x03\x04rest", "npz"),
     (b"# c\n\n1 3:1 7:0.5\n", "libsvm"), (b"1,0,1\n0,1,1\n", "csv"), (b"5\n3\n", "csv"),
     (b"\xff\xfe\x00\x01binary", None), (b"hello world\n", None)],
)
def test_sniffing(head: bytes, expected: str | None) -> None:
    assert formats.sniff(head) == expected


def test_resolve_precedence_and_failures() -> None:
    assert formats.resolve("a.csv", b"1 2:1", format="libsvm") == "libsvm"
    assert formats.resolve("a.csv", None, content_type="text/libsvm") == "libsvm"
    assert formats.resolve("a.csv", b"1 2:1") == "csv"
    assert formats.resolve("part-0", b"1 2:1") == "libsvm"
    with pytest.raises(FormatError, match="part-0: the file is empty"):
        formats.resolve("part-0", b"")
    with pytest.raises(FormatError, match="cannot tell the data format"):
        formats.resolve("part-0", b"\x00\x01\x02")
