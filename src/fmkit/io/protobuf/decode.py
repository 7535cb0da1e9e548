"""recordIO-protobuf ``Record`` bytes -> :class:`~fmkit.sparse.SparseBatch`, vectorised.

Built on the scans of :mod:`fmkit.io.protobuf.scan`: the SageMaker SDK's exact layout is
parsed with a fixed sequence of steps (:func:`_sdk_layout`), anything else (any field order,
unknown fields, unpacked repeated fields, all three tensor types) field by field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fmkit.errors import FormatError
from fmkit.io import recordio
from fmkit.io.protobuf.scan import (
    IntArray, U64Array, U8Array, _decode_stream, _Errors, _f4_view, _Fields, _gather,
    _gather_f4, _scan, _single_varints, _VALUES_KEY, _varints_at, _WIRE_I32, _WIRE_I64,
    _WIRE_LEN, _WIRE_VARINT,
)
from fmkit.sparse import SparseBatch


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
