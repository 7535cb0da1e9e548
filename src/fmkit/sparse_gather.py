"""A parallel gather of fixed-width rows for :meth:`fmkit.sparse.SparseBatch.take`.

Imported on the first large gather (so serving never imports numba): the epoch shuffle of
the CPU trainer gathers every row once an epoch, and numba's parallel loop does it in about
two thirds of the time of ``np.take`` (25 ms against 39 ms for 500K rows of 39 keys, batch
by batch, on 2 cores).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import numba
    from numba import prange
except ImportError:  # pragma: no cover - numba is optional
    numba = None


def _gather(keys: Any, values: Any, rows: Any, out_keys: Any,
            out_values: Any) -> None:  # pragma: no cover - numba
    for r in prange(rows.shape[0]):
        src = rows[r]
        for j in range(keys.shape[1]):
            out_keys[r, j] = keys[src, j]
            out_values[r, j] = values[src, j]


if numba is not None:
    _gather = numba.njit(cache=True, parallel=True)(_gather)  # type: ignore[assignment]


def gather_rows(keys: np.ndarray, values: np.ndarray, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows ``rows`` of the (N, W) arrays ``keys`` and ``values``; None without numba or
    when a row number is outside [0, N) (np.take then wraps or raises, as numpy does)."""
    if numba is None or (rows.shape[0] and (int(rows.min()) < 0
                                            or int(rows.max()) >= keys.shape[0])):
        return None
    out_keys = np.empty((rows.shape[0], keys.shape[1]), keys.dtype)
    out_values = np.empty((rows.shape[0], values.shape[1]), values.dtype)
    _gather(keys, values, rows, out_keys, out_values)
    return out_keys, out_values
