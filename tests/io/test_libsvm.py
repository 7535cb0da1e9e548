"""libsvm: parsing variants, key base, defects with line and byte offset, round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fmkit.errors import FormatError
from fmkit.io import libsvm
from fmkit.io.text import Lines
from fmkit.sparse import SparseBatch, concat


def _parse(text: bytes) -> SparseBatch:
    return libsvm.parse_lines(Lines(text, 0, 1), source="t.svm")[0]


def test_parses_comments_qid_blank_lines_tabs_and_crlf() -> None:
    text = b"# header comment\n1 1:0.5 3:2 # trailing\r\n\n0 qid:3 2:1e3\n-1.5\t7:-2\n3\n"
    batch, lines = libsvm.parse_lines(Lines(text, 0, 1), source="t.svm")
    assert batch.labels is not None and batch.labels.tolist() == [1.0, 0.0, -1.5, 3.0]
    assert batch.offsets.tolist() == [0, 2, 3, 4, 4]
    assert batch.indices.tolist() == [1, 3, 2, 7]
    assert batch.values.tolist() == [0.5, 2.0, 1000.0, -2.0]
    assert lines.tolist() == [2, 4, 5, 6]
    assert batch.feature_dim is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"1 1:1\n1 3:x\n", r"t\.svm, line 2 at byte 6: bad token '3:x'"),
        (b"1 1:1\n1 2:1\n2 3 4:1\n", r"line 3 at byte 12: bad token '3'"),
        (b"abc 1:2\n", r"line 1 at byte 0: label 'abc' is not a number"),
        (b"1 1.5:2\n", r"bad token '1.5:2'"),
        (b"1 1: 2\n", r"bad token '1:'"),
        (b"1 -1:2\n", r"bad token '-1:2'"),
        (b"1 1:2:3\n", r"bad token '1:2:3'"),
        (b"1:1 2:1\n", r"label '1:1' is not a number"),
    ],
)
def test_bad_lines_are_located(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        _parse(text)


def test_line_numbers_continue_across_chunks() -> None:
    text = b"".join(b"1 1:1 2:1\n" for _ in range(50)) + b"1 2:oops\n"
    with pytest.raises(FormatError, match=r"line 51 at byte 500: bad token '2:oops'"):
        list(libsvm.iter_stream(io.BytesIO(text), source="t.svm", chunk_bytes=64))


def test_one_based_reading_rejects_key_zero() -> None:
    with pytest.raises(FormatError, match=r"t\.svm, line 2: key 0 in 1-based"):
        list(libsvm.iter_stream(io.BytesIO(b"1 1:1\n0 0:1\n"), source="t.svm"))
    batch = concat(list(libsvm.iter_stream(io.BytesIO(b"1 1:1\n0 0:1\n"), source="t.svm",
                                           zero_based=True)))
    assert batch.indices.tolist() == [1, 0]
    assert libsvm.min_key(io.BytesIO(b"1 4:1\n0 2:1\n"), source="t") == 2


@pytest.mark.parametrize("zero_based", [True, False])
@pytest.mark.parametrize("chunk", [16, 1 << 20])
def test_write_read_round_trip(zero_based: bool, chunk: int, rng: np.random.Generator) -> None:
    n = 60
    lengths = rng.integers(0, 6, n)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    indices = rng.integers(0, 1000, offsets[-1])
    values = rng.normal(size=offsets[-1]).astype(np.float32)
    values[::3] = 1.0
    labels = rng.integers(0, 2, n).astype(np.float32)
    batch = SparseBatch.from_arrays(indices, offsets, values, labels)
    f = io.BytesIO()
    libsvm.Writer(f, zero_based=zero_based).write(batch)
    text = f.getvalue()
    assert text.startswith(f"{labels[0]:g} ".encode()) or lengths[0] == 0
    back = concat(list(libsvm.iter_stream(io.BytesIO(text), source="x",
                                          zero_based=zero_based, chunk_bytes=chunk)))
    assert np.array_equal(back.offsets, batch.offsets)
    assert np.array_equal(back.indices, batch.indices)
    assert back.values.tobytes() == batch.values.tobytes()  # shortest repr is exact
    assert np.array_equal(back.labels, labels)  # type: ignore[arg-type]


def test_writer_golden_text() -> None:
    batch = SparseBatch.from_arrays([0, 948, 5], [0, 2, 3], [1.0, 0.1, 2.0], [5.0, 0.0])
    f = io.BytesIO()
    libsvm.Writer(f).write(batch)
    assert f.getvalue() == b"5 1:1 949:0.1\n0 6:2\n"
