"""recordIO-protobuf wire scanning: varints, the fields of many messages at once (spec §3.3).

A protobuf message is a sequence of ``tag, value`` fields, so step ``k`` of :func:`_scan`
reads field ``k`` of all messages still open with a few numpy operations; each nesting level
(Record -> map entry -> Value -> tensor) is one such scan. Packed arrays are gathered for all
rows in one pass: float bytes are viewed as float32/float64, varints decoded as one stream.
Errors are collected per record by :class:`_Errors`, which raises the lowest one.

Shapes: N rows (records), Z stored values, E fields found by a scan, B bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fmkit.errors import FormatError

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
