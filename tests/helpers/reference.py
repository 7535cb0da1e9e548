"""Float64 reference implementations used as ground truth in tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def naive_fm(X: sp.spmatrix | np.ndarray, w0: float, w: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Score every row with the explicit double loop over feature pairs, in float64.

    y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, over the row's stored entries
    (duplicate keys first summed, as in a matrix).
    """
    return _pairs(X, w0, w, V, lambda a, b: b > a)


def naive_user_item(X: sp.spmatrix | np.ndarray, w0: float, w: np.ndarray, V: np.ndarray,
                    mask: np.ndarray) -> np.ndarray:
    """The same loop for a ``user_item`` model: only pairs of a key in ``mask`` (the user
    block) with a key outside it."""
    return _pairs(X, w0, w, V, lambda a, b: mask[a] and not mask[b])


def _pairs(X, w0, w, V, counts) -> np.ndarray:  # type: ignore[no-untyped-def]
    """w0 + x.w + sum over the key pairs (a, b) of a row for which ``counts(a, b)``."""
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()
    w = np.asarray(w, np.float64)
    V = np.asarray(V, np.float64)
    out = np.empty(X.shape[0])
    for r in range(X.shape[0]):
        idx = X.indices[X.indptr[r]:X.indptr[r + 1]]
        val = X.data[X.indptr[r]:X.indptr[r + 1]]
        y = float(w0) + float(np.dot(w[idx], val))
        for a in range(len(idx)):
            for b in range(len(idx)):
                if counts(idx[a], idx[b]):
                    y += float(V[idx[a]] @ V[idx[b]]) * val[a] * val[b]
        out[r] = y
    return out


def naive_fm_grads(X, labels, w0, w, V, *, loss: str):
    """Return d(mean loss)/d(w0, w, V) in float64 by the explicit formula.

    loss: 'squared' (0.5 (y - t)^2) or 'logistic' (log loss of sigmoid(y)).
    """
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()
    y = naive_fm(X, w0, w, V)
    t = np.asarray(labels, np.float64)
    g = y - t if loss == "squared" else 1.0 / (1.0 + np.exp(-y)) - t
    g /= X.shape[0]
    V = np.asarray(V, np.float64)
    gw0 = g.sum()
    gw = X.T @ g
    gV = np.zeros_like(V)
    for r in range(X.shape[0]):
        idx = X.indices[X.indptr[r]:X.indptr[r + 1]]
        val = X.data[X.indptr[r]:X.indptr[r + 1]]
        s = (V[idx] * val[:, None]).sum(0)
        for a, i in enumerate(idx):
            gV[i] += g[r] * val[a] * (s - V[i] * val[a])
    return gw0, np.asarray(gw).ravel(), gV
