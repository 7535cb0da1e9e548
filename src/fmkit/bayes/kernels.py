"""Coordinate updates of ``w`` or of one factor column over a block of feature keys.

Every parameter ``t`` of an FM enters the prediction linearly: ``y_i = g_i + t * h_i``,
with ``h_i = x_il`` for ``w_l`` and ``h_i = x_il * (q_if - v_lf * x_il)`` for ``v_lf``
(``q_if = sum_j v_jf x_ij``). With residuals ``e_i = target_i - y_i``, row precisions
``a_i = alpha * r_i`` (``r_i`` the sample weight) and a Normal prior ``N(mu, 1/lam)``, the
conditional of ``t`` is Normal with

    precision = lam + sum_i a_i h_i^2
    mean      = (lam * mu + sum_i a_i h_i (e_i + t h_i)) / precision.

A Gibbs step draws ``t = mean + scale * z / sqrt(precision)`` with ``z ~ N(0, 1)`` given in
``noise`` (``scale=1``); ALS takes the mean (``scale=0``). After the update the residuals
and ``q`` of the key's rows are corrected. Sums run over the key's column (CSC arrays
``indptr``, ``rows``, ``vals``; duplicates summed).

Scan order (as libFM and myFM): all of ``w`` block by block, then factor column 1 block
by block, then column 2, ... Each key's column is visited twice per parameter: once for
the sums, once to correct ``e`` and ``q``. (A key-major order, ``w_l, v_l1 .. v_lK``
per key, touches memory less but mixed measurably worse on MovieLens 100K ua, rank 8,
200 sweeps, 3 seeds: test RMSE 0.9181 +- 0.0009 against 0.9155 +- 0.0008.)

Two implementations with the same results:

- ``numba`` (default when numba is installed): compiled loops, key by key over the CSC
  columns. For an independent block this gives exactly the block update (no key sees
  another's change), so it needs no separate code;
- ``numpy``: an independent block is updated at once with vectorised per-key sums
  (``np.bincount``); other blocks key by key.

Shapes: N rows, F keys, G groups, B = stop - start keys in the block; ``e``, ``r``,
``q`` (N,), ``theta`` (F,) (``w`` or one factor column), ``group`` (F,), ``lam``, ``mu``
(G,), ``noise`` (B,).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import numpy.typing as npt

try:  # numba is the 'bayes' extra; the numpy path works without it
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None
    HAVE_NUMBA = False

BACKENDS = ("numba", "numpy") if HAVE_NUMBA else ("numpy",)
logger = logging.getLogger(__name__)


def start_threads() -> None:
    """Start numba's thread pool, its idle OpenMP threads spinning only briefly.

    A sweep alternates short parallel kernels (microseconds apart) with Python work
    (milliseconds). GNU OpenMP's default keeps idle threads spinning for about 300,000
    rounds, which on 2 cores took the CPU from that work; its passive policy puts them to
    sleep at once, and waking them for every kernel cost as much. A spin of 3,000 rounds
    (``GOMP_SPINCOUNT``) bridges the gap between two kernels and not the Python steps: MCMC
    on MovieLens 100K ua (rank 8, 200 sweeps, medians of runs in turns): binary 2.67 s
    against 2.91 s passive (8 runs; 2.79 against 2.82 in another 6), 3.95 s with the default
    spin (5 runs); rating 2.02 s against 2.10 s passive (6 runs). It is set only while
    numba loads OpenMP, and not when you set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
    yourself (torch, loaded later, keeps its own default).
    """
    global _THREADS_STARTED
    if _THREADS_STARTED or not HAVE_NUMBA:
        return
    _THREADS_STARTED = True
    from numba.np.ufunc import parallel

    if parallel._is_initialized or {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
        return
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        parallel._launch_threads()
    except Exception:  # pragma: no cover - numba then starts its threads on first use
        logger.debug("numba's threads did not start early", exc_info=True)
    finally:
        del os.environ["GOMP_SPINCOUNT"]


SPIN_COUNT = 3000
_THREADS_STARTED = False


def default_backend() -> str:
    """Return 'numba' when numba is importable, else 'numpy'."""
    return "numba" if HAVE_NUMBA else "numpy"


# ---------------------------------------------------------------------------- numba
_NO_WEIGHTS = np.ones(1)

if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _linear_one(l, start, indptr, rows, vals, r, weighted, e, theta, group, lam,
                    mu, alpha, noise, scale):  # pragma: no cover - compiled
        g = group[l]
        old = theta[l]
        prec = lam[g]
        num = lam[g] * mu[g]
        for p in range(indptr[l], indptr[l + 1]):
            i = rows[p]
            h = 1.0 if vals is None else vals[p]
            a = alpha * r[i] if weighted else alpha
            prec += a * h * h
            num += a * h * (e[i] + old * h)
        new = num / prec + scale * noise[l - start] / math.sqrt(prec)
        d = new - old
        for p in range(indptr[l], indptr[l + 1]):
            e[rows[p]] -= d * (1.0 if vals is None else vals[p])
        theta[l] = new

    @numba.njit(cache=True, nogil=True, inline="always")
    def _factor_one(l, start, indptr, rows, vals, r, weighted, e, q, theta, group,
                    lam, mu, alpha, noise, scale):  # pragma: no cover - compiled
        g = group[l]
        old = theta[l]
        prec = lam[g]
        num = lam[g] * mu[g]
        for p in range(indptr[l], indptr[l + 1]):
            i = rows[p]
            x = 1.0 if vals is None else vals[p]
            h = x * (q[i] - old * x)
            a = alpha * r[i] if weighted else alpha
            prec += a * h * h
            num += a * h * (e[i] + old * h)
        new = num / prec + scale * noise[l - start] / math.sqrt(prec)
        d = new - old
        for p in range(indptr[l], indptr[l + 1]):
            i = rows[p]
            x = 1.0 if vals is None else vals[p]
            h = x * (q[i] - old * x)
            e[i] -= d * h
            q[i] += d * x
        theta[l] = new

    @numba.njit(cache=True, nogil=True)
    def _linear_seq(start, stop, indptr, rows, vals, r, weighted, e, theta, group,
                    lam, mu, alpha, noise, scale):  # pragma: no cover - compiled
        for l in range(start, stop):
            _linear_one(l, start, indptr, rows, vals, r, weighted, e, theta, group,
                        lam, mu, alpha, noise, scale)

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _linear_par(spans, indptr, rows, vals, r, weighted, e, theta, group,
                    lam, mu, alpha, noise, scale):  # pragma: no cover - compiled
        # one run of keys per thread (balanced_spans): prange's static split of the keys
        # themselves gave one thread 87% of MovieLens's item entries (popular films first)
        start = spans[0]
        for c in numba.prange(spans.shape[0] - 1):
            for l in range(spans[c], spans[c + 1]):
                _linear_one(l, start, indptr, rows, vals, r, weighted, e, theta, group,
                            lam, mu, alpha, noise, scale)

    @numba.njit(cache=True, nogil=True)
    def _factor_seq(start, stop, indptr, rows, vals, r, weighted, e, q, theta, group,
                    lam, mu, alpha, noise, scale):  # pragma: no cover - compiled
        for l in range(start, stop):
            _factor_one(l, start, indptr, rows, vals, r, weighted, e, q, theta, group,
                        lam, mu, alpha, noise, scale)

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _factor_par(spans, indptr, rows, vals, r, weighted, e, q, theta, group,
                    lam, mu, alpha, noise, scale):  # pragma: no cover - compiled
        start = spans[0]
        for c in numba.prange(spans.shape[0] - 1):
            for l in range(spans[c], spans[c + 1]):
                _factor_one(l, start, indptr, rows, vals, r, weighted, e, q, theta, group,
                            lam, mu, alpha, noise, scale)

    @numba.njit(cache=True, nogil=True)
    def block_starts(indptr, rows, n_rows, n_keys, cap):  # pragma: no cover - compiled
        """First key of every greedy block of keys sharing no row (groups.plan_blocks)."""
        owner = np.full(n_rows, -1, dtype=np.int64)
        starts = [0]
        block = 0
        for key in range(n_keys):
            clash = key - starts[-1] >= cap
            if not clash:
                for p in range(indptr[key], indptr[key + 1]):
                    if owner[rows[p]] == block:
                        clash = True
                        break
            if clash:
                starts.append(key)
                block += 1
            for p in range(indptr[key], indptr[key + 1]):
                owner[rows[p]] = block
        return np.array(starts, dtype=np.int64)

    @numba.njit(cache=True, nogil=True)
    def _predict_rows(indptr, indices, data, w0, w, Vt, Q, out):  # pragma: no cover
        K = Vt.shape[0]
        for i in range(indptr.shape[0] - 1):
            y = w0
            sq = 0.0
            for f in range(K):
                Q[f, i] = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                x = data[p]
                y += w[j] * x
                for f in range(K):
                    v = Vt[f, j] * x
                    Q[f, i] += v
                    sq += v * v
            s = 0.0
            for f in range(K):
                s += Q[f, i] * Q[f, i]
            out[i] = y + 0.5 * (s - sq)


def predict_rows(backend: str, csr: Any, csr2: Any, w0: float, w: Any, Vt: Any, Q: Any
                 ) -> Any:
    """Return FM outputs (N,) of float64 CSR rows; fill ``Q`` (K, N) with ``(X V)^T``.

    ``Vt`` is the factor matrix transposed, (K, F); ``csr2`` holds the squared values.
    """
    if backend == "numba":
        out = np.empty(csr.shape[0])
        _predict_rows(csr.indptr.astype(np.uint64), csr.indices.astype(np.uint32),
                      csr.data, float(w0), w, Vt, Q, out)
        return out
    V = Vt.T
    q = np.asarray(csr @ V)  # (N, K)
    q2 = np.asarray(csr2 @ (V * V))
    Q[...] = q.T
    return w0 + csr @ w + 0.5 * (q * q - q2).sum(axis=1)


# ---------------------------------------------------------------------------- numpy
def _numpy_block(start: int, stop: int, indptr: Any, rows: Any, vals: Any, r: Any, e: Any,
                 q: Any, theta: Any, group: Any, lam: Any, mu: Any, alpha: float,
                 noise: Any, scale: float) -> None:
    """Update keys start..stop-1 at once; valid only when they share no row."""
    lo, hi = indptr[start], indptr[stop]
    rr = rows[lo:hi]
    x = vals[lo:hi]
    lengths = np.diff(indptr[start:stop + 1]).astype(np.int64)
    local = np.repeat(np.arange(stop - start), lengths)
    old = theta[start:stop].copy()
    h = x if q is None else x * (q[rr] - old[local] * x)
    a = alpha if r is None else alpha * r[rr]
    g = group[start:stop]
    prec = lam[g] + np.bincount(local, weights=a * h * h, minlength=stop - start)
    num = lam[g] * mu[g] + np.bincount(local, weights=a * h * (e[rr] + old[local] * h),
                                       minlength=stop - start)
    new = num / prec + scale * noise / np.sqrt(prec)
    d = (new - old)[local]
    e[rr] -= d * h
    if q is not None:
        q[rr] += d * x
    theta[start:stop] = new


def balanced_spans(indptr: Any, start: int, stop: int, parts: int) -> npt.NDArray[np.int64]:
    """Key boundaries (parts + 1,) cutting keys ``start .. stop - 1`` into ``parts``
    consecutive runs of about equal entries (CSC ``indptr``), the first ``start``, the
    last ``stop``: one run per thread of an independent block's parallel update."""
    cum = np.asarray(indptr[start:stop + 1], dtype=np.int64)
    lo, hi = int(cum[0]), int(cum[-1])
    targets = lo + (hi - lo) * np.arange(1, max(parts, 1)) // max(parts, 1)
    cuts = start + np.searchsorted(cum, targets, side="left")
    return np.concatenate(([start], np.clip(cuts, start, stop), [stop])).astype(np.int64)


def update_block(backend: str, start: int, stop: int, independent: bool, indptr: Any,
                 rows: Any, vals: Any, r: Any, e: Any, q: Any, theta: Any, group: Any,
                 lam: Any, mu: Any, alpha: float, noise: Any, scale: float, *,
                 unit: bool = False, spans: Any = None) -> None:
    """Update ``theta[start:stop]`` (``w`` when ``q`` is None, else a factor column).

    ``r`` holds the row weights, None for all ones. ``e`` (and ``q``) are corrected in
    place. ``independent`` must be True only when no two keys of the block share a row;
    the numpy backend then updates the keys at once, the numba one spreads them over its
    threads. ``unit=True`` says every value in ``vals`` is 1.0 (one-hot data): the numba
    loops then skip reading them (x * 1.0 is x, so the results are the same bit for bit).
    ``spans``: :func:`balanced_spans` of an independent block for the numba threads
    (computed here when None; a sampler keeps them).
    """
    if backend == "numba":
        weighted = r is not None
        w = r if weighted else _NO_WEIGHTS
        x = None if unit else vals  # None: numba compiles the loops without the values
        # key by key over the CSC columns. An independent block's keys share no row, so
        # they run in parallel with the same result bit for bit (each key's sums in the
        # same order). Measured on MovieLens 100K ua, rank 8, 200 sweeps, 2 cores (best of
        # 10): 0.79 s unit-valued on 2 threads, 0.94 s reading the values, 1.21 s on one
        # thread; a vectorised (row-order, bincount-like) kernel measured no faster. Runs
        # of equal entries per thread (balanced_spans) against prange's equal runs of keys:
        # one factor pass over ua's users and films 345-418 us against 771-974 us (one
        # thread 806-964 us), 4 rounds of 400 passes in turns (2026-12-07)
        if independent:
            if spans is None:
                spans = balanced_spans(indptr, start, stop, numba.get_num_threads())
            if q is None:
                _linear_par(spans, indptr, rows, x, w, weighted, e, theta, group, lam, mu,
                            alpha, noise, scale)
            else:
                _factor_par(spans, indptr, rows, x, w, weighted, e, q, theta, group, lam, mu,
                            alpha, noise, scale)
        elif q is None:
            _linear_seq(start, stop, indptr, rows, x, w, weighted, e, theta, group, lam, mu,
                        alpha, noise, scale)
        else:
            _factor_seq(start, stop, indptr, rows, x, w, weighted, e, q, theta, group, lam,
                        mu, alpha, noise, scale)
        return
    if independent:
        _numpy_block(start, stop, indptr, rows, vals, r, e, q, theta, group, lam, mu,
                     alpha, noise, scale)
        return
    for l in range(start, stop):
        _numpy_block(l, l + 1, indptr, rows, vals, r, e, q, theta, group, lam, mu, alpha,
                     noise[l - start:l - start + 1], scale)
