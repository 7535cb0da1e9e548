"""Readers given arbitrary or damaged bytes raise only FormatError: no crash, no hang."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fmkit.io as fio
from fmkit.errors import FormatError
from fmkit.io import csv, libsvm, npz, protobuf, recordio
from fmkit.io.text import Lines
from fmkit.sparse import SparseBatch

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

_VALID = protobuf.encode_batch(SparseBatch.from_arrays(
    [0, 948, 3, 5, 2], [0, 2, 2, 5], [1, 1, 0.5, 2, -1], [5, 0, 1], feature_dim=2625))
_DENSE = protobuf.encode_rows([0, 2], [0, 1, 2], np.array([1.5, 2.0], np.float64),
                              np.array([1, 2]), feature_dim=3, dense=True)


def _decode_only_format_errors(data: bytes) -> None:
    try:
        batch = protobuf.decode_batch(data, source="fuzz")
    except FormatError:
        return
    # anything accepted is a consistent batch (values themselves may be inf or NaN)
    assert batch.offsets[0] == 0 and batch.offsets[-1] == batch.nnz
    assert np.all(np.diff(batch.offsets) >= 0) and batch.values.shape == batch.indices.shape
    if batch.nnz:
        assert batch.indices.min() >= 0
        assert batch.feature_dim is None or batch.indices.max() < batch.feature_dim
    assert batch.labels is None or batch.labels.shape == (batch.n_rows,)
    assert batch.values.dtype == np.float32 and batch.indices.dtype == np.int64


@FUZZ
@given(st.binary(max_size=300))
def test_recordio_arbitrary_bytes(data: bytes) -> None:
    _decode_only_format_errors(data)
    _decode_only_format_errors(recordio.MAGIC_BYTES + data)  # past the magic check


@FUZZ
@given(st.binary(min_size=1, max_size=200))
def test_recordio_random_payload_in_a_valid_frame(payload: bytes) -> None:
    _decode_only_format_errors(recordio.frame(payload))
    _decode_only_format_errors(_VALID + recordio.frame(payload))


@FUZZ
@given(st.sampled_from([_VALID, _DENSE]), st.data())
def test_recordio_mutated_valid_records(base: bytes, data: st.DataObject) -> None:
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    _decode_only_format_errors(bytes(buf))
    _decode_only_format_errors(bytes(buf[:cut]))
    try:
        list(protobuf.iter_stream(io.BytesIO(bytes(buf)), source="f", chunk_bytes=17))
    except FormatError:
        pass


@FUZZ
@given(st.binary(max_size=300) | st.text(alphabet="0123456789 :.-e\n#qid,abc\t",
                                          max_size=200).map(str.encode))
def test_text_readers_arbitrary_bytes(data: bytes) -> None:
    for parse in (lambda: libsvm.parse_lines(Lines(data, 0, 1), source="f"),
                  lambda: csv.parse_lines(Lines(data, 0, 1), source="f"),
                  lambda: csv.decode_rows(data, feature_dim=3)):
        try:
            parse()
        except FormatError:
            pass
        except Exception as exc:  # DataError for a feature_dim mismatch is fine too
            assert type(exc).__name__ == "DataError", exc


@FUZZ
@given(st.binary(max_size=300))
def test_npz_and_sniffing_arbitrary_bytes(data: bytes) -> None:
    for blob in (data, b"PK\x03\x04" + data):
        try:
            npz.read_stream(io.BytesIO(blob), source="f")
        except FormatError:
            pass
        try:
            fio.detect_format(blob)
        except FormatError:
            pass
