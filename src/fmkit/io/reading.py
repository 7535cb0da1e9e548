"""Reading channels: files of any format in sorted order, as one batch or in batches.

A *channel* URI is a file, a folder (recursive), a glob or an ``s3://bucket/prefix``; its
files are read in sorted path order, each in its own format (explicit ``format``, else
``content_type``, else extension, else first bytes: :mod:`fmkit.io.formats`). The public
face is :mod:`fmkit.io`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

import numpy as np

from fmkit.errors import DataError
from fmkit.io import channels, formats, paths
from fmkit.sparse import SparseBatch, concat

_SNIFF_BYTES = 4096


def list_files(uri: str) -> list[str]:
    """Return the sorted files of a channel; DataError if there are none."""
    return channels.list_files(uri)


def _head(uri: str) -> bytes:
    with paths.open_file(uri, "rb") as f:
        return f.read(_SNIFF_BYTES)  # type: ignore[no-any-return]


def detect_format(uri_or_bytes: str | bytes, *, content_type: str | None = None) -> str:
    """Return ``'recordio-protobuf'``, ``'libsvm'``, ``'csv'`` or ``'npz'``.

    ``uri_or_bytes`` is a file (or the first file of a channel) or the first bytes of
    data. A ``content_type`` wins; then the extension; then the first bytes.

    Raises
    ------
    FormatError
        Unknown content type, or data whose format cannot be told.
    """
    if isinstance(uri_or_bytes, (bytes, bytearray, memoryview)):
        return formats.resolve("<bytes>", bytes(uri_or_bytes)[:_SNIFF_BYTES],
                                content_type=content_type)
    uri = str(uri_or_bytes)
    if content_type:
        return formats.from_content_type(content_type)
    files = channels.list_files(uri)
    first = files[0]
    by_ext = formats.from_extension(first)
    return by_ext or formats.resolve(first, _head(first))


def file_format(uri: str, format: str | None = None, content_type: str | None = None) -> str:
    """Return one file's format: explicit name, MIME type, extension, then first bytes."""
    if format or content_type or formats.from_extension(uri):
        return formats.resolve(uri, None, format=format, content_type=content_type)
    return formats.resolve(uri, _head(uri))


def iter_stream(
    stream: BinaryIO,
    *,
    format: str = "recordio-protobuf",
    source: str = "<stream>",
    require_labels: bool = False,
    zero_based: bool = False,
) -> Iterator[SparseBatch]:
    """Yield the rows of one open binary stream (a file, or a SageMaker Pipe-mode FIFO).

    Batches have whatever size the format's chunking gives; see :func:`iter_batches` for
    exact sizes. libsvm keys are taken as 1-based unless ``zero_based``.
    """
    name = formats.codec(format).name
    if name == "recordio-protobuf":
        from fmkit.io import protobuf

        yield from protobuf.iter_stream(stream, source=source, require_labels=require_labels)
        return
    if name == "libsvm":
        from fmkit.io import libsvm

        yield from libsvm.iter_stream(stream, source=source, zero_based=zero_based)
    elif name == "csv":
        from fmkit.io import csv

        yield from csv.iter_stream(stream, source=source)
    else:
        from fmkit.io import npz

        batch = npz.read_stream(stream, source=source)
        if require_labels and batch.labels is None:
            raise DataError(f"{source}: training data needs labels; the npz file has no "
                            "'labels' array.")
        yield batch


def iter_file(
    uri: str,
    *,
    format: str | None = None,
    content_type: str | None = None,
    require_labels: bool = False,
    zero_based: bool = False,
) -> Iterator[SparseBatch]:
    """Yield the rows of one file in chunks of the format's natural size.

    Raises
    ------
    DataError
        The file holds no rows (empty, or only blank lines and comments).
    """
    fmt = file_format(uri, format, content_type)
    rows = 0
    with paths.open_file(uri, "rb") as f, paths.storage_errors(uri, "read"):
        for batch in iter_stream(f, format=fmt, source=uri, require_labels=require_labels,
                                 zero_based=zero_based):
            rows += batch.n_rows
            yield batch
    if rows == 0:
        raise DataError(f"{uri}: the file is empty (no rows); remove it from the channel.")


def libsvm_zero_based(files: list[str], formats: list[str],
                      zero_based: bool | None) -> bool:
    """Resolve libsvm's key base for a channel: auto means 1-based unless a key is 0."""
    if zero_based is not None:
        return zero_based
    from fmkit.io import libsvm

    for uri, fmt in zip(files, formats):
        if fmt == "libsvm":
            with paths.open_file(uri, "rb") as f, paths.storage_errors(uri, "read"):
                if libsvm.min_key(f, source=uri) == 0:
                    return True
    return False


def _channel(uri: str, format: str | None, content_type: str | None, rank: int,
             world_size: int, distribution: str,
             zero_based: bool | None) -> tuple[list[str], list[str], bool]:
    all_files = channels.list_files(uri)
    files = channels.shard_files(all_files, rank=rank, world_size=world_size,
                                 distribution=distribution)
    formats = [file_format(f, format, content_type) for f in files]
    base = zero_based
    if "libsvm" in formats and zero_based is None:
        known = dict(zip(files, formats, strict=True))  # this shard's, looked up already
        all_formats = [known[f] if f in known else file_format(f, format, content_type)
                       for f in all_files]
        base = libsvm_zero_based(all_files, all_formats, None)
    return files, formats, bool(base)


def iter_channel(
    uri: str,
    *,
    format: str | None = None,
    content_type: str | None = None,
    rank: int = 0,
    world_size: int = 1,
    distribution: str = "FullyReplicated",
    require_labels: bool = False,
    zero_based: bool | None = None,
) -> Iterator[SparseBatch]:
    """Yield a channel's rows in the formats' natural chunks (no re-batching).

    Arguments as in :func:`iter_batches`; checks that files agree on ``feature_dim``.
    """
    files, formats, base = _channel(uri, format, content_type, rank, world_size,
                                    distribution, zero_based)
    yield from _iter_files(files, formats, base, require_labels)


def _iter_files(files: list[str], formats: list[str], zero_based: bool,
                require_labels: bool) -> Iterator[SparseBatch]:
    """Yield the rows of listed files in order; check that they agree on feature_dim."""
    dim_source: tuple[int, str] | None = None
    for f, fmt in zip(files, formats):
        for batch in iter_file(f, format=fmt, require_labels=require_labels,
                               zero_based=zero_based):
            if require_labels and batch.labels is None:
                raise DataError(f"{f}: training data needs a label for every row; found "
                                "rows without one.")
            if batch.feature_dim is not None:
                if dim_source is None:
                    dim_source = (batch.feature_dim, f)
                elif batch.feature_dim != dim_source[0]:
                    raise DataError(f"{f} states feature_dim={batch.feature_dim}, but "
                                    f"{dim_source[1]} states {dim_source[0]}; all files of "
                                    "a channel need the same feature_dim.")
            yield batch


def read(
    uri: str,
    *,
    format: str | None = None,
    content_type: str | None = None,
    require_labels: bool = False,
    zero_based: bool | None = None,
) -> SparseBatch:
    """Read a whole channel into one batch, rows in sorted-file order.

    Parameters
    ----------
    uri : str
        File, folder, glob, or ``s3://bucket/prefix``.
    format : str, optional
        ``'recordio-protobuf'``, ``'libsvm'``, ``'csv'`` or ``'npz'`` for every file.
    content_type : str, optional
        MIME type for every file, e.g. ``application/x-recordio-protobuf``.
    require_labels : bool, default=False
        Fail on the first row without a label (training and test channels).
    zero_based : bool, optional
        libsvm keys start at 0 (True) or 1 (False); None guesses from the data: 1-based
        unless some key is 0.

    Returns
    -------
    SparseBatch
        ``feature_dim`` set when the files state it (recordIO shape, npz, CSV width).

    Raises
    ------
    DataError
        No files, unreachable storage, inconsistent feature_dim, missing labels.
    FormatError
        Bytes that are not the format, with file, record or line, and byte offset.
    """
    files = channels.list_files(uri)
    formats = [file_format(f, format, content_type) for f in files]
    # a channel of libsvm files only is read once with keys as written, and the base
    # guessed from the rows in memory, rather than scanned twice
    guess = zero_based is None and all(fmt == "libsvm" for fmt in formats)
    if guess:
        base = True
    elif zero_based is None and "libsvm" in formats:
        base = libsvm_zero_based(files, formats, None)
    else:
        base = bool(zero_based)
    batches = list(_iter_files(files, formats, base, require_labels))
    batch = concat(batches) if batches else SparseBatch.from_arrays([], [0], [])
    if guess and batch.nnz and int(batch.indices.min()) > 0:
        if batch.indices.flags.writeable:  # the parser's own array: no second copy
            np.subtract(batch.indices, 1, out=batch.indices)
        else:
            from fmkit.io import libsvm

            batch = libsvm.shift_keys(batch, False)
    return batch


def iter_batches(
    uri: str,
    batch_size: int,
    *,
    format: str | None = None,
    content_type: str | None = None,
    rank: int = 0,
    world_size: int = 1,
    distribution: str = "FullyReplicated",
    require_labels: bool = False,
    zero_based: bool | None = None,
) -> Iterator[SparseBatch]:
    """Stream a channel in batches of exactly ``batch_size`` rows (the last may be shorter).

    Memory stays constant for recordIO, libsvm and CSV (files are read in chunks; a batch
    may span files). With ``distribution='ShardedByS3Key'`` process ``rank`` reads every
    ``world_size``-th file; with ``'FullyReplicated'`` every process reads all of them.
    Other arguments as in :func:`read`; for libsvm with ``zero_based=None`` the channel is
    scanned once first to guess the key base (pass it to skip that).
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1; got {batch_size}.")
    yield from rebatch(iter_channel(uri, format=format, content_type=content_type, rank=rank,
                                    world_size=world_size, distribution=distribution,
                                    require_labels=require_labels, zero_based=zero_based),
                       batch_size)


def rebatch(batches: Iterable[SparseBatch], batch_size: int) -> Iterator[SparseBatch]:
    """Regroup a stream of row chunks into batches of exactly ``batch_size`` rows (the last
    may be shorter); memory stays at about one chunk plus one batch."""
    pending: list[SparseBatch] = []
    count = 0
    for batch in batches:
        if batch.n_rows == 0:
            continue
        pending.append(batch)
        count += batch.n_rows
        if count < batch_size:
            continue
        whole = concat(pending)
        stop = 0
        while whole.n_rows - stop >= batch_size:
            yield whole.slice(stop, stop + batch_size)
            stop += batch_size
        rest = whole.slice(stop, whole.n_rows)
        pending = [rest] if rest.n_rows else []
        count = rest.n_rows
    if count:
        yield concat(pending)
