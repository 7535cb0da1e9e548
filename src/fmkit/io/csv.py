"""CSV as SageMaker's built-in algorithms read it: dense rows, no header, label first.

Training files have the label in column 1 and one column per feature after it; request
bodies (:func:`decode_rows`) have features only. Rows keep their non-zeros, and
``feature_dim`` is the number of feature columns, which every line must share.

A block of lines is parsed with one call to numpy's C number parser; a line-by-line pass
runs only to name a defect (line, column, byte offset).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from fmkit.errors import DataError, FormatError
from fmkit.io import text as _text
from fmkit.sparse import SparseBatch

_COMMA, _NEWLINE = 44, 10


def _locate(lines: _text.Lines, source: str, width: int | None) -> FormatError:
    """Find the first malformed line of a block and describe it."""
    pos = 0
    for i, raw in enumerate(lines.text.split(b"\n")):
        where = f"{source}, line {lines.first_line + i} at byte {lines.offset + pos}"
        pos += len(raw) + 1
        row = raw.rstrip(b"\r")
        if not row.strip():
            continue
        fields = row.split(b",")
        if width is not None and len(fields) != width:
            return FormatError(f"{where}: {len(fields)} columns, but earlier lines have "
                               f"{width}; every row needs the same number of columns.")
        for j, field in enumerate(fields, start=1):
            try:
                float(field)
            except ValueError:
                return FormatError(f"{where}, column {j}: {field.decode(errors='replace')!r} "
                                   "is not a number (CSV data is numeric, with no header).")
        width = len(fields)
    return FormatError(f"{source}, lines {lines.first_line}-: malformed CSV data.")


def parse_lines(
    lines: _text.Lines, *, source: str, has_label: bool = True, width: int | None = None
) -> SparseBatch:
    """Parse a block of whole CSV lines into rows (non-zeros kept) and labels.

    ``width`` is the expected number of columns (label included), if known from earlier
    blocks. Blank lines are skipped.
    """
    body = lines.text.replace(b"\r", b"")
    arr = np.frombuffer(body, np.uint8)
    starts, ends = _text.line_positions(body)
    nonblank = np.flatnonzero(ends > starts)
    if nonblank.size == 0:
        return SparseBatch.from_arrays([], [0], [], [] if has_label else None,
                                       feature_dim=None if width is None else
                                       width - int(has_label))
    commas = np.bincount(np.searchsorted(ends, np.flatnonzero(arr == _COMMA)),
                         minlength=starts.shape[0] + 1)[nonblank]
    cols = int(commas[0]) + 1
    if np.any(commas != cols - 1) or (width is not None and cols != width):
        raise _locate(lines, source, width)
    # blank lines would read as empty fields: join the non-blank ones with commas
    if nonblank.size != starts.shape[0]:
        body = b",".join(body[s:e] for s, e in zip(starts[nonblank], ends[nonblank]))
    else:
        body = body.replace(b"\n", b",")
    numbers = _text.parse_numbers(body, ",")
    n = nonblank.shape[0]
    if numbers is None or numbers.shape[0] != n * cols:
        raise _locate(lines, source, width)
    mat = numbers.reshape(n, cols)
    with np.errstate(over="ignore"):  # beyond float32: inf, caught by validation later
        labels = mat[:, 0].astype(np.float32) if has_label else None
    features = mat[:, 1:] if has_label else mat
    return _dense_to_batch(features, labels)


def _dense_to_batch(features: npt.NDArray[np.float64],
                    labels: npt.NDArray[np.float32] | None) -> SparseBatch:
    """Keep the non-zeros of dense rows as CSR."""
    n, width = features.shape
    nz = features != 0
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(nz.sum(axis=1), out=offsets[1:])
    rows, cols = np.nonzero(nz)
    with np.errstate(over="ignore"):
        values = features[rows, cols].astype(np.float32)
    return SparseBatch(cols.astype(np.int64), offsets, values, labels, None, width)


def decode_rows(
    text: bytes, *, feature_dim: int | None = None, has_label: bool = False,
    source: str = "<request>",
) -> SparseBatch:
    """Decode a CSV body of dense rows (a ``text/csv`` request), one row a line.

    Parameters
    ----------
    text : bytes
        UTF-8 CSV, no header; blank lines are skipped.
    feature_dim : int, optional
        When given, every row must have exactly this many feature columns.
    has_label : bool, default=False
        The first column is a label (training layout).

    Raises
    ------
    FormatError
        A non-numeric field or rows of different lengths (line, column, byte offset).
    DataError
        Rows whose length differs from ``feature_dim``.
    """
    batch = parse_lines(_text.Lines(bytes(text), 0, 1), source=source, has_label=has_label)
    if feature_dim is not None and batch.n_rows and batch.feature_dim != feature_dim:
        raise DataError(f"{source}: rows have {batch.feature_dim} features, but the model "
                        f"expects feature_dim={feature_dim}.")
    return batch


def iter_stream(
    stream: BinaryIO, *, source: str, has_label: bool = True,
    chunk_bytes: int = _text.CHUNK_BYTES,
) -> Iterator[SparseBatch]:
    """Yield the rows of a CSV stream block by block (label in column 1 by default)."""
    width: int | None = None
    for lines in _text.iter_lines(stream, chunk_bytes=chunk_bytes):
        batch = parse_lines(lines, source=source, has_label=has_label, width=width)
        if batch.n_rows:
            width = (batch.feature_dim or 0) + int(has_label)
            yield batch


class Writer:
    """Write rows as dense CSV lines, label first (a 0 column when rows have no label)."""

    def __init__(self, stream: BinaryIO, *, feature_dim: int | None = None) -> None:
        self.stream = stream
        self.feature_dim = feature_dim

    def write(self, batch: SparseBatch) -> None:
        width = self.feature_dim if self.feature_dim is not None else batch.width
        if batch.nnz and int(batch.indices.max()) >= width:
            raise DataError(f"cannot write CSV rows {width} columns wide: a key is "
                            f"{int(batch.indices.max())}; pass feature_dim.")
        self.feature_dim = width
        block = 4096
        for lo in range(0, batch.n_rows, block):
            part = batch.slice(lo, lo + block)
            dense = part.to_csr(width).toarray()
            labels = (part.labels if part.labels is not None
                      else np.zeros(part.n_rows, np.float32))
            cells = _text.format_numbers(np.column_stack([labels, dense]).ravel())
            cols = width + 1
            rows = [",".join(cells[i * cols : (i + 1) * cols]) for i in range(part.n_rows)]
            self.stream.write(("\n".join(rows) + "\n").encode())

    def close(self) -> None:
        """Nothing to flush: every batch is written when given."""
