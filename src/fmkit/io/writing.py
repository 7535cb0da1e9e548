"""Writing batches to a file of any format, atomically (temporary name, then rename or upload).

The public face is :mod:`fmkit.io`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from fmkit.io import formats, paths
from fmkit.sparse import SparseBatch

class Writer(Protocol):
    """What :func:`open_writer` yields: ``write`` batches, in order."""

    def write(self, batch: SparseBatch) -> None: ...
    def close(self) -> None: ...


def _writer(stream: BinaryIO, fmt: str, options: dict[str, Any]) -> Writer:
    module = importlib.import_module(f"fmkit.io.{formats.codec(fmt).module}")
    return module.Writer(stream, **options)  # type: ignore[no-any-return]


@contextlib.contextmanager
def open_writer(
    uri: str,
    *,
    format: str | None = None,
    dense: bool = False,
    zero_based: bool = False,
    compressed: bool = False,
    feature_dim: int | None = None,
) -> Iterator[Writer]:
    """Open ``uri`` to write batches one after another; the file appears only when complete.

    ``format`` defaults to the extension, else recordIO-protobuf. Options apply to their
    format: ``dense`` and ``feature_dim`` (recordIO), ``zero_based`` (libsvm),
    ``compressed`` (npz), ``feature_dim`` (CSV width).
    """
    fmt = formats.codec(format).name if format else (formats.from_extension(uri)
                                                       or "recordio-protobuf")
    options: dict[str, Any] = {
        "recordio-protobuf": {"dense": dense, "feature_dim": feature_dim},
        "libsvm": {"zero_based": zero_based},
        "csv": {"feature_dim": feature_dim},
        "npz": {"compressed": compressed},
    }[fmt]
    with paths.atomic_write(uri) as f:
        w = _writer(f, fmt, options)
        yield w
        w.close()


def write(
    uri: str,
    batch: SparseBatch,
    *,
    format: str | None = None,
    dense: bool = False,
    zero_based: bool = False,
    compressed: bool = False,
) -> None:
    """Write one batch to ``uri`` atomically (temporary name, then rename or upload).

    recordIO output is byte-identical to the SageMaker SDK's writers; see
    :func:`open_writer` for the options.
    """
    with open_writer(uri, format=format, dense=dense, zero_based=zero_based,
                     compressed=compressed) as w:
        w.write(batch)
