""":class:`~fmkit.sparse.SparseBatch` -> recordIO-protobuf ``Record`` bytes, vectorised.

The bytes of all rows are built in one output array, writing each piece of the fixed
SageMaker SDK layout for every row at once, so a float32 CSR matrix with float32 labels
gives the same bytes as ``sagemaker.amazon.common.write_spmatrix_to_sparse_tensor`` and a
dense array the same as ``write_numpy_to_dense_tensor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.errors import FormatError
from fmkit.io import recordio
from fmkit.io.protobuf.scan import IntArray, U64Array, U8Array, _VALUES_KEY, _VALUE_TAG
from fmkit.sparse import SparseBatch

ENCODE_ROWS = 65536


_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def _varint_sizes(v: U64Array) -> IntArray:
    """Return the encoded size in bytes (1..10) of each uint64 in ``v``."""
    return np.searchsorted(_VARINT_LIMITS, v, side="right").astype(np.int64) + 1


def _put_varints(out: U8Array, pos: IntArray, v: U64Array, size: IntArray) -> None:
    """Write varint ``v[i]`` of ``size[i]`` bytes at ``out[pos[i]]``."""
    if v.size == 0:
        return
    top = int(size.max())
    for j in range(top):
        sel = slice(None) if j == 0 else np.flatnonzero(size > j)
        vj = v[sel] >> np.uint64(7 * j)
        byte = (vj & np.uint64(0x7F)).astype(np.uint8)
        if j < top - 1:
            byte |= ((size[sel] - 1 > j).astype(np.uint8) << 7)
        out[pos[sel] + j] = byte


def _encode_varint_stream(v: U64Array) -> tuple[U8Array, IntArray]:
    """Encode all of ``v`` back to back; return the bytes and each varint's size."""
    size = _varint_sizes(v)
    pos = np.zeros(v.shape[0], np.int64)
    if v.size:
        np.cumsum(size[:-1], out=pos[1:])
    out = np.zeros(int(size.sum()), np.uint8)
    _put_varints(out, pos, v, size)
    return out, size


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)



# --------------------------------------------------------------------------------------
# encoding


def _kind_of(dtype: np.dtype) -> str:
    """Tensor kind for a numpy dtype, as the SDK's ``_resolve_type`` picks it."""
    if dtype == np.float32:
        return "f4"
    if dtype == np.float64:
        return "f8"
    if dtype.kind in "iub":
        return "i4"
    raise FormatError(f"cannot write dtype {dtype} to recordIO-protobuf; use float32, "
                      "float64 or an integer type.")


def _element_stream(values: np.ndarray, kind: str) -> tuple[U8Array, IntArray]:
    """Return the encoded bytes of ``values`` and each element's size."""
    if kind == "f4":
        data = np.ascontiguousarray(values, "<f4").view(np.uint8)
        return data, np.full(values.shape[0], 4, np.int64)
    if kind == "f8":
        data = np.ascontiguousarray(values, "<f8").view(np.uint8)
        return data, np.full(values.shape[0], 8, np.int64)
    as_int = np.asarray(values).astype(np.int64).astype(np.int32)  # int32 wraps, like the SDK
    return _encode_varint_stream(as_int.astype(np.int64).view(np.uint64))


def _row_sums(sizes: IntArray, offsets: IntArray) -> IntArray:
    """Sum ``sizes`` over each CSR row."""
    c = np.concatenate(([0], np.cumsum(sizes)))
    return c[offsets[1:]] - c[offsets[:-1]]


class _Writer:
    """Write pieces of every row at the rows' cursors into one output array."""

    def __init__(self, out: U8Array, cursor: IntArray) -> None:
        self.out = out
        self.cur = cursor

    def const(self, data: bytes, rows: npt.NDArray[np.bool_] | None = None) -> None:
        arr = np.frombuffer(data, np.uint8)
        cur = self.cur if rows is None else self.cur[rows]
        self.out[cur[:, None] + np.arange(arr.shape[0])] = arr
        if rows is None:
            self.cur += arr.shape[0]
        else:
            self.cur[rows] += arr.shape[0]

    def varint(self, v: IntArray, rows: npt.NDArray[np.bool_] | None = None) -> None:
        vv = (v if rows is None else v[rows]).astype(np.uint64)
        size = _varint_sizes(vv)
        cur = self.cur if rows is None else self.cur[rows]
        _put_varints(self.out, cur, vv, size)
        if rows is None:
            self.cur += size
        else:
            self.cur[rows] += size

    def f4_elements(self, values: np.ndarray, row_counts: IntArray) -> None:
        """Write float32 ``values``, the first ``row_counts[0]`` of them for row 0, etc."""
        total = values.shape[0]
        if total:
            base = np.concatenate(([0], np.cumsum(row_counts)[:-1]))
            pos = np.repeat(self.cur - 4 * base, row_counts) + 4 * np.arange(total)
            view = np.ndarray(shape=(self.out.shape[0] - 3,), dtype="<f4", buffer=self.out,
                              strides=(1,))
            view[pos] = values
        self.cur += 4 * row_counts

    def varint_elements(self, v: U64Array, sizes: IntArray, row_counts: IntArray,
                        row_bytes: IntArray) -> None:
        """Write varints ``v`` (of ``sizes`` bytes), ``row_counts[0]`` for row 0, etc."""
        if v.size:
            ends = np.cumsum(sizes)
            row_first = np.concatenate(([0], np.cumsum(row_counts)[:-1]))
            before_row = np.where(row_counts > 0, (ends - sizes)[np.minimum(
                row_first, v.shape[0] - 1)], 0)
            pos = np.repeat(self.cur - before_row, row_counts) + (ends - sizes)
            _put_varints(self.out, pos, v, sizes)
        self.cur += row_bytes

    def stream(self, data: U8Array, row_bytes: IntArray) -> None:
        """Copy ``data``, whose first ``row_bytes[0]`` bytes belong to row 0, and so on."""
        if data.size:
            base = np.concatenate(([0], np.cumsum(row_bytes)[:-1]))
            idx = np.repeat(self.cur - base, row_bytes) + np.arange(data.shape[0])
            self.out[idx] = data
        self.cur += row_bytes


def _vsize(v: IntArray) -> IntArray:
    return _varint_sizes(v.astype(np.uint64))


def encode_rows(
    indices: np.ndarray,
    offsets: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    feature_dim: int,
    dense: bool = False,
) -> bytes:
    """Encode CSR rows as framed Records exactly as the SageMaker SDK writes them.

    The tensor type follows ``values.dtype`` (float32 -> Float32Tensor, float64 ->
    Float64Tensor, integers -> Int32Tensor) and the label tensor ``labels.dtype``, as in
    ``write_spmatrix_to_sparse_tensor`` (``dense=False``: keys in CSR order and
    ``shape=[feature_dim]``) and ``write_numpy_to_dense_tensor`` (``dense=True``: all
    ``feature_dim`` values of the row, no keys, no shape).
    """
    indices = np.asarray(indices)
    offsets = np.asarray(offsets, np.int64)
    values = np.asarray(values)
    n = offsets.shape[0] - 1
    parts: list[bytes] = []
    for lo in range(0, max(n, 0), ENCODE_ROWS):
        hi = min(lo + ENCODE_ROWS, n)
        a, b = int(offsets[lo]), int(offsets[hi])
        block_offsets = offsets[lo : hi + 1] - a
        block_labels = None if labels is None else np.asarray(labels)[lo:hi]
        if dense:
            mat = sp.csr_matrix((values[a:b], indices[a:b], block_offsets),
                                shape=(hi - lo, feature_dim)).toarray()
            parts.append(_encode_block_dense(mat, block_labels))
        else:
            parts.append(_encode_block_sparse(indices[a:b], block_offsets, values[a:b],
                                              block_labels, feature_dim))
    return b"".join(parts)


def _encode_records(
    n: int,
    value_tag: int,
    row_value_bytes: IntArray,
    value_data: U8Array | tuple[np.ndarray, IntArray],
    row_key_bytes: IntArray | None,
    key_data: tuple[U64Array, IntArray, IntArray] | None,
    shape_bytes: bytes | None,
    labels: np.ndarray | None,
) -> bytes:
    """Lay out ``n`` records; sizes are computed innermost first, then bytes written.

    ``value_data`` is the encoded values, or (float32 values, count per row) to write them
    in place; ``key_data`` is (keys, varint size of each, count per row).
    """
    has_values = row_value_bytes > 0
    t_len = np.where(has_values, 1 + _vsize(row_value_bytes) + row_value_bytes, 0)
    if row_key_bytes is not None:
        t_len += np.where(row_key_bytes > 0, 1 + _vsize(row_key_bytes) + row_key_bytes, 0)
    if shape_bytes is not None:
        t_len += 2 + len(shape_bytes)
    v_len = 1 + _vsize(t_len) + t_len
    fe_len = 2 + len(_VALUES_KEY) + 1 + _vsize(v_len) + v_len
    rec_len = 1 + _vsize(fe_len) + fe_len
    if labels is not None:
        lkind = _kind_of(labels.dtype)
        ldata, lsize = _element_stream(labels, lkind)
        lt_len = 1 + _vsize(lsize) + lsize  # packed values field with one element
        lv_len = 1 + _vsize(lt_len) + lt_len
        le_len = 2 + len(_VALUES_KEY) + 1 + _vsize(lv_len) + lv_len
        rec_len = rec_len + 1 + _vsize(le_len) + le_len
    frame_len = 8 + ((rec_len + 3) & ~3)
    starts = np.zeros(n, np.int64)
    np.cumsum(frame_len[:-1], out=starts[1:])
    out = np.zeros(int(frame_len.sum()), np.uint8)
    out[starts[:, None] + np.arange(4)] = np.frombuffer(recordio.MAGIC_BYTES, np.uint8)
    out[starts[:, None] + np.arange(4, 8)] = rec_len.astype("<u4").view(np.uint8).reshape(-1, 4)
    w = _Writer(out, starts + 8)
    w.const(b"\x0a")
    w.varint(fe_len)
    w.const(b"\x0a\x06" + _VALUES_KEY + b"\x12")
    w.varint(v_len)
    w.const(bytes([value_tag]))
    w.varint(t_len)
    if has_values.all():
        w.const(b"\x0a")
        w.varint(row_value_bytes)
    elif has_values.any():
        w.const(b"\x0a", has_values)
        w.varint(row_value_bytes, has_values)
    if isinstance(value_data, tuple):
        w.f4_elements(*value_data)
    else:
        w.stream(value_data, row_value_bytes)
    if row_key_bytes is not None and key_data is not None:
        has_keys = row_key_bytes > 0
        w.const(b"\x12", has_keys)
        w.varint(row_key_bytes, has_keys)
        w.varint_elements(key_data[0], key_data[1], key_data[2], row_key_bytes)
    if shape_bytes is not None:
        w.const(bytes([0x1A, len(shape_bytes)]) + shape_bytes)
    if labels is not None:
        w.const(b"\x12")
        w.varint(le_len)
        w.const(b"\x0a\x06" + _VALUES_KEY + b"\x12")
        w.varint(lv_len)
        w.const(bytes([_VALUE_TAG[lkind]]))
        w.varint(lt_len)
        w.const(b"\x0a")
        w.varint(lsize)
        w.stream(ldata, lsize)
    return out.tobytes()


def _encode_block_sparse(indices: np.ndarray, offsets: IntArray, values: np.ndarray,
                         labels: np.ndarray | None, feature_dim: int) -> bytes:
    n = offsets.shape[0] - 1
    kind = _kind_of(values.dtype)
    counts = np.diff(offsets)
    value_data: U8Array | tuple[np.ndarray, IntArray]
    if kind == "f4":
        value_data = (values, counts)
        row_value_bytes = 4 * counts
    else:
        value_data, vsize = _element_stream(values, kind)
        row_value_bytes = _row_sums(vsize, offsets)
    keys = np.asarray(indices).astype(np.int64)
    if keys.size and keys.min() < 0:
        raise FormatError(f"cannot write a negative feature key ({int(keys.min())}).")
    keys_u64 = keys.view(np.uint64)
    ksize = _varint_sizes(keys_u64)
    return _encode_records(n, _VALUE_TAG[kind], row_value_bytes, value_data,
                           _row_sums(ksize, offsets), (keys_u64, ksize, counts),
                           _varint_bytes(feature_dim), labels)


def _encode_block_dense(mat: np.ndarray, labels: np.ndarray | None) -> bytes:
    n, width = mat.shape
    kind = _kind_of(mat.dtype)
    vdata, vsize = _element_stream(mat.ravel(), kind)
    row_offsets = np.arange(n + 1, dtype=np.int64) * width
    return _encode_records(n, _VALUE_TAG[kind], _row_sums(vsize, row_offsets), vdata,
                           None, None, None, labels)


def encode_batch(batch: SparseBatch, *, dense: bool = False) -> bytes:
    """Encode a batch as framed Records, byte for byte as the SageMaker SDK writes them.

    Float32 features and float32 labels (if any), like
    ``write_spmatrix_to_sparse_tensor(f, batch.to_csr(), batch.labels)``; with
    ``dense=True`` like ``write_numpy_to_dense_tensor(f, batch.to_csr().toarray(), labels)``.
    Weights are not stored (the Record schema has no place for them).
    """
    return encode_rows(batch.indices, batch.offsets, batch.values, batch.labels,
                       feature_dim=batch.width, dense=dense)


def encode_label_records(columns: Mapping[str, np.ndarray]) -> bytes:
    """Encode one Record per row with empty features and ``label[name] = [value]``.

    The columns (float32, all the same length) appear in dict order, e.g.
    ``{"score": s, "predicted_label": l}`` gives SageMaker's recordIO response (spec §6.3).
    """
    names = list(columns)
    if not names:
        return b""
    cols = [np.asarray(columns[k], np.float32).ravel() for k in names]
    n = cols[0].shape[0]
    if any(c.shape[0] != n for c in cols):
        raise FormatError("encode_label_records: all columns need the same length; got "
                          + ", ".join(f"{k}={c.shape[0]}" for k, c in zip(names, cols)) + ".")
    entry_len = []
    rec_len = 0
    for k in names:
        key = k.encode()
        e_len = 2 + len(key) + 1 + 1 + 8  # key field, value field (Value of 8 bytes)
        entry_len.append(e_len)
        rec_len += 1 + len(_varint_bytes(e_len)) + e_len
    frame_len = 8 + ((rec_len + 3) & ~3)
    out = np.zeros((n, frame_len), np.uint8)
    out[:, :4] = np.frombuffer(recordio.MAGIC_BYTES, np.uint8)
    out[:, 4:8] = np.frombuffer(np.uint32(rec_len).astype("<u4").tobytes(), np.uint8)
    at = 8
    for k, e_len, col in zip(names, entry_len, cols):
        key = k.encode()
        head = (b"\x12" + _varint_bytes(e_len) + b"\x0a" + _varint_bytes(len(key)) + key
                + b"\x12\x08\x12\x06\x0a\x04")
        out[:, at : at + len(head)] = np.frombuffer(head, np.uint8)
        at += len(head)
        out[:, at : at + 4] = col.astype("<f4").view(np.uint8).reshape(n, 4)
        at += 4
    return out.tobytes()


class Writer:
    """Write batches as framed Records to a binary stream, SDK layout.

    ``feature_dim`` (the sparse ``shape`` / dense width) defaults to the first batch's
    width; every later batch is written with the same one.
    """

    def __init__(self, stream: BinaryIO, *, dense: bool = False,
                 feature_dim: int | None = None) -> None:
        self.stream = stream
        self.dense = dense
        self.feature_dim = feature_dim

    def write(self, batch: SparseBatch) -> None:
        if self.feature_dim is None:
            self.feature_dim = batch.width
        if batch.nnz and int(batch.indices.max()) >= self.feature_dim:
            raise FormatError(f"cannot write a key {int(batch.indices.max())} with "
                              f"feature_dim={self.feature_dim}; pass a larger feature_dim.")
        self.stream.write(encode_rows(batch.indices, batch.offsets, batch.values, batch.labels,
                                      feature_dim=self.feature_dim, dense=self.dense))

    def close(self) -> None:
        """Nothing to flush: every batch is written when given."""
