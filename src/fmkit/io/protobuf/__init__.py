"""SageMaker ``Record`` protobuf <-> :class:`~fmkit.sparse.SparseBatch`, vectorised (spec §3.3).

The public face of three modules, one job each:

- :mod:`~fmkit.io.protobuf.scan`: the wire format (varints, fields of many messages at
  once, per-record errors);
- :mod:`~fmkit.io.protobuf.decode`: framed Records -> rows (:func:`decode_batch`,
  :func:`iter_stream`, :func:`decode_label_records`);
- :mod:`~fmkit.io.protobuf.encode`: rows -> framed Records in the SageMaker SDK's byte
  layout (:func:`encode_batch`, :func:`encode_rows`, :func:`encode_label_records`,
  :class:`Writer`).
"""

from __future__ import annotations

from fmkit.io.protobuf.decode import decode_batch, decode_label_records, iter_stream
from fmkit.io.protobuf.encode import (
    ENCODE_ROWS,
    Writer,
    encode_batch,
    encode_label_records,
    encode_rows,
)

__all__ = [
    "ENCODE_ROWS", "Writer", "decode_batch", "decode_label_records", "encode_batch",
    "encode_label_records", "encode_rows", "iter_stream",
]
