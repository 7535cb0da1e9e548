"""libsvm / svmlight text: ``label index:value index:value ... [# comment]``, one row a line.

Keys are 0- or 1-based (``zero_based``; ``None`` means: 1-based unless some key is 0, as
scikit-learn's ``load_svmlight_file`` guesses); ``qid:N`` tokens and ``#`` comments are
ignored, blank lines skipped. The writer emits 1-based keys, the libsvm convention, so a
file fmkit writes is read back the same way by the guess.

A block of lines is parsed at once, by the one-pass numba kernel (:mod:`.libsvm_kernel`)
when numba is installed and the block is plain, else by numpy: ':' count per line gives the
row lengths, numpy parses every number in one call, and a line-by-line pass runs only to name
a defect. Both give identical arrays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fmkit.errors import FormatError
from fmkit.io import libsvm_kernel
from fmkit.io import text as _text
from fmkit.sparse import SparseBatch

_COMMENT = re.compile(rb"#[^\n]*")
_QID = re.compile(rb"(?<=[ \t])qid:[^ \t\r\n]*")
_SEPARATORS = bytes.maketrans(b"\t\r:", b"   ")
_SPACE = np.frombuffer(b" \t\r:\n", np.uint8)


def _locate(text: bytes, lines: _text.Lines, source: str) -> FormatError:
    """Find the first malformed line of a block and describe it."""
    pos = 0
    for i, raw in enumerate(text.split(b"\n")):
        where = f"{source}, line {lines.first_line + i} at byte {lines.offset + pos}"
        pos += len(raw) + 1
        body = raw.split(b"#", 1)[0]
        tokens = body.split()
        if not tokens:
            continue
        try:
            float(tokens[0])
        except ValueError:
            return FormatError(f"{where}: label {tokens[0].decode(errors='replace')!r} is not "
                               "a number (a libsvm line starts with the label).")
        for tok in tokens[1:]:
            if tok.startswith(b"qid:"):
                continue
            key, colon, value = tok.partition(b":")
            ok = bool(colon)
            try:
                k, _ = float(key), float(value)
                ok = ok and k == int(k) and k >= 0
            except ValueError:
                ok = False
            if not ok:
                return FormatError(f"{where}: bad token {tok.decode(errors='replace')!r} "
                                   "(expected index:value with an integer index >= 0).")
    return FormatError(f"{source}, lines {lines.first_line}-: malformed libsvm data.")


def parse_lines(lines: _text.Lines, *, source: str) -> tuple[SparseBatch, npt.NDArray[np.int64]]:
    """Parse a block of whole libsvm lines; keys are returned as written (not shifted).

    Returns the rows and the 1-based line number of each row (blank lines have no row).

    Raises
    ------
    FormatError
        A bad label, a token that is not ``index:value``, or a non-integer index; the
        message names ``source``, the line number and its byte offset.
    """
    fast = libsvm_kernel.parse_block(lines.text)
    if fast is not None:
        keys, values, labels, offsets, row_line = fast
        return SparseBatch(keys, offsets, values, labels), lines.first_line + row_line
    return parse_lines_numpy(lines, source=source)


def parse_lines_numpy(lines: _text.Lines, *, source: str
                      ) -> tuple[SparseBatch, npt.NDArray[np.int64]]:
    """:func:`parse_lines` by numpy alone (every block the kernel declines comes here)."""
    body = lines.text
    if b"#" in body:
        body = _COMMENT.sub(b"", body)
    if b"qid:" in body:
        body = _QID.sub(b"", body)
    if not body.strip():
        return (SparseBatch.from_arrays([], [0], [], []), np.zeros(0, np.int64))
    arr = np.frombuffer(body, np.uint8)
    starts, ends = _text.line_positions(body)
    n_lines = starts.shape[0]
    sep = np.isin(arr, _SPACE)
    tok_start = np.flatnonzero(~sep & np.concatenate(([True], sep[:-1])))
    colon = np.flatnonzero(arr == 58)
    tokens_per_line = np.bincount(np.searchsorted(ends, tok_start), minlength=n_lines + 1)
    pairs_per_line = np.bincount(np.searchsorted(ends, colon), minlength=n_lines + 1)
    tokens_per_line, pairs_per_line = tokens_per_line[:n_lines], pairs_per_line[:n_lines]
    nonempty = tokens_per_line > 0
    good = np.all(tokens_per_line[nonempty] == 1 + 2 * pairs_per_line[nonempty])
    if good and colon.size:
        # a ':' must sit between two non-separator bytes
        good = (colon[0] > 0 and colon[-1] + 1 < arr.shape[0]
                and not sep[colon - 1].any() and not sep[colon + 1].any())
    numbers = _text.parse_numbers(body.translate(_SEPARATORS), " ") if good else None
    if numbers is None or numbers.shape[0] != tok_start.shape[0]:
        raise _locate(lines.text, lines, source)
    counts = pairs_per_line[nonempty]
    first_token = np.concatenate(([0], np.cumsum(tokens_per_line[nonempty])[:-1]))
    is_label = np.zeros(numbers.shape[0], np.bool_)
    is_label[first_token] = True
    pairs = numbers[~is_label]
    keys = pairs[0::2]
    with np.errstate(over="ignore"):  # beyond float32: inf, caught by validation later
        labels = numbers[first_token].astype(np.float32)
        values32 = pairs[1::2].astype(np.float32)
    bad = (keys != np.floor(keys)) | (keys < 0) | ~np.isfinite(keys) | (keys >= 2.0**53)
    if bad.any():
        raise _locate(lines.text, lines, source)
    offsets = np.zeros(counts.shape[0] + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    row_lines = lines.first_line + np.flatnonzero(nonempty)
    return (SparseBatch(keys.astype(np.int64), offsets, values32, labels),
            row_lines)


def shift_keys(batch: SparseBatch, zero_based: bool) -> SparseBatch:
    """Return ``batch`` with 1-based keys made 0-based (unchanged when ``zero_based``)."""
    if zero_based or batch.nnz == 0:
        return batch
    return SparseBatch(batch.indices - 1, batch.offsets, batch.values, batch.labels,
                       batch.weights, batch.feature_dim)


def iter_stream(
    stream: BinaryIO,
    *,
    source: str,
    zero_based: bool = False,
    chunk_bytes: int = _text.CHUNK_BYTES,
) -> Iterator[SparseBatch]:
    """Yield the rows of a libsvm stream block by block, keys made 0-based.

    With ``zero_based=False`` a key 0 is an error (it cannot be 1-based).
    """
    for lines in _text.iter_lines(stream, chunk_bytes=chunk_bytes):
        batch, row_lines = parse_lines(lines, source=source)
        if not zero_based and batch.nnz and batch.indices.min() == 0:
            row = int(np.searchsorted(batch.offsets, int(np.argmin(batch.indices)),
                                      side="right") - 1)
            raise FormatError(f"{source}, line {int(row_lines[row])}: key 0 in 1-based "
                              "libsvm data; pass zero_based=True (--zero-based) if keys "
                              "start at 0.")
        yield shift_keys(batch, zero_based)


def min_key(stream: BinaryIO, *, source: str) -> int | None:
    """Return the smallest key in a libsvm stream (None when it has no keys)."""
    low: int | None = None
    for lines in _text.iter_lines(stream):
        batch, _ = parse_lines(lines, source=source)
        if batch.nnz:
            m = int(batch.indices.min())
            low = m if low is None else min(low, m)
            if low == 0:
                break
    return low


class Writer:
    """Write rows as libsvm lines, ``label key:value ...`` with 1-based keys by default."""

    def __init__(self, stream: BinaryIO, *, zero_based: bool = False) -> None:
        self.stream = stream
        self.shift = 0 if zero_based else 1

    def write(self, batch: SparseBatch) -> None:
        if batch.labels is None:
            labels = ["0"] * batch.n_rows  # libsvm needs a label column
        else:
            labels = _text.format_numbers(batch.labels)
        keys = (batch.indices + self.shift).astype(str).tolist()
        vals = _text.format_numbers(batch.values)
        pairs = [f"{k}:{v}" for k, v in zip(keys, vals)]
        off = batch.offsets.tolist()
        out = []
        for i, label in enumerate(labels):
            row = pairs[off[i] : off[i + 1]]
            out.append(f"{label} {' '.join(row)}\n" if row else f"{label}\n")
        self.stream.write("".join(out).encode())

    def close(self) -> None:
        """Nothing to flush: every batch is written when given."""
