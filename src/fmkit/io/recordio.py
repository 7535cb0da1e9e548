"""RecordIO framing (MXNet / SageMaker), little-endian, as in spec §3.2.

A frame is ``magic (u32) | lrec (u32) | payload | zero padding to a multiple of 4``, where
``lrec = (cflag << 29) | length``. cflag 0 is a whole record; 1, 2, 3 are the first, middle
and last parts of a payload that was split where the magic appeared at an aligned offset,
and a reader puts the 4 magic bytes back between the parts.

Shapes: M frames (or logical records) in a buffer.

The scan is vectorised: every aligned magic word is a candidate frame start, and when each
candidate's successor is exactly the next candidate (no magic inside a payload, no split
records), the whole buffer is framed by a handful of numpy operations. Otherwise a
sequential walk frames it and reports the first defect with its record number and byte
offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fmkit.errors import FormatError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
#: bytes read per step by the streaming reader
CHUNK_BYTES = 8 << 20

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Frames:
    """Logical records found in a buffer.

    ``buffer`` holds the payloads (the input buffer itself, or a new one when split
    records had to be joined); ``starts``/``ends`` (M,) delimit each payload in it and
    ``offsets`` (M,) give each record's byte offset in the source, for error messages.
    ``consumed`` is how many input bytes the complete records use (the rest belongs to
    a record that continues in the next chunk).
    """

    buffer: npt.NDArray[np.uint8]
    starts: IntArray
    ends: IntArray
    offsets: IntArray
    consumed: int

    def __len__(self) -> int:
        return int(self.starts.shape[0])


def padded_length(length: int) -> int:
    """Return ``length`` rounded up to a multiple of 4."""
    return (length + 3) & ~3


def frame(payload: bytes) -> bytes:
    """Return one payload framed as a single cflag-0 record, as the SageMaker SDK writes it."""
    n = len(payload)
    if n > _LENGTH_MASK:
        raise FormatError(f"a recordIO payload must be < 2^29 bytes; got {n}.")
    return struct.pack("<II", MAGIC, n) + payload + b"\0" * (padded_length(n) - n)


def _describe(head: bytes) -> str:
    """Say what a wrong magic looks like, for error messages."""
    guess = ""
    if head.startswith(b"PK"):
        guess = " (a zip/npz file?)"
    elif head[:1] in (b"{", b"["):
        guess = " (JSON?)"
    elif head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        guess = " (text: CSV or libsvm?)"
    return f"{head!r}{guess}"


def scan(
    data: bytes | bytearray | memoryview | npt.NDArray[np.uint8],
    *,
    source: str = "<bytes>",
    base_offset: int = 0,
    base_record: int = 0,
    final: bool = True,
) -> Frames:
    """Find the records in ``data``.

    Parameters
    ----------
    data : bytes-like or uint8 array
        Whole frames, optionally followed by the start of an incomplete one.
    source : str
        File or request name used in error messages.
    base_offset, base_record : int
        Byte offset and record number of ``data[0]`` in the source, for error messages.
    final : bool, default=True
        ``data`` ends the stream: an incomplete trailing frame is an error, except a last
        record whose padding was stripped (batch SingleRecord mode), which is accepted.

    Raises
    ------
    FormatError
        Wrong magic, a length running past the end, or a broken split-record sequence;
        the message names ``source``, the record number and the byte offset.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    fast = _scan_fast(buf, final=final)
    if fast is not None:
        starts, lengths = fast
        if starts.size == 0:
            consumed = 0
        else:
            consumed = min(int(starts[-1] + padded_length(int(lengths[-1]))), buf.shape[0])
        return Frames(buf, starts, starts + lengths, starts - 8 + base_offset, consumed)
    return _scan_walk(buf, source=source, base_offset=base_offset, base_record=base_record,
                      final=final)


def _scan_fast(
    buf: npt.NDArray[np.uint8], *, final: bool
) -> tuple[IntArray, IntArray] | None:
    """Frame ``buf`` with numpy when it is a clean chain of cflag-0 frames; else None."""
    total = buf.shape[0]
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    n_words = total // 4
    if n_words < 2:
        return None
    words = buf[: n_words * 4].view("<u4")
    cand = np.flatnonzero(words == MAGIC)
    if cand.size == 0 or cand[0] != 0:
        return None
    cand = cand.astype(np.int64)
    # drop a candidate whose length word is not in the buffer: an incomplete header
    if cand[-1] + 1 >= n_words:
        if not final and cand.size > 1 and total - 4 * int(cand[-1]) < 8:
            cand = cand[:-1]
        else:
            return None
    lrec = words[cand + 1].astype(np.int64)
    if np.any(lrec >> 29):
        return None
    lengths = lrec & _LENGTH_MASK
    nxt = cand + 2 + (lengths + 3) // 4
    if cand.size > 1 and not np.array_equal(nxt[:-1], cand[1:]):
        return None
    starts = 4 * cand + 8
    last_end = int(starts[-1] + lengths[-1])
    last_padded = 4 * int(nxt[-1])
    if last_padded <= total:
        if last_padded != total and final:
            return None  # trailing bytes after the last frame: let the walk describe them
        if last_padded < total and not final and total - last_padded >= 8:
            return None  # unexpected bytes (the chain should have continued)
        return starts, lengths
    if last_end <= total and final:
        return starts, lengths  # last record with stripped padding
    if final:
        return None
    return starts[:-1], lengths[:-1]


def _scan_walk(
    buf: npt.NDArray[np.uint8],
    *,
    source: str,
    base_offset: int,
    base_record: int,
    final: bool,
) -> Frames:
    """Frame ``buf`` one frame at a time, joining split records; report the first defect."""
    raw = buf.tobytes() if buf.shape[0] < (1 << 16) else memoryview(buf)
    total = buf.shape[0]
    unpack = struct.Struct("<II").unpack_from
    starts: list[int] = []
    ends: list[int] = []
    offsets: list[int] = []
    joined: list[bytes] | None = None  # payload pieces when split records exist
    pieces: list[bytes] = []
    piece_start = -1
    record = base_record
    pos = 0
    consumed = 0
    while pos < total:
        where = f"{source}, record {record} at byte {base_offset + pos}"
        if total - pos < 8:
            if not final:
                break
            raise FormatError(f"{where}: truncated frame header ({total - pos} of 8 bytes).")
        magic, lrec = unpack(raw, pos)
        if magic != MAGIC:
            head = bytes(raw[pos : pos + 8])
            raise FormatError(
                f"{where}: expected magic 0xced7230a, found {_describe(head)}."
            )
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        end = pos + 8 + length
        if end > total:
            if not final:
                break
            raise FormatError(
                f"{where}: length {length} runs past the end of the data "
                f"({total - pos - 8} bytes left): the file is truncated."
            )
        next_pos = pos + 8 + padded_length(length)  # may pass the end: stripped padding
        if cflag == 0:
            if pieces:
                raise FormatError(f"{where}: a whole record (cflag 0) inside a split record "
                                  "that never ended (missing cflag 3).")
            if joined is not None:
                joined.append(bytes(raw[pos + 8 : end]))
            starts.append(pos + 8)
            ends.append(end)
            offsets.append(base_offset + pos)
            record += 1
            consumed = min(next_pos, total)
        elif cflag == 1:
            if pieces:
                raise FormatError(f"{where}: a split record starts (cflag 1) before the "
                                  "previous one ended.")
            pieces = [bytes(raw[pos + 8 : end])]
            piece_start = pos
        elif cflag in (2, 3):
            if not pieces:
                raise FormatError(f"{where}: continuation part (cflag {cflag}) without a "
                                  "first part (cflag 1).")
            pieces.append(MAGIC_BYTES)
            pieces.append(bytes(raw[pos + 8 : end]))
            if cflag == 3:
                if joined is None:
                    joined = [bytes(raw[s:e]) for s, e in zip(starts, ends)]
                joined.append(b"".join(pieces))
                starts.append(-1)
                ends.append(-1)
                offsets.append(base_offset + piece_start)
                pieces = []
                record += 1
                consumed = min(next_pos, total)
        else:  # pragma: no cover - cflag has 3 bits; 4..7 are invalid
            raise FormatError(f"{where}: invalid continuation flag {cflag} (allowed 0-3).")
        pos = next_pos
    if pieces and final:
        raise FormatError(f"{source}, record {record} at byte {base_offset + piece_start}: "
                          "split record never ended (missing cflag 3 part).")
    if joined is None:
        return Frames(buf, np.asarray(starts, np.int64), np.asarray(ends, np.int64),
                      np.asarray(offsets, np.int64), consumed)
    lengths = np.fromiter((len(p) for p in joined), np.int64, len(joined))
    new_starts = np.zeros(len(joined), np.int64)
    np.cumsum(lengths[:-1], out=new_starts[1:])
    new_buf = np.frombuffer(b"".join(joined), dtype=np.uint8)
    return Frames(new_buf, new_starts, new_starts + lengths, np.asarray(offsets, np.int64),
                  consumed)


def iter_chunks(
    stream: BinaryIO,
    *,
    source: str,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[Frames]:
    """Yield the records of a stream chunk by chunk, in constant memory.

    Each :class:`Frames` holds only complete records; a record cut by a chunk boundary is
    carried into the next chunk. Works on pipes (reads sequentially, never seeks).
    """
    carry = b""
    offset = 0  # source offset of carry[0]
    record = 0
    want = chunk_bytes
    while True:
        block = stream.read(want)
        eof = not block
        data = carry + block if carry else block
        if not data:
            return
        frames = scan(data, source=source, base_offset=offset, base_record=record, final=eof)
        if len(frames):
            yield frames
        record += len(frames)
        if eof:
            return
        if frames.consumed == 0:
            want = max(chunk_bytes, 2 * len(data))  # one record larger than a chunk
        else:
            want = chunk_bytes
        carry = bytes(data[frames.consumed :])
        offset += frames.consumed
