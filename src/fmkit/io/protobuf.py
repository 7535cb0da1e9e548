"""SageMaker ``Record`` protobuf <-> :class:`~fmkit.sparse.SparseBatch`, vectorised (spec §3.3).

Decoding parses every record of a buffer at once: a protobuf message is a sequence of
``tag, value`` fields, so step ``k`` reads field ``k`` of all messages still open with a
few numpy operations, and each nesting level (Record -> map entry -> Value -> tensor) is one
such scan. Packed arrays are then gathered for all rows in one pass: float bytes are viewed
as float32/float64, varints (keys, shapes, int32 values) decoded as one stream. Any field
order, unknown fields, unpacked repeated fields and all three tensor types are accepted.

Encoding builds the bytes of all rows in one output array, writing each piece of the fixed
SageMaker SDK layout for every row at once, so a float32 CSR matrix with float32 labels
gives the same bytes as ``sagemaker.amazon.common.write_spmatrix_to_sparse_tensor`` and a
dense array the same as ``write_numpy_to_dense_tensor``.

Shapes: N rows (records), Z stored values, E fields found by a scan, B bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.errors import FormatError
from fmkit.io import recordio
from fmkit.sparse import SparseBatch

IntArray = npt.NDArray[np.int64]
U8Array = npt.NDArray[np.uint8]
U64Array = npt.NDArray[np.uint64]

#: Value oneof field number -> tensor kind; 9 is Bytes (not numeric)
_TENSOR_FIELDS = {2: "f4", 3: "f8", 7: "i4"}
_VALUE_TAG = {"f4": 0x12, "f8": 0x1A, "i4": 0x3A}
_VALUES_KEY = b"values"
_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5
#: wire type of an unpacked element of a tensor's ``values`` field, per kind
_ELEMENT_WIRE = {"f4": _WIRE_I32, "f8": _WIRE_I64, "i4": _WIRE_VARINT}
#: rows encoded per output block, bounding the writer's temporary memory
ENCODE_ROWS = 65536


# --------------------------------------------------------------------------------------
# errors


class _Errors:
    """Collect the first defect of each record; raise the one in the lowest record."""

    def __init__(self, source: str, base_record: int, offsets: IntArray) -> None:
        self.source = source
        self.base_record = base_record
        self.offsets = offsets
        self.first: dict[int, str] = {}

    def add(self, records: npt.ArrayLike, reason: str) -> None:
        recs = np.asarray(records, dtype=np.int64).ravel()
        if recs.size:
            r = int(recs.min())
            self.first.setdefault(r, reason)

    def message(self, record: int, reason: str) -> str:
        return (f"{self.source}, record {self.base_record + record} at byte "
                f"{int(self.offsets[record])}: {reason}")

    def raise_first(self) -> None:
        if self.first:
            r = min(self.first)
            raise FormatError(self.message(r, self.first[r]))


# --------------------------------------------------------------------------------------
# varints


def _varints_at(
    buf: U8Array, pos: IntArray, end: IntArray
) -> tuple[U64Array, IntArray, npt.NDArray[np.bool_]]:
    """Decode one varint at each ``pos`` (not past ``end``); return values, sizes, bad flags."""
    last = buf.shape[0] - 1
    b = buf[np.minimum(pos, last)]
    val = (b & 0x7F).astype(np.uint64)
    size = np.ones(pos.shape, np.int64)
    bad = pos >= end
    more = np.flatnonzero((b >= 0x80) & ~bad)
    j = 1
    while more.size:
        if j == 10:
            bad[more] = True  # a varint has at most 10 bytes
            break
        p = pos[more] + j
        over = p >= end[more]
        bad[more[over]] = True
        more, p = more[~over], p[~over]
        b = buf[p]
        val[more] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * j)
        size[more] += 1
        more = more[b >= 0x80]
        j += 1
    return val, size, bad


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
# decoding


@dataclass
class _Fields:
    """Fields found by :func:`_scan`, message-major (E,) arrays."""

    msg: IntArray  # index of the owning message
    num: IntArray  # field number
    wire: IntArray
    start: IntArray  # value bytes: payload of LEN, the varint, or the fixed 4/8 bytes
    end: IntArray

    def select(self, mask: npt.NDArray[np.bool_]) -> _Fields:
        return _Fields(self.msg[mask], self.num[mask], self.wire[mask], self.start[mask],
                       self.end[mask])


def _scan(buf: U8Array, starts: IntArray, ends: IntArray, owner: IntArray,
          errors: _Errors, what: str) -> _Fields:
    """Split every message ``buf[starts[i]:ends[i]]`` into fields (one numpy step per field).

    ``owner[i]`` is the record of message ``i``, for errors; a broken message is reported
    and contributes no fields.
    """
    pos = starts.copy()
    active = np.flatnonzero(pos < ends)
    parts: list[tuple[IntArray, ...]] = []
    while active.size:
        p, e = pos[active], ends[active]
        tag, tsize, bad = _varints_at(buf, p, e)
        wire = (tag & np.uint64(7)).astype(np.int64)
        num = (tag >> np.uint64(3)).astype(np.int64)
        p2 = p + tsize
        if bad.any():
            errors.add(owner[active[bad]], f"{what}: truncated field tag")
        bad |= (num == 0) | (wire == 3) | (wire == 4) | (wire > 5)
        if bad.any():
            errors.add(owner[active[bad]], f"{what}: invalid field tag (wire type "
                       f"{int(wire[bad][0])}, field {int(num[bad][0])})")
        vstart, vend = p2.copy(), p2.copy()
        m = np.flatnonzero(wire == _WIRE_VARINT)
        if m.size:
            _, vsize, vbad = _varints_at(buf, p2[m], e[m])
            vend[m] = p2[m] + vsize
            bad[m[vbad]] = True
        vend[wire == _WIRE_I64] += 8
        vend[wire == _WIRE_I32] += 4
        m = np.flatnonzero(wire == _WIRE_LEN)
        if m.size:
            length, lsize, lbad = _varints_at(buf, p2[m], e[m])
            lbad |= length >= np.uint64(1 << 31)
            vstart[m] = p2[m] + lsize
            vend[m] = vstart[m] + np.minimum(length, np.uint64(1 << 31)).astype(np.int64)
            bad[m[lbad]] = True
        over = ~bad & (vend > e)
        if over.any():
            errors.add(owner[active[over]],
                       f"{what}: field {int(num[over][0])} runs past the end of its message")
        bad |= over
        if bad.any():
            errors.add(owner[active[bad]], f"{what}: malformed field")
            pos[active[bad]] = ends[active[bad]]
        ok = ~bad
        parts.append((active[ok], num[ok], wire[ok], vstart[ok], vend[ok]))
        pos[active[ok]] = vend[ok]
        active = active[pos[active] < ends[active]]
    if not parts:
        z = np.zeros(0, np.int64)
        return _Fields(z, z, z, z, z)
    cols = [np.concatenate(c) for c in zip(*parts)]
    order = np.argsort(cols[0], kind="stable")
    return _Fields(*(c[order] for c in cols))


def _gather(buf: U8Array, start: IntArray, end: IntArray) -> U8Array:
    """Concatenate the byte ranges ``buf[start[i]:end[i]]``."""
    lengths = end - start
    if start.size == 1:
        return buf[int(start[0]) : int(end[0])]
    total = int(lengths.sum())
    base = np.zeros(start.shape[0], np.int64)
    np.cumsum(lengths[:-1], out=base[1:])
    idx = np.repeat(start - base, lengths) + np.arange(total, dtype=np.int64)
    return buf[idx]


def _decode_stream(data: U8Array, lengths: IntArray, owner: IntArray, errors: _Errors,
                   what: str, expected: IntArray | None = None,
                   ) -> tuple[U64Array, IntArray, npt.NDArray[np.bool_]]:
    """Decode back-to-back varint regions; return values, count per region, bad regions.

    ``expected`` (varints per region), when given and right, saves counting them.
    """
    n_regions = lengths.shape[0]
    counts = np.zeros(n_regions, np.int64)
    bad = np.zeros(n_regions, np.bool_)
    if data.size == 0:
        return np.zeros(0, np.uint64), counts, bad
    region_end = np.cumsum(lengths)
    nonempty = lengths > 0
    bad[nonempty] = data[region_end[nonempty] - 1] >= 0x80
    if bad.any():
        errors.add(owner[bad], f"{what}: truncated varint")
        keep = np.repeat(~bad, lengths)
        data, lengths = data[keep], np.where(bad, 0, lengths)
        region_end = np.cumsum(lengths)
        if data.size == 0:
            return np.zeros(0, np.uint64), counts, bad
    ends = np.flatnonzero(data < 0x80)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    size = ends - starts + 1
    top = int(size.max())
    # read the 8 bytes at each varint start as one little-endian word, keep its own bytes,
    # and squeeze out the continuation bits: 7 bits per byte
    padded = np.zeros(data.shape[0] + 8, np.uint8)
    padded[: data.shape[0]] = data
    words = np.ndarray(shape=(data.shape[0],), dtype="<u8", buffer=padded, strides=(1,))
    w = words[starts]
    w &= _BYTE_MASKS[size if top <= 8 else np.minimum(size, 8)]
    values = w & np.uint64(0x7F)
    for g in range(1, min(top, 8)):
        values |= (w >> np.uint64(g)) & np.uint64(0x7F << (7 * g))
    if top > 8:
        long = np.flatnonzero(size > 8)
        if top > 10:
            region_of = np.searchsorted(region_end, starts[size > 10], side="right")
            errors.add(owner[region_of], f"{what}: varint longer than 10 bytes")
        for j in (8, 9):
            sel = long[size[long] > j]
            values[sel] |= (data[starts[sel] + j] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    if expected is not None and ends.shape[0] == int(expected.sum()):
        # region r holds expected[r] varints iff its last byte ends varint cum[r] - 1
        cum = np.cumsum(expected)
        nz = expected > 0
        if np.array_equal(nz, lengths > 0) and np.array_equal(ends[cum[nz] - 1],
                                                               region_end[nz] - 1):
            return values, expected, bad
    counts = np.diff(np.searchsorted(ends, region_end, side="left"), prepend=0)
    return values, counts, bad


def _single_varints(buf: U8Array, start: IntArray, end: IntArray) -> U64Array | None:
    """Decode regions that each hold one varint of the same size (<= 8), else None."""
    if start.size == 0:
        return np.zeros(0, np.uint64)
    size = int(end[0] - start[0])
    if not 1 <= size <= 8 or np.any(end - start != size) or int(start.max()) + 8 > buf.shape[0]:
        return None
    words = np.ndarray(shape=(buf.shape[0] - 7,), dtype="<u8", buffer=buf, strides=(1,))
    w = words[start] & _BYTE_MASKS[size]
    flags = w & np.uint64(0x8080808080808080)
    if np.any(flags != np.uint64(0x8080808080808080 & ((1 << (8 * size - 8)) - 1))):
        return None
    values = w & np.uint64(0x7F)
    for g in range(1, size):
        values |= (w >> np.uint64(g)) & np.uint64(0x7F << (7 * g))
    return values


_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _f4_view(buf: U8Array) -> npt.NDArray[np.float32]:
    """Return a float32 view whose element ``i`` is the 4 bytes at byte ``i`` (unaligned)."""
    return np.ndarray(shape=(max(buf.shape[0] - 3, 0),), dtype="<f4", buffer=buf,
                      strides=(1,))


def _gather_f4(buf: U8Array, start: IntArray, end: IntArray) -> npt.NDArray[np.float32]:
    """Concatenate the packed float32 arrays ``buf[start[i]:end[i]]`` (lengths % 4 == 0)."""
    counts = (end - start) // 4
    if start.size == 1:
        return buf[int(start[0]) : int(end[0])].copy().view("<f4").astype(np.float32)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.float32)
    step = np.diff(start)
    if np.all(counts == counts[0]) and step.size and np.all(step == step[0]) and step[0] > 0:
        # equal-width regions at a fixed stride (dense rows): one strided copy
        grid = np.ndarray(shape=(start.shape[0], int(counts[0])), dtype="<f4", buffer=buf,
                          offset=int(start[0]), strides=(int(step[0]), 4))
        return grid.astype(np.float32).ravel()
    if np.all(counts == counts[0]):  # equal nnz per row (one-hot fields): no repeat needed
        pos = (start[:, None] + 4 * np.arange(int(counts[0]), dtype=np.int64)).ravel()
        return _f4_view(buf)[pos].astype(np.float32)
    base = np.zeros(start.shape[0], np.int64)
    np.cumsum(counts[:-1], out=base[1:])
    pos = np.repeat(start - 4 * base, counts) + 4 * np.arange(total, dtype=np.int64)
    return _f4_view(buf)[pos].astype(np.float32)


@dataclass
class _Tensor:
    """Tensors found for a set of records: one per record that has one, record-ordered."""

    rec: IntArray  # (T,) record of each tensor
    kind: npt.NDArray[np.str_]  # 'f4' | 'f8' | 'i4'
    values: npt.NDArray[np.float32]  # concatenated values of all tensors
    n_values: IntArray  # (T,)
    keys: U64Array
    n_keys: IntArray
    dim: IntArray  # shape[0], or -1 when there is no shape


def _entries(buf: U8Array, fields: _Fields, number: int, rec_of_msg: IntArray,
             errors: _Errors, what: str) -> tuple[IntArray, IntArray]:
    """Return (record, Value start/end) of the map entries ``number`` whose key is 'values'.

    Entries are embedded messages ``key:1 string, value:2 Value``; other keys are ignored.
    """
    sel = fields.num == number
    bad_wire = sel & (fields.wire != _WIRE_LEN)
    if bad_wire.any():
        errors.add(rec_of_msg[fields.msg[bad_wire]], f"{what} entry has wire type "
                   f"{int(fields.wire[bad_wire][0])}, expected 2 (length-delimited)")
    sel &= fields.wire == _WIRE_LEN
    ent_rec = rec_of_msg[fields.msg[sel]]
    inner = _scan(buf, fields.start[sel], fields.end[sel], ent_rec, errors, f"{what} entry")
    n_ent = ent_rec.shape[0]
    key_is_values = np.zeros(n_ent, np.bool_)
    has_key = np.zeros(n_ent, np.bool_)
    k = (inner.num == 1) & (inner.wire == _WIRE_LEN)
    # last key wins, as in protobuf; keys are compared as bytes
    key_len = inner.end[k] - inner.start[k]
    match = key_len == len(_VALUES_KEY)
    if match.any():
        idx = inner.start[k][match][:, None] + np.arange(len(_VALUES_KEY))
        match[match] = np.all(buf[idx] == np.frombuffer(_VALUES_KEY, np.uint8), axis=1)
    key_is_values[inner.msg[k]] = match
    has_key[inner.msg[k]] = True
    v = (inner.num == 2) & (inner.wire == _WIRE_LEN)
    vmsg = inner.msg[v]
    take = key_is_values[vmsg]
    vmsg, vstart, vend = vmsg[take], inner.start[v][take], inner.end[v][take]
    # an entry 'values' without a value field is an empty Value
    no_value = key_is_values & ~np.isin(np.arange(n_ent), vmsg)
    if no_value.any():
        e = np.flatnonzero(no_value)
        vmsg = np.concatenate([vmsg, e])
        vstart = np.concatenate([vstart, np.zeros(e.size, np.int64)])
        vend = np.concatenate([vend, np.zeros(e.size, np.int64)])
        order = np.argsort(vmsg, kind="stable")
        vmsg, vstart, vend = vmsg[order], vstart[order], vend[order]
    recs = ent_rec[vmsg]
    dup = np.flatnonzero(np.diff(recs) == 0)
    if dup.size:
        errors.add(recs[dup], f"more than one {what}['values'] entry (unsupported)")
    return recs, np.stack([vstart, vend])


def _region_values(buf: U8Array, kind: str, start: IntArray, end: IntArray, owner: IntArray,
                   errors: _Errors, what: str) -> tuple[npt.NDArray[np.float32], IntArray]:
    """Decode tensor values of one kind from byte regions; return float32 values and counts."""
    if kind == "f4":
        return _gather_f4(buf, start, end), (end - start) // 4
    data = _gather(buf, start, end)
    if kind == "f8":
        with np.errstate(over="ignore"):  # doubles beyond float32 become inf, as in a cast
            vals = np.ascontiguousarray(data).view("<f8").astype(np.float32)
        return vals, (end - start) // 8
    raw, counts, _ = _decode_stream(data, end - start, owner, errors, what)
    vals = (raw & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)
    return vals.astype(np.float32), counts


def _shape_dims(shape: U64Array, n_shape: IntArray, recs: IntArray, errors: _Errors,
                what: str) -> IntArray:
    """Return shape[0] of each tensor, -1 where there is no shape."""
    dim = np.full(n_shape.shape[0], -1, np.int64)
    has_shape = n_shape > 0
    if has_shape.any():
        first = np.concatenate(([0], np.cumsum(n_shape)[:-1]))[has_shape]
        d = shape[first]
        huge = d >= np.uint64(1 << 62)
        if huge.any():
            errors.add(recs[has_shape][huge], f"{what} shape {int(d[huge][0])} is too large")
            d = np.where(huge, np.uint64(0), d)
        dim[has_shape] = d.astype(np.int64)
    return dim


def _tensors(buf: U8Array, recs: IntArray, spans: IntArray, errors: _Errors,
             what: str) -> _Tensor:
    """Parse the Value messages at ``spans`` (2, T), one per record in ``recs``."""
    vf = _scan(buf, spans[0], spans[1], recs, errors, f"{what} value")
    is_bytes = vf.num == 9
    if is_bytes.any():
        errors.add(recs[vf.msg[is_bytes]], f"{what} holds a Bytes value; only Float32, "
                   "Float64 and Int32 tensors are supported")
    is_tensor = np.isin(vf.num, (2, 3, 7))
    bad_wire = is_tensor & (vf.wire != _WIRE_LEN)
    if bad_wire.any():
        errors.add(recs[vf.msg[bad_wire]], f"{what} tensor has a wrong wire type")
    tf = vf.select(is_tensor & (vf.wire == _WIRE_LEN))
    multi = np.flatnonzero(np.diff(tf.msg) == 0)
    if multi.size:
        errors.add(recs[tf.msg[multi]], f"{what} value holds more than one tensor "
                   "(unsupported)")
    # a Value without a tensor (possible for an empty row) counts as an empty Float32 one
    kind_num = np.full(recs.shape[0], 2, np.int64)
    kind_num[tf.msg] = tf.num
    t_start = np.zeros(recs.shape[0], np.int64)
    t_end = np.zeros(recs.shape[0], np.int64)
    t_start[tf.msg], t_end[tf.msg] = tf.start, tf.end
    fields = _scan(buf, t_start, t_end, recs, errors, f"{what} tensor")
    kind = np.where(kind_num == 2, "f4", np.where(kind_num == 3, "f8", "i4"))
    fkind = kind[fields.msg]

    def regions(number: int, element_wire: npt.NDArray[np.int64] | int,
                name: str) -> _Fields:
        sel = fields.num == number
        ok = sel & ((fields.wire == _WIRE_LEN) | (fields.wire == element_wire))
        wrong = sel & ~ok
        if wrong.any():
            errors.add(recs[fields.msg[wrong]], f"{what} tensor {name} has wire type "
                       f"{int(fields.wire[wrong][0])}")
        return fields.select(ok)

    n_t = recs.shape[0]
    # values: float32/float64 are fixed width; int32 values are varints
    elem_wire = np.where(fkind == "f4", _WIRE_I32, np.where(fkind == "f8", _WIRE_I64,
                                                              _WIRE_VARINT))
    vr = regions(1, elem_wire, "values")
    rkind = kind[vr.msg]
    n_values = np.zeros(n_t, np.int64)
    vlen = vr.end - vr.start
    width = np.where(rkind == "f4", 4, np.where(rkind == "f8", 8, 1))
    misfit = (rkind != "i4") & (vlen % width != 0)
    if misfit.any():
        errors.add(recs[vr.msg[misfit]], f"{what} packed float values have a length that is "
                   "not a multiple of the element size")
        vr = vr.select(~misfit)
        rkind, vlen, width = rkind[~misfit], vlen[~misfit], width[~misfit]
    homogeneous = bool(np.all(rkind == rkind[0])) if rkind.size else True
    if homogeneous:
        groups = [(rkind[0] if rkind.size else "f4", np.ones(rkind.shape, np.bool_))]
    else:
        groups = [(k, rkind == k) for k in ("f4", "f8", "i4")]
    pieces: list[tuple[IntArray, npt.NDArray[np.float32], IntArray]] = []
    for k, m in groups:
        if not m.any():
            continue
        msg = vr.msg[m]
        vals, counts = _region_values(buf, k, vr.start[m], vr.end[m], recs[msg], errors,
                                      f"{what} values")
        pieces.append((msg, vals, counts))
    if len(pieces) == 1:
        msg, out, counts = pieces[0]
        n_values = np.bincount(msg, weights=counts, minlength=n_t).astype(np.int64)
    elif pieces:
        # several tensor kinds in one batch: put the element runs back in region order
        msg = np.concatenate([p[0] for p in pieces])
        counts = np.concatenate([p[2] for p in pieces])
        runs = np.split(np.concatenate([p[1] for p in pieces]), np.cumsum(counts)[:-1])
        order = np.argsort(msg, kind="stable")
        out = np.concatenate([runs[i] for i in order])
        n_values = np.bincount(msg, weights=counts, minlength=n_t).astype(np.int64)
    else:
        out = np.zeros(0, np.float32)
    n_values = np.asarray(n_values, np.int64)

    def varint_field(number: int, name: str) -> tuple[U64Array, IntArray]:
        r = regions(number, _WIRE_VARINT, name)
        data = _gather(buf, r.start, r.end) if r.msg.size else np.zeros(0, np.uint8)
        vals, counts, bad = _decode_stream(data, r.end - r.start, recs[r.msg], errors,
                                           f"{what} {name}")
        per = np.zeros(n_t, np.int64)
        np.add.at(per, r.msg[~bad], counts[~bad])
        return vals, per

    keys, n_keys = varint_field(2, "keys")
    shape, n_shape = varint_field(3, "shape")
    dim = _shape_dims(shape, n_shape, recs, errors, what)
    return _Tensor(recs, kind, out, n_values, keys, n_keys, dim)


_FE_HEAD = np.frombuffer(b"\x0a\x06" + _VALUES_KEY + b"\x12", np.uint8)
_LABEL_F4_HEAD = np.frombuffer(b"\x12\x12\x0a\x06" + _VALUES_KEY + b"\x12\x08\x12\x06\x0a\x04",
                               np.uint8)
_FE_HEAD_WORD = _FE_HEAD[:8].view("<u8")[0]
_LABEL_HEAD_WORDS = _LABEL_F4_HEAD.view("<u8")
_KIND_OF_TAG = {0x12: "f4", 0x1A: "f8", 0x3A: "i4"}


def _sdk_layout(buf: U8Array, p: IntArray, e: IntArray,
                errors: _Errors) -> tuple[_Tensor, _Tensor] | None:
    """Parse records in the SageMaker SDK's exact layout with a fixed sequence of steps.

    The layout is ``features{"values": tensor{values?, keys?, shape?}}`` then an optional
    ``label{"values": Float32Tensor{[y]}}``. Returns None as soon as any record differs,
    and the general parser takes over.
    """
    n = p.shape[0]
    last = buf.shape[0] - 1
    if np.any(buf[np.minimum(p, last)] != 0x0A) or np.any(e - p < 12):
        return None
    fe_len, size, bad = _varints_at(buf, p + 1, e)
    fe = p + 1 + size
    fe_end = fe + fe_len.astype(np.int64)
    if bad.any() or np.any(fe_end > e) or np.any(fe_end - fe < 11):
        return None
    words = np.ndarray(shape=(max(buf.shape[0] - 7, 0),), dtype="<u8", buffer=buf,
                       strides=(1,))
    if np.any(words[fe] != _FE_HEAD_WORD) or np.any(buf[fe + 8] != _FE_HEAD[8]):
        return None
    v_len, size, bad = _varints_at(buf, fe + 9, fe_end)
    v = fe + 9 + size
    if bad.any() or not np.array_equal(v + v_len.astype(np.int64), fe_end):
        return None
    tag = buf[np.minimum(v, last)]
    if np.any(v >= fe_end) or np.any(tag != tag[0]) or int(tag[0]) not in _KIND_OF_TAG:
        return None
    kind = _KIND_OF_TAG[int(tag[0])]
    t_len, size, bad = _varints_at(buf, v + 1, fe_end)
    t = v + 1 + size
    if bad.any() or not np.array_equal(t + t_len.astype(np.int64), fe_end):
        return None
    spans = []
    pos = t
    for field_tag in (0x0A, 0x12, 0x1A):
        has = (pos < fe_end) & (buf[np.minimum(pos, last)] == field_tag)
        start = pos.copy()
        if has.any():
            length, size, bad = _varints_at(buf, pos[has] + 1, fe_end[has])
            if bad.any():
                return None
            start[has] = pos[has] + 1 + size
            pos = pos.copy()
            pos[has] = start[has] + length.astype(np.int64)
        spans.append((has, start, pos))
    if not np.array_equal(pos, fe_end):
        return None
    has_label = fe_end < e
    if has_label.any():
        lp = fe_end[has_label]
        if not np.array_equal(e[has_label], lp + 20):
            return None
        if np.any(words[lp] != _LABEL_HEAD_WORDS[0]) or np.any(
                words[lp + 8] != _LABEL_HEAD_WORDS[1]):
            return None
        label_values = _f4_view(buf)[lp + 16]
    else:
        label_values = np.zeros(0, np.float32)
    rec = np.arange(n, dtype=np.int64)
    (hv, vs, ve), (hk, ks, ke), (hs, ss, se) = spans
    if kind != "i4" and np.any((ve - vs) % (4 if kind == "f4" else 8)):
        return None
    values, n_values = _region_values(buf, kind, vs[hv], ve[hv], rec[hv], errors,
                                      "features values")
    if not hv.all():
        n_values = np.zeros(n, np.int64)
        n_values[hv] = (ve - vs)[hv] // (4 if kind == "f4" else 8) if kind != "i4" else 0
        if kind == "i4":
            return None
    keys, kcounts, kbad = _decode_stream(_gather(buf, ks[hk], ke[hk]), (ke - ks)[hk], rec[hk],
                                         errors, "features keys", expected=n_values[hk])
    shape = _single_varints(buf, ss[hs], se[hs])
    if shape is not None:
        scounts, sbad = np.ones(shape.shape[0], np.int64), np.zeros(0, np.bool_)
    else:
        shape, scounts, sbad = _decode_stream(_gather(buf, ss[hs], se[hs]), (se - ss)[hs],
                                              rec[hs], errors, "features shape")
    if kbad.any() or sbad.any():
        return None
    n_keys = np.zeros(n, np.int64)
    n_keys[hk] = kcounts
    n_shape = np.zeros(n, np.int64)
    n_shape[hs] = scounts
    dim = _shape_dims(shape, n_shape, rec, errors, "features")
    kinds = np.full(n, kind)
    feats = _Tensor(rec, kinds, values, n_values, keys, n_keys, dim)
    n_lab = int(has_label.sum())
    labs = _Tensor(rec[has_label], np.full(n_lab, "f4"), label_values.astype(np.float32),
                   np.ones(n_lab, np.int64), np.zeros(0, np.uint64), np.zeros(n_lab, np.int64),
                   np.full(n_lab, -1, np.int64))
    return feats, labs


def _decode_frames(
    frames: recordio.Frames,
    *,
    source: str,
    base_record: int = 0,
    require_labels: bool = False,
) -> SparseBatch:
    """Decode the records of ``frames`` into one SparseBatch (see :func:`decode_batch`)."""
    buf, n = frames.buffer, len(frames)
    errors = _Errors(source, base_record, frames.offsets)
    if n == 0:
        return SparseBatch.from_arrays([], [0], [])
    fast = _sdk_layout(buf, frames.starts, frames.ends, errors)
    if fast is not None and not errors.first:
        feats, labs = fast
    else:
        errors.first.clear()
        rec = np.arange(n, dtype=np.int64)
        top = _scan(buf, frames.starts, frames.ends, rec, errors, "record")
        f_recs, f_spans = _entries(buf, top, 1, rec, errors, "features")
        l_recs, l_spans = _entries(buf, top, 2, rec, errors, "label")
        feats = _tensors(buf, f_recs, f_spans, errors, "features")
        labs = _tensors(buf, l_recs, l_spans, errors, "label")
        errors.raise_first()

    # features -> CSR rows
    nv, nk = feats.n_values, feats.n_keys
    sparse = nk > 0
    mismatch = sparse & (nk != nv)
    if mismatch.any():
        i = int(np.argmax(mismatch))
        errors.add(feats.rec[i], f"sparse features have {int(nv[i])} values but "
                   f"{int(nk[i])} keys")
    row_len = np.zeros(n, np.int64)
    row_len[feats.rec] = nv
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(row_len, out=offsets[1:])
    values = feats.values
    errors.raise_first()
    if sparse.all():
        indices = feats.keys
    elif not sparse.any() and nv.size and np.all(nv == nv[0]):
        # dense rows of one width: columns 0..width-1 in every row
        indices = np.tile(np.arange(int(nv[0]), dtype=np.uint64), nv.shape[0])
        from_key = np.zeros(indices.shape[0], np.bool_)
    else:
        # dense rows: value j sits at column j; their explicit zeros are dropped below
        from_key = np.repeat(sparse, nv)
        t_off = np.concatenate(([0], np.cumsum(nv)[:-1]))
        pos_in_row = np.arange(values.shape[0], dtype=np.int64) - np.repeat(t_off, nv)
        indices = pos_in_row.astype(np.uint64)
        indices[from_key] = feats.keys
    # a row states its length by shape[0], or by its values when dense (not when empty)
    dim = np.where(feats.dim >= 0, feats.dim, np.where(sparse | (nv == 0), -1, nv))
    known = dim >= 0
    feature_dim: int | None = None
    if known.any():
        dims = dim[known]
        odd = dims != dims[0]
        if odd.any():
            i = int(np.argmax(odd))
            errors.add(feats.rec[known][i], f"feature length {int(dims[i])} differs from "
                       f"{int(dims[0])} in record {base_record + int(feats.rec[known][0])}")
        feature_dim = int(dims[0])
        # keys beyond shape: sparse rows with a stated shape
        row_dim = np.repeat(np.where(known, dim, np.iinfo(np.int64).max), nv)
        beyond = indices >= row_dim.astype(np.uint64)
        if beyond.any():
            z = int(np.argmax(beyond))
            t = int(np.searchsorted(np.cumsum(nv), z, side="right"))
            errors.add(feats.rec[t], f"feature key {int(indices[z])} is beyond the shape "
                       f"{int(row_dim[z])} (keys must be < shape[0])")
    if indices.size and indices.max() >= np.uint64(1 << 62):
        z = int(np.argmax(indices >= np.uint64(1 << 62)))
        t = int(np.searchsorted(np.cumsum(nv), z, side="right"))
        errors.add(feats.rec[t], f"feature key {int(indices[z])} is too large")
    errors.raise_first()

    if not sparse.all():
        keep = from_key | (values != 0)
        if not keep.all():
            row_keep = np.zeros(n, np.int64)
            row_keep[feats.rec] = np.bincount(np.repeat(np.arange(nv.shape[0]), nv)[keep],
                                              minlength=nv.shape[0])
            np.cumsum(row_keep, out=offsets[1:])
            indices, values = indices[keep], values[keep]
    # labels: label['values'] holds one value per labelled record
    labels: npt.NDArray[np.float32] | None = None
    one = labs.n_values == 1
    if not one.all():
        i = int(np.argmax(~one))
        errors.add(labs.rec[i], f"label['values'] must hold exactly one value; got "
                   f"{int(labs.n_values[i])}")
        errors.raise_first()
    if labs.rec.shape[0] == n:
        labels = np.empty(n, np.float32)
        labels[labs.rec] = labs.values
    elif require_labels:
        has = np.zeros(n, np.bool_)
        has[labs.rec] = True
        errors.add(int(np.argmax(~has)), "no label: training data needs label['values'] "
                   "in every record")
        errors.raise_first()
    return SparseBatch(indices.view(np.int64), offsets,
                       np.ascontiguousarray(values, np.float32), labels, None, feature_dim)


def decode_batch(
    data: bytes | bytearray | memoryview,
    *,
    source: str = "<request>",
    require_labels: bool = False,
) -> SparseBatch:
    """Decode all framed Records in a byte buffer.

    Parameters
    ----------
    data : bytes-like
        One or more recordIO frames (a request body, or a whole file). A final record whose
        padding was stripped is accepted.
    source : str, default='<request>'
        Name used in error messages.
    require_labels : bool, default=False
        Raise unless every record has ``label['values']``.

    Returns
    -------
    SparseBatch
        One row per record, in order. Dense records give columns ``0..len-1``; sparse ones
        their keys. ``feature_dim`` is the records' ``shape[0]`` (or dense length) when
        stated. ``labels`` (float32) when every record has one, else None.

    Raises
    ------
    FormatError
        Bad framing or protobuf, sparse keys/values count mismatch, a key beyond the shape,
        records of different feature lengths, a label tensor without exactly one value, or
        (with ``require_labels``) a record without a label; the message names ``source``,
        the record number and its byte offset.
    """
    frames = recordio.scan(data, source=source, final=True)
    return _decode_frames(frames, source=source, require_labels=require_labels)


def iter_stream(
    stream: BinaryIO,
    *,
    source: str,
    require_labels: bool = False,
    chunk_bytes: int = recordio.CHUNK_BYTES,
) -> Iterator[SparseBatch]:
    """Yield the rows of a recordIO-protobuf stream in chunks, in constant memory."""
    record = 0
    for frames in recordio.iter_chunks(stream, source=source, chunk_bytes=chunk_bytes):
        yield _decode_frames(frames, source=source, base_record=record,
                             require_labels=require_labels)
        record += len(frames)


def decode_label_records(data: bytes, *, source: str = "<response>") -> dict[str, np.ndarray]:
    """Decode response Records: every ``label`` entry's first value, per key, as float32.

    The inverse of :func:`encode_label_records`; a key missing from a record gives NaN.
    """
    from fmkit.io.recordproto import record_class

    frames = recordio.scan(data, source=source, final=True)
    record_type = record_class()
    out: dict[str, list[float]] = {}
    n = len(frames)
    for i in range(n):
        r = record_type()
        try:
            r.ParseFromString(frames.buffer[frames.starts[i] : frames.ends[i]].tobytes())
        except Exception as exc:  # protobuf's DecodeError
            raise FormatError(f"{source}, record {i} at byte {int(frames.offsets[i])}: "
                              f"not a Record ({exc}).") from None
        for key, value in r.label.items():
            tensor = getattr(value, value.WhichOneof("value") or "float32_tensor")
            col = out.setdefault(key, [float("nan")] * n)
            col[i] = float(tensor.values[0]) if len(tensor.values) else float("nan")
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


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
