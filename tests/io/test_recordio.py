"""RecordIO framing: golden bytes, split records, stripped padding, chunking, defects."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from fmkit.errors import FormatError
from fmkit.io import recordio

MAGIC = bytes.fromhex("0a23d7ce")


def _frames(payloads: list[bytes]) -> bytes:
    return b"".join(recordio.frame(p) for p in payloads)


def _payloads(frames: recordio.Frames) -> list[bytes]:
    return [frames.buffer[s:e].tobytes() for s, e in zip(frames.starts, frames.ends)]


def test_frame_golden_bytes() -> None:
    assert recordio.frame(b"abc") == MAGIC + b"\x03\0\0\0abc\0"
    assert recordio.frame(b"abcd") == MAGIC + b"\x04\0\0\0abcd"
    assert recordio.frame(b"") == MAGIC + b"\0\0\0\0"


@pytest.mark.parametrize("final", [True, False])
def test_scan_finds_every_payload(final: bool) -> None:
    payloads = [b"x" * n for n in (0, 1, 2, 3, 4, 5, 17, 100)]
    frames = recordio.scan(_frames(payloads), final=final)
    assert _payloads(frames) == payloads
    assert frames.consumed == len(_frames(payloads))
    expected_offsets = np.cumsum([0] + [len(recordio.frame(p)) for p in payloads[:-1]])
    assert frames.offsets.tolist() == expected_offsets.tolist()


def test_magic_inside_a_payload_is_not_a_frame() -> None:
    payloads = [b"abcd" + MAGIC + b"\x04\0\0\0" + b"zzzz", b"tail"]
    assert _payloads(recordio.scan(_frames(payloads))) == payloads


def test_final_record_with_stripped_padding_is_accepted() -> None:
    data = _frames([b"abcde", b"xyz"])[:-1]  # last frame: 3 bytes + 1 pad, pad removed
    assert _payloads(recordio.scan(data)) == [b"abcde", b"xyz"]


def test_split_record_parts_are_joined_with_the_magic() -> None:
    def part(cflag: int, payload: bytes) -> bytes:
        n = len(payload)
        return struct.pack("<II", recordio.MAGIC, (cflag << 29) | n) + payload + b"\0" * (
            recordio.padded_length(n) - n)

    data = (recordio.frame(b"first") + part(1, b"ab") + part(2, b"cd") + part(3, b"ef")
            + recordio.frame(b"last"))
    frames = recordio.scan(data, source="s.rec")
    assert _payloads(frames) == [b"first", b"ab" + MAGIC + b"cd" + MAGIC + b"ef", b"last"]
    assert frames.offsets.tolist() == [0, 16, 52]
    with pytest.raises(FormatError, match=r"s\.rec, record 1 at byte 16: split record never"):
        recordio.scan(recordio.frame(b"first") + part(1, b"ab"), source="s.rec")
    with pytest.raises(FormatError, match="without a first part"):
        recordio.scan(part(3, b"ab"))


def test_wrong_magic_names_source_record_and_offset() -> None:
    data = _frames([b"abcd", b"efgh"]) + b'{"instances": []}'
    with pytest.raises(FormatError, match=r"t\.rec, record 2 at byte 24: expected magic "
                       r"0xced7230a, found .*JSON"):
        recordio.scan(data, source="t.rec")
    with pytest.raises(FormatError, match="record 0 at byte 0.*text"):
        recordio.scan(b"1 3:1 5:1\n", source="t.rec")


def test_truncated_payload_and_header() -> None:
    data = _frames([b"abcd", b"efghijkl"])
    with pytest.raises(FormatError, match=r"record 1 at byte 12: length 8 runs past the end"):
        recordio.scan(data[:-3])
    with pytest.raises(FormatError, match=r"record 1 at byte 12: truncated frame header"):
        recordio.scan(data[:15])


@pytest.mark.parametrize("chunk", [1, 7, 12, 64, 1 << 20])
def test_iter_chunks_matches_whole_scan(chunk: int, rng: np.random.Generator) -> None:
    payloads = [rng.bytes(int(n)) for n in rng.integers(0, 40, 50)]
    data = _frames(payloads)
    got: list[bytes] = []
    offsets: list[int] = []
    for frames in recordio.iter_chunks(io.BytesIO(data), source="x", chunk_bytes=chunk):
        got += _payloads(frames)
        offsets += frames.offsets.tolist()
    assert got == payloads
    assert offsets == recordio.scan(data).offsets.tolist()


def test_iter_chunks_reports_the_global_record_number() -> None:
    data = _frames([b"a" * 8] * 10) + b"garbage!"
    with pytest.raises(FormatError, match=r"record 10 at byte 160"):
        list(recordio.iter_chunks(io.BytesIO(data), source="x", chunk_bytes=40))
