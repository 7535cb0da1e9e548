"""Batch transform: score every file under an input URI into ``<name>.out`` files, streaming.

SageMaker's rules (spec 6.5), applied in process, without HTTP:

- each input file is split by ``split_type``: ``RecordIO`` on frame boundaries, ``Line`` on
  newlines, ``None`` (the whole file is one request);
- ``batch_strategy`` ``MultiRecord`` packs as many records as fit in ``max_payload_bytes``
  into one request; ``SingleRecord`` sends one record per request;
- each request is decoded as ``content_type`` and answered as ``accept``, exactly as the
  server would (:mod:`fmkit.io.codecs`, :func:`fmkit.inference.scoring.score_body`);
- responses go to ``<output>/<input path relative to the input URI>.out`` in input order;
  with ``assemble_with="Line"`` a newline follows each response that does not already end
  with one (JSON Lines responses do), otherwise responses are concatenated.

Inputs are read in chunks, so their size is not limited by memory. Files are found, opened
and written through :mod:`fmkit.io.paths`: local outputs go to a temporary name and are
renamed, ``s3://`` (the ``s3`` extra) and other fsspec outputs are uploaded when complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fmkit.errors import ConfigError, DataError
from fmkit.io import paths

logger = logging.getLogger(__name__)

SPLIT_TYPES = ("Line", "RecordIO", "None")
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
ASSEMBLE_WITH = ("Line", "None")
_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class TransformSummary:
    """What a transform did: output URIs in input order, records and requests."""

    outputs: list[str] = field(default_factory=list)
    records: int = 0
    requests: int = 0


def _default_split(content_type: str) -> str:
    from fmkit.io import codecs

    kind = codecs.media_type(content_type)
    if kind == codecs.RECORDIO:
        return "RecordIO"
    if kind in (codecs.JSONLINES, codecs.CSV):
        return "Line"
    return "None"


def transform(
    predictor: Any,
    input_uri: str,
    output_uri: str,
    *,
    content_type: str = "application/x-recordio-protobuf",
    accept: str = "application/jsonlines",
    split_type: str | None = None,
    batch_strategy: str = "MultiRecord",
    max_payload_bytes: int = 6 * 1024 * 1024,
    assemble_with: str = "Line",
) -> TransformSummary:
    """Score the file or every file under ``input_uri`` into ``output_uri``.

    Parameters
    ----------
    predictor : Predictor
    input_uri : str
        A local file or folder, or an fsspec URI (``s3://bucket/prefix/``); folders are read
        recursively in sorted path order, skipping names starting with ``.`` or ``_``.
    output_uri : str
        Folder (local or fsspec) receiving one ``<name>.out`` per input file.
    content_type, accept : str
        Request and response media types, as for ``/invocations``.
    split_type : {'Line', 'RecordIO', 'None'}, optional
        Default: RecordIO for recordio, Line for JSON Lines and CSV, None for JSON.
    batch_strategy : {'MultiRecord', 'SingleRecord'}, default='MultiRecord'
    max_payload_bytes : int, default=6 MiB
        Request size bound for MultiRecord; one record larger than this is an error.
    assemble_with : {'Line', 'None'}, default='Line'

    Raises
    ------
    ConfigError
        An unknown option value.
    DataError
        A record the server would reject; the message names the file and record/line.
    """
    from fmkit.inference.scoring import score_body
    from fmkit.io import codecs

    split = split_type or _default_split(content_type)
    if split not in SPLIT_TYPES:
        raise ConfigError(f"split_type must be one of {', '.join(SPLIT_TYPES)}; got {split!r}.")
    if batch_strategy not in BATCH_STRATEGIES:
        raise ConfigError(f"batch_strategy must be one of {', '.join(BATCH_STRATEGIES)}; got "
                          f"{batch_strategy!r}.")
    if assemble_with not in ASSEMBLE_WITH:
        raise ConfigError(f"assemble_with must be one of {', '.join(ASSEMBLE_WITH)}; got "
                          f"{assemble_with!r}.")
    if max_payload_bytes < 1:
        raise ConfigError(f"max_payload_bytes must be >= 1; got {max_payload_bytes}.")
    if codecs.media_type(content_type) not in codecs.REQUEST_TYPES:
        raise ConfigError(f"content_type {content_type!r} is not supported; use one of "
                          f"{', '.join(codecs.REQUEST_TYPES)}.")
    codecs.response_type(accept, batch=True)  # refuse a bad accept before reading input
    inputs = list(_list_inputs(input_uri))
    if not inputs:
        raise DataError(f"{input_uri}: no input files found.")
    outputs: list[str] = []
    records = requests = 0
    for uri, rel in inputs:
        target = paths.join(output_uri, rel + ".out")
        with paths.atomic_write(target) as out, paths.open_file(uri, "rb") as src:
            for payload, first, count, line in _payloads(src, uri, split, batch_strategy,
                                                         max_payload_bytes):
                try:
                    data, _ = score_body(predictor, payload, content_type, accept,
                                         batch_mode=True, line_offset=line - 1)
                except DataError as exc:
                    if split == "Line":  # the codec's message already names the line
                        raise DataError(f"{uri}, {exc}") from None
                    where = f"{first + 1}" if count == 1 else f"{first + 1}-{first + count}"
                    raise DataError(f"{uri}, {_unit(split)}s {where}: {exc}") from None
                out.write(data)
                if assemble_with == "Line" and not data.endswith(b"\n"):
                    out.write(b"\n")
                records += count
                requests += 1
        outputs.append(target)
        logger.info("transformed %s -> %s", uri, target)
    return TransformSummary(outputs, records, requests)


def _unit(split: str) -> str:
    return {"Line": "line", "RecordIO": "record", "None": "object"}[split]


# ---------------------------------------------------------------------------------- splitting
def _payloads(src: IO[bytes], uri: str, split: str, strategy: str, limit: int
              ) -> Iterator[tuple[bytes, int, int, int]]:
    """Yield ``(request body, first record index, record count, first line number)``."""
    pending: list[bytes] = []
    size = 0
    first = 0
    first_line = 1
    index = 0
    for record, line in _records(src, uri, split):
        if len(record) > limit:
            raise DataError(f"{uri}, {_unit(split)} {line if split == 'Line' else index + 1}: "
                            f"{len(record)} bytes is over the payload limit of {limit} bytes; "
                            "raise --max-payload-mb.")
        if pending and (strategy == "SingleRecord" or size + len(record) > limit):
            yield b"".join(pending), first, len(pending), first_line
            pending, size = [], 0
        if not pending:
            first, first_line = index, line
        pending.append(record)
        size += len(record)
        index += 1
    if pending:
        yield b"".join(pending), first, len(pending), first_line


def _records(src: IO[bytes], uri: str, split: str) -> Iterator[tuple[bytes, int]]:
    """Yield ``(record, line number of its first line)``: lines (blank lines travel with the
    next record, so line numbers in messages stay exact), frames, or everything."""
    if split == "None":
        yield src.read(), 1
        return
    if split == "Line":
        carry = b""
        blank = b""
        line_no = 0
        start = 1
        while True:
            block = src.read(_READ_BYTES)
            if not block:
                break
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            for line in lines:
                line_no += 1
                if not blank:
                    start = line_no
                if line.strip():
                    yield blank + line + b"\n", start
                    blank = b""
                else:
                    blank += line + b"\n"
        if carry.strip():
            yield blank + carry + b"\n", start if blank else line_no + 1
        return
    from fmkit.io import recordio

    for frames in recordio.iter_chunks(src, source=uri):  # type: ignore[arg-type]
        buf = frames.buffer
        for start_byte, end in zip(frames.starts.tolist(), frames.ends.tolist()):
            yield recordio.frame(buf[start_byte:end].tobytes()), 0


# ---------------------------------------------------------------------------------- files
def _list_inputs(uri: str) -> Iterator[tuple[str, str]]:
    """Yield ``(file URI, path relative to uri)`` in sorted order (:mod:`fmkit.io.paths`)."""
    files = paths.find_files(uri)
    base = uri.rstrip("/")
    for f in files:
        if f == uri or f == paths.local_path(uri) or not f.startswith(base + "/"):
            yield f, f.rstrip("/").rsplit("/", 1)[-1]  # a single file or a glob match
        else:
            yield f, f[len(base) + 1:]

