"""CSV: SageMaker's dense label-first layout, request bodies, defects, round trips."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fmkit.errors import DataError, FormatError
from fmkit.io import csv
from fmkit.io.text import Lines
from fmkit.sparse import SparseBatch, concat


def test_label_first_rows_keep_non_zeros_and_width() -> None:
    batch = csv.parse_lines(Lines(b"1,0,2.5,0\r\n\n0,0,0,0\n3, 1e2 ,0,-1\n", 0, 1), source="t")
    assert batch.labels is not None and batch.labels.tolist() == [1.0, 0.0, 3.0]
    assert batch.feature_dim == 3
    assert batch.offsets.tolist() == [0, 1, 1, 3]
    assert batch.indices.tolist() == [1, 0, 2]
    assert batch.values.tolist() == [2.5, 100.0, -1.0]


def test_decode_rows_for_request_bodies() -> None:
    batch = csv.decode_rows(b"0,1,0,1\n1,1,1,1", feature_dim=4)
    assert batch.labels is None
    assert batch.to_csr().toarray().tolist() == [[0, 1, 0, 1], [1, 1, 1, 1]]
    with pytest.raises(DataError, match="rows have 3 features, but the model expects "
                       "feature_dim=4"):
        csv.decode_rows(b"0,1,0\n", feature_dim=4)
    assert csv.decode_rows(b"").n_rows == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"1,2,3\n1,abc,3\n", r"t\.csv, line 2 at byte 6, column 2: 'abc' is not a number"),
        (b"1,2,3\n1,2\n", r"line 2 at byte 6: 2 columns, but earlier lines have 3"),
        (b"label,f1\n1,2\n", r"line 1 at byte 0, column 1: 'label' is not a number"),
        (b"1,,3\n", r"column 2: '' is not a number"),
    ],
)
def test_bad_fields_are_located(text: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        list(csv.iter_stream(io.BytesIO(text), source="t.csv"))


def test_width_must_agree_across_chunks() -> None:
    text = b"1,2,3\n" * 20 + b"1,2\n"
    with pytest.raises(FormatError, match=r"line 21 at byte 120: 2 columns"):
        list(csv.iter_stream(io.BytesIO(text), source="t.csv", chunk_bytes=32))


def test_write_read_round_trip(rng: np.random.Generator) -> None:
    dense = rng.normal(size=(30, 6)).astype(np.float32)
    dense[dense < 0.3] = 0
    labels = rng.normal(size=30).astype(np.float32)
    batch = SparseBatch.from_matrix(dense, labels)
    f = io.BytesIO()
    csv.Writer(f).write(batch)
    back = concat(list(csv.iter_stream(io.BytesIO(f.getvalue()), source="x", chunk_bytes=50)))
    assert back.feature_dim == 6
    assert np.array_equal(back.to_csr().toarray(), dense)
    assert np.array_equal(back.labels, labels)  # type: ignore[arg-type]
    g = io.BytesIO()
    csv.Writer(g).write(SparseBatch.from_arrays([2], [0, 1], [0.5], [1.0], feature_dim=4))
    assert g.getvalue() == b"1,0,0,0.5,0\n"
