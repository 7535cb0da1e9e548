"""Shared pieces of the text formats (libsvm, CSV): line chunking and number formatting.

Text readers parse whole chunks of lines at once: numbers go through numpy's C parser in
one call, and only when that fails does a line-by-line pass find the offending token and
its line number and byte offset.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

#: bytes read per step by the streaming text readers
CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class Lines:
    """A block of whole lines: ``text`` starts at byte ``offset`` and line ``first_line``."""

    text: bytes
    offset: int
    first_line: int  # 1-based number of the first line in ``text``


def iter_lines(stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Lines]:
    """Yield blocks of whole lines from a binary stream, in constant memory."""
    carry = b""
    offset = 0
    line = 1
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            if carry:
                yield Lines(carry, offset, line)
            return
        data = carry + block if carry else block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data  # one line longer than a chunk: keep reading
            continue
        yield Lines(data[:cut], offset, line)
        line += data.count(b"\n", 0, cut)
        offset += cut
        carry = data[cut:]


def parse_numbers(text: bytes | str, sep: str) -> npt.NDArray[np.float64] | None:
    """Parse ``sep``-separated numbers with numpy's C parser; None if any token is bad."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(text, dtype=np.float64, sep=sep)  # type: ignore[call-overload]
        except (ValueError, DeprecationWarning):
            return None


def line_positions(text: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the start and end byte (exclusive, before ``\\n``) of every line of ``text``."""
    arr = np.frombuffer(text, np.uint8)
    ends = np.flatnonzero(arr == 10).astype(np.int64)
    if text and not text.endswith(b"\n"):
        ends = np.append(ends, len(text))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64) if ends.size else ends
    return starts, ends


def format_numbers(x: npt.NDArray[np.float32]) -> list[str]:
    """Format float32 numbers as the shortest text that reads back to the same float32."""
    x = np.asarray(x, np.float32)
    out = np.empty(x.shape[0], dtype=object)
    with np.errstate(invalid="ignore"):
        integral = np.isfinite(x) & (x == np.round(x)) & (np.abs(x) < 2.0**24)
    out[integral] = x[integral].astype(np.int64).astype(str)
    out[~integral] = x[~integral].astype(str)
    return out.tolist()  # type: ignore[no-any-return]
