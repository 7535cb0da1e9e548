"""CSR matrices in ``.npz``, the layout of ``scipy.sparse.save_npz``, plus labels and weights.

Arrays: ``data`` (float32), ``indices``, ``indptr``, ``shape`` ([rows, feature_dim]),
``format`` (``b'csr'``), and optionally ``labels`` and ``weights`` (float32, one per row).
``scipy.sparse.load_npz`` opens these files; fmkit keeps the shape, so ``feature_dim``
survives a round trip. Arrays are stored uncompressed unless ``compressed=True``.
Files are read whole (no streaming) and never with pickle.
"""

from __future__ import annotations

import io
import zipfile
from typing import BinaryIO

import numpy as np

from fmkit.errors import FormatError
from fmkit.sparse import SparseBatch, concat


def read_stream(stream: BinaryIO, *, source: str) -> SparseBatch:
    """Read one npz CSR file.

    Raises
    ------
    FormatError
        Not a zip/npz, a missing or inconsistent array, or a non-CSR matrix.
    """
    data = stream.read()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise FormatError(f"{source}: not a readable npz file ({exc}).") from None
    except Exception as exc:  # numpy raises assorted errors on corrupt members
        raise FormatError(f"{source}: not a readable npz file ({type(exc).__name__}: "
                          f"{exc}).") from None
    missing = [k for k in ("data", "indices", "indptr", "shape") if k not in arrays]
    if missing:
        raise FormatError(f"{source}: npz file lacks the array(s) {', '.join(missing)}; "
                          "expected a CSR matrix as scipy.sparse.save_npz writes it.")
    fmt = arrays.get("format")
    if fmt is not None:
        name = fmt.item() if fmt.size == 1 else fmt
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        if name != "csr":
            raise FormatError(f"{source}: npz holds a {name!r} matrix; only CSR is supported "
                              "(convert with .tocsr() before save_npz).")
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu":
        raise FormatError(f"{source}: 'shape' must be two integers; got {shape!r}.")
    n_rows, n_cols = int(shape[0]), int(shape[1])
    indptr = arrays["indptr"]
    indices = arrays["indices"]
    values = arrays["data"]
    for name, arr in (("indptr", indptr), ("indices", indices)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise FormatError(f"{source}: '{name}' must be a 1-D integer array.")
    if values.ndim != 1 or values.dtype.kind not in "iufb":
        raise FormatError(f"{source}: 'data' must be a 1-D numeric array.")
    if (indptr.shape[0] != n_rows + 1 or (n_rows >= 0 and indptr.size and indptr[0] != 0)
            or indptr[-1] != indices.shape[0] or values.shape[0] != indices.shape[0]
            or np.any(np.diff(indptr) < 0)):
        raise FormatError(f"{source}: indptr/indices/data are inconsistent with shape "
                          f"{(n_rows, n_cols)}.")
    if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        raise FormatError(f"{source}: a column index is outside [0, {n_cols}).")
    extras = {}
    for name in ("labels", "weights"):
        arr = arrays.get(name)
        if arr is not None:
            if arr.shape != (n_rows,) or arr.dtype.kind not in "iufb":
                raise FormatError(f"{source}: '{name}' must hold one number per row "
                                  f"({n_rows}); got shape {arr.shape}.")
            extras[name] = arr
    return SparseBatch.from_arrays(indices, indptr, values, extras.get("labels"),
                                   extras.get("weights"), n_cols)


def write_stream(stream: BinaryIO, batch: SparseBatch, *, compressed: bool = False) -> None:
    """Write ``batch`` as a CSR npz (see the module docstring for the arrays)."""
    arrays = {
        "indices": batch.indices,
        "indptr": batch.offsets,
        "format": np.array(b"csr"),
        "shape": np.array([batch.n_rows, batch.width], np.int64),
        "data": batch.values,
    }
    if batch.labels is not None:
        arrays["labels"] = batch.labels
    if batch.weights is not None:
        arrays["weights"] = batch.weights
    (np.savez_compressed if compressed else np.savez)(stream, **arrays)  # type: ignore[arg-type]


class Writer:
    """Collect batches and write them as one npz file on close."""

    def __init__(self, stream: BinaryIO, *, compressed: bool = False) -> None:
        self.stream = stream
        self.compressed = compressed
        self.batches: list[SparseBatch] = []

    def write(self, batch: SparseBatch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        write_stream(self.stream, concat(self.batches) if self.batches
                     else SparseBatch.from_arrays([], [0], []), compressed=self.compressed)
