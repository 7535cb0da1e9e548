"""Data in and out: recordIO-protobuf (SageMaker), libsvm, CSV and npz, local or ``s3://``.

>>> import fmkit.io as fio
>>> batch = fio.read("data/train/")                       # doctest: +SKIP
>>> for b in fio.iter_batches("s3://bucket/train/", 1000):  # doctest: +SKIP
...     ...
>>> fio.write("out/train.recordio", batch)                 # doctest: +SKIP

A *channel* URI is a file, a folder (recursive), a glob or an ``s3://bucket/prefix``; its
files are read in sorted path order, each in its own format (explicit ``format``, else
``content_type``, else extension, else first bytes). See docs/data-formats.md.

This package only re-exports; the code lives in one module per job:

- :mod:`fmkit.io.reading`: channels and files -> batches;
- :mod:`fmkit.io.writing`: batches -> files;
- :mod:`fmkit.io.formats`: format names, MIME types, extensions, sniffing;
- :mod:`fmkit.io.channels`: a channel's files and how processes share them;
- :mod:`fmkit.io.paths`: local and ``s3://`` storage;
- :mod:`fmkit.io.codecs`: request and response bodies (serving, batch transform);
- one module per format: :mod:`~fmkit.io.protobuf` (with :mod:`~fmkit.io.recordio`),
  :mod:`~fmkit.io.libsvm`, :mod:`~fmkit.io.csv`, :mod:`~fmkit.io.npz`, and
  :mod:`~fmkit.io.sagemaker_model` for SageMaker's model artifacts.
"""

from __future__ import annotations

from fmkit.io.channels import row_range, shard_files
from fmkit.io.reading import (
    detect_format,
    file_format,
    iter_batches,
    iter_channel,
    iter_file,
    iter_stream,
    libsvm_zero_based,
    list_files,
    read,
    rebatch,
)
from fmkit.io.writing import Writer, open_writer, write

__all__ = [
    "Writer", "detect_format", "file_format", "iter_batches", "iter_channel", "iter_file",
    "iter_stream", "libsvm_zero_based", "list_files", "open_writer", "read", "rebatch", "row_range",
    "shard_files", "write",
]
