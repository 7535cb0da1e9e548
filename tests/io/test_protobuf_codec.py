"""Record protobuf codec: golden bytes from the spec, SDK-identical writing, any layout read."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fmkit.errors import FormatError
from fmkit.io import protobuf as pb
from fmkit.io import recordio
from fmkit.io import recordproto as rp
from fmkit.sparse import SparseBatch

# spec §3.3 example A: user 1 / movie 6, shape 2625, rating 5.0
EXAMPLE_A = bytes.fromhex(
    "0a23d7ce35000000"
    "0a1f0a0676616c7565731215"
    "12130a080000803f0000803f"
    "120300b4071a02c114"
    "12120a0676616c75657312081206 0a04 0000a040".replace(" ", "")
    + "000000"
)
# spec §3.3 example B: dense [1, 0, 0, 1], no label
EXAMPLE_B = bytes.fromhex("0a23d7ce200000000a1e0a0676616c756573121412120a10"
                          "0000803f00000000000000000000803f")
# spec §6.3: binary response, score 0.75, predicted_label 1.0
RESPONSE = bytes.fromhex(
    "0a23d7ce30000000"
    "12110a0573636f726512081206 0a040000403f".replace(" ", "")
    + "121b0a0f7072656469637465645f6c6162656c120812060a040000803f"
)
U1_SHA256 = "8eb845266955272b1f9c75f23916db21fabec2137460e6b75c7ab37aab8f8267"


def _ref_sparse(matrix: sp.spmatrix, labels: np.ndarray | None) -> bytes:
    f = io.BytesIO()
    rp.write_spmatrix_reference(f, matrix, labels)
    return f.getvalue()


def _ref_dense(array: np.ndarray, labels: np.ndarray | None) -> bytes:
    f = io.BytesIO()
    rp.write_dense_reference(f, array, labels)
    return f.getvalue()


def test_spec_example_a_round_trips() -> None:
    assert len(EXAMPLE_A) == 64
    batch = pb.decode_batch(EXAMPLE_A)
    assert batch.indices.tolist() == [0, 948]
    assert batch.values.tolist() == [1.0, 1.0]
    assert batch.labels is not None and batch.labels.tolist() == [5.0]
    assert batch.feature_dim == 2625
    assert pb.encode_batch(batch) == EXAMPLE_A


def test_spec_example_b_dense_round_trips() -> None:
    assert len(EXAMPLE_B) == 40
    batch = pb.decode_batch(EXAMPLE_B)
    assert batch.indices.tolist() == [0, 3]  # explicit zeros are dropped
    assert batch.feature_dim == 4 and batch.labels is None
    assert pb.encode_batch(batch, dense=True) == EXAMPLE_B


def test_label_records_match_the_spec_response() -> None:
    body = pb.encode_label_records({"score": np.array([0.75], np.float32),
                                    "predicted_label": np.array([1.0], np.float32)})
    assert body == RESPONSE and len(body) == 56
    cols = pb.decode_label_records(body + body)
    assert sorted(cols) == ["predicted_label", "score"]
    assert cols["score"].tolist() == [0.75, 0.75]
    # the response decodes as rows without features, too
    assert pb.decode_batch(body).nnz == 0


def test_sagemaker_sdk_file_round_trips_byte_for_byte(sagemaker_u1: Path) -> None:
    data = (sagemaker_u1 / "test.protobuf").read_bytes()
    batch = pb.decode_batch(data, source="test.protobuf", require_labels=True)
    assert (batch.n_rows, batch.nnz, batch.feature_dim) == (20000, 40000, 2625)
    assert batch.labels is not None and set(np.unique(batch.labels)) == {1, 2, 3, 4, 5}
    # README: user u -> key u-1, movie m -> key 943 + m - 1; first u1.test row is 1 6 5
    assert batch.indices[:2].tolist() == [0, 943 + 6 - 1]
    out = pb.encode_batch(batch)
    assert hashlib.sha256(out).hexdigest() == U1_SHA256
    # the reader agrees with the protobuf package's parse of every record
    records = rp.read_records_reference(io.BytesIO(data))
    keys = np.concatenate([np.asarray(r.features["values"].float32_tensor.keys)
                           for r in records])
    assert np.array_equal(keys, batch.indices)


csr_rows = st.integers(0, 12).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(1, 3000),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.integers(0, 2**31 - 1),
        st.booleans(),
    )
)


def _random_csr(spec: tuple[int, int, list[int], int, bool]) -> tuple[sp.csr_matrix,
                                                                     np.ndarray | None]:
    n, width, lengths, seed, with_labels = spec
    rng = np.random.default_rng(seed)
    rows = []
    for k in lengths:
        cols = np.sort(rng.choice(width, size=min(k, width), replace=False))
        rows.append(cols)
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int32)
    indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    values = rng.normal(size=indices.shape[0]).astype(np.float32)
    values[rng.random(values.shape[0]) < 0.1] = 0.0  # stored zeros stay stored
    matrix = sp.csr_matrix((values, indices, indptr), shape=(n, width))
    labels = rng.normal(size=n).astype(np.float32) if with_labels else None
    return matrix, labels


@settings(max_examples=60, deadline=None)
@given(csr_rows)
def test_sparse_encoding_is_sdk_identical_and_decodes_back(
    spec: tuple[int, int, list[int], int, bool],
) -> None:
    matrix, labels = _random_csr(spec)
    batch = SparseBatch.from_matrix(matrix, labels)
    data = pb.encode_batch(batch)
    assert data == _ref_sparse(matrix, labels)
    back = pb.decode_batch(data)
    assert np.array_equal(back.offsets, batch.offsets)
    assert np.array_equal(back.indices, batch.indices)
    assert back.values.tobytes() == batch.values.tobytes()
    assert back.feature_dim == matrix.shape[1] if matrix.shape[0] else back.feature_dim is None
    if labels is None or matrix.shape[0] == 0:  # no records: nothing says labels exist
        assert back.labels is None
    else:
        assert back.labels is not None and back.labels.tobytes() == labels.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("label_dtype", [None, np.float32, np.float64, np.int64])
def test_dense_encoding_follows_the_sdk_dtype_rules(dtype: type, label_dtype: type | None,
                                                    rng: np.random.Generator) -> None:
    array = (rng.normal(size=(7, 5)) * 3).astype(dtype)
    array[array.astype(np.float64) > 2] = 0
    labels = None if label_dtype is None else rng.integers(0, 2, 7).astype(label_dtype)
    csr = sp.csr_matrix(array)
    data = pb.encode_rows(csr.indices, csr.indptr, csr.data, labels, feature_dim=5, dense=True)
    assert data == _ref_dense(array, labels)
    back = pb.decode_batch(data)
    assert np.allclose(back.to_csr(5).toarray(), array.astype(np.float32))
    sparse = pb.encode_rows(csr.indices, csr.indptr, csr.data, labels, feature_dim=5)
    assert sparse == _ref_sparse(csr, labels)
    assert np.allclose(pb.decode_batch(sparse).to_csr(5).toarray(), array.astype(np.float32))


def test_int32_values_wrap_and_negative_varints_decode() -> None:
    array = np.array([[-1, 2, -300, 0]], dtype=np.int64)
    data = _ref_dense(array, None)
    assert pb.encode_rows([0, 1, 2], [0, 3], array[0, :3], feature_dim=4, dense=True) == data
    assert pb.decode_batch(data).values.tolist() == [-1.0, 2.0, -300.0]


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def test_unpacked_fields_any_order_and_unknown_fields_are_accepted() -> None:
    # Float32Tensor with unpacked values (wire 5) and unpacked keys (wire 0), shape last
    tensor = (_varint(2 << 3 | 0) + _varint(948) + bytes([0x0D]) + np.float32(2.5).tobytes()
              + _varint(2 << 3 | 0) + _varint(3) + bytes([0x0D]) + np.float32(-1).tobytes()
              + _ld(3, _varint(2625)))
    value = _ld(2, tensor)
    label = _ld(2, _ld(1, b"values") + _ld(2, _ld(2, _ld(1, np.float32(4).tobytes()))))
    record = (_ld(3, b"uid-17") + label + _ld(4, b"meta")
              + _ld(1, _ld(2, value) + _ld(1, b"values"))  # value before key in the entry
              + _ld(1, _ld(1, b"other") + _ld(2, _ld(2, _ld(1, b"\0\0\0\0")))))
    batch = pb.decode_batch(recordio.frame(record) + EXAMPLE_A)
    assert batch.offsets.tolist() == [0, 2, 4]
    assert batch.indices.tolist() == [948, 3, 0, 948]
    assert batch.values.tolist() == [2.5, -1.0, 1.0, 1.0]
    assert batch.labels is not None and batch.labels.tolist() == [4.0, 5.0]


def test_float64_sparse_tensor_is_converted() -> None:
    tensor = _ld(1, np.array([0.5, 2.0]).tobytes()) + _ld(2, _varint(1) + _varint(7)) + _ld(
        3, _varint(10))
    record = _ld(1, _ld(1, b"values") + _ld(2, _ld(3, tensor)))
    batch = pb.decode_batch(recordio.frame(record))
    assert batch.values.dtype == np.float32 and batch.values.tolist() == [0.5, 2.0]
    assert batch.indices.tolist() == [1, 7] and batch.feature_dim == 10


def _sparse_record(keys: list[int], values: list[float], dim: int,
                   label: float | None = None) -> bytes:
    tensor = (_ld(1, np.asarray(values, np.float32).tobytes())
              + _ld(2, b"".join(_varint(k) for k in keys)) + _ld(3, _varint(dim)))
    record = _ld(1, _ld(1, b"values") + _ld(2, _ld(2, tensor)))
    if label is not None:
        record += _ld(2, _ld(1, b"values") + _ld(2, _ld(2, _ld(1, np.float32(label).tobytes()))))
    return recordio.frame(record)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_sparse_record([1, 12], [1, 1], 10), "feature key 12 is beyond the shape 10"),
        (_sparse_record([1, 2], [1], 10), "sparse features have 1 values but 2 keys"),
        (_sparse_record([1], [1], 11), "feature length 11 differs from 10"),
        (recordio.frame(_ld(1, _ld(1, b"values") + _ld(2, _ld(9, _ld(1, b"x"))))),
         "features holds a Bytes value"),
        (recordio.frame(b"\x0a\x05\x0a\x06"), "runs past the end"),
        (recordio.frame(b"\x0f\x01"), "invalid field tag"),
        (b"\x0b" + _sparse_record([1], [1], 10)[1:], "expected magic 0xced7230a"),
    ],
)
def test_defects_name_record_and_byte_offset(record: bytes, message: str) -> None:
    first = _sparse_record([1, 2], [1, 1], 10)
    assert pb.decode_batch(first).feature_dim == 10
    where = f"bad.rec, record 1 at byte {len(first)}: "
    with pytest.raises(FormatError) as info:
        pb.decode_batch(first + record + first, source="bad.rec")
    assert str(info.value).startswith(where)
    assert message in str(info.value)


def test_missing_label_is_reported_when_labels_are_required() -> None:
    data = _sparse_record([1], [1], 10, 1.0) + _sparse_record([2], [1], 10)
    assert pb.decode_batch(data).labels is None
    with pytest.raises(FormatError, match=r"t\.rec, record 1 at byte \d+: no label"):
        pb.decode_batch(data, source="t.rec", require_labels=True)


@pytest.mark.parametrize("chunk", [5, 64, 333])
def test_iter_stream_matches_decode_batch(chunk: int) -> None:
    matrix, labels = _random_csr((40, 500, [3] * 40, 7, True))
    data = pb.encode_batch(SparseBatch.from_matrix(matrix, labels))
    parts = list(pb.iter_stream(io.BytesIO(data), source="x", chunk_bytes=chunk))
    whole = pb.decode_batch(data)
    assert sum(p.n_rows for p in parts) == 40
    assert np.array_equal(np.concatenate([p.indices for p in parts]), whole.indices)
    labels = np.concatenate([p.labels for p in parts if p.labels is not None])
    assert np.array_equal(labels, whole.labels)  # type: ignore[arg-type]


def test_writer_keeps_one_feature_dim_and_rejects_wider_keys() -> None:
    f = io.BytesIO()
    w = pb.Writer(f, feature_dim=100)
    w.write(SparseBatch.from_arrays([5], [0, 1], [1.0]))
    with pytest.raises(FormatError, match="key 200 with feature_dim=100"):
        w.write(SparseBatch.from_arrays([200], [0, 1], [1.0]))
    assert pb.decode_batch(f.getvalue()).feature_dim == 100


@pytest.mark.parametrize("keys_per_row", [[1, 5], [1, 500], [3]])
def test_uniform_rows_take_the_strided_paths(keys_per_row: list[int],
                                             rng: np.random.Generator) -> None:
    n = 50
    keys = np.tile(keys_per_row, n)
    keys[::7] += 1000  # same nnz per row, but some rows have longer key varints
    offsets = np.arange(n + 1) * len(keys_per_row)
    values = rng.normal(size=keys.shape[0]).astype(np.float32)
    labels = rng.normal(size=n).astype(np.float32)
    batch = SparseBatch.from_arrays(keys, offsets, values, labels, feature_dim=2000)
    data = pb.encode_batch(batch)
    assert data == _ref_sparse(batch.to_csr(), labels)
    back = pb.decode_batch(data)
    assert np.array_equal(back.indices, keys) and np.array_equal(back.offsets, offsets)
    assert back.values.tobytes() == values.tobytes()
    dense = pb.decode_batch(pb.encode_batch(batch, dense=True))
    assert np.array_equal(dense.to_csr(2000).toarray(), batch.to_csr().toarray())
