"""Relation blocks: keys whose values on a row are fixed by the row's user (or item).

Implicit feedback (the movies a user rated, ``prepare movielens --implicit``) gives every
row of a user the same hundred keys: the design matrix holds them once per *rating*, though
they depend only on the *user*. A key-by-key Gibbs update over such a key's CSC column costs
O(rows holding it); summed over the key range that is O(N x keys per row) per factor column.

Grouping the rows by entity ``e`` (the key of a one-hot "owner" range, e.g. the user field)
makes the same update exact at O(entities holding the key). For a key ``l`` of the relation,
``x_il = c_el`` on every row ``i`` of ``e``, and a factor ``v_lf`` enters row ``i`` through
``h_i = c_el (a_e + p_i)``, where ``a_e = Q_e - v_lf c_el``, ``Q_e = sum_j c_ej v_jf`` over
the relation's keys, and ``p_i`` is the rest of ``q_if`` (the row's other keys, which do not
move while the relation is updated). The sums of :mod:`fmkit.bayes.kernels` then become

    sum_i r_i h_i^2   = c_el^2 (n_e a_e^2 + 2 a_e P1_e + P2_e)
    sum_i r_i h_i e_i = c_el (a_e E_e + PE_e)

with per-entity sums ``n_e = sum r_i``, ``P1_e = sum r_i p_i``, ``P2_e = sum r_i p_i^2``,
``E_e = sum r_i e_i`` and ``PE_e = sum r_i p_i e_i``, and an update by ``d`` changes ``E_e``
and ``PE_e`` in closed form. The rows' residuals and ``q`` are brought up to date once,
after the relation's keys are all updated. The linear weights are the same with
``h_i = c_el``. The draws are those of the per-row update (same order, same noise), up to
float rounding (``tests/bayes/test_relations.py``).

:func:`find_relations` finds such ranges in the data: a prior group that is not one-hot
and whose rows are, row for row, a function of a one-hot group's key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.artifact import group_runs
from fmkit.bayes.kernels import HAVE_NUMBA

if HAVE_NUMBA:
    import numba

Float64 = npt.NDArray[np.float64]

# a relation is used when the per-row form holds this many times the entries of the
# per-entity form (rows + table entries); below it the bookkeeping does not pay
MIN_GAIN = 4.0


@dataclass(frozen=True)
class Relation:
    """Keys ``start .. stop - 1`` whose values on row ``i`` are ``table[entity[i]]``."""

    start: int
    stop: int
    entity: npt.NDArray[np.int64]  # (N,) entity of every row
    table: sp.csr_matrix  # (n_entities, stop - start) float64

    @property
    def n_entities(self) -> int:
        return int(self.table.shape[0])


def find_relations(csr: sp.csr_matrix, groups: npt.NDArray[np.int64], *,
                   min_gain: float = MIN_GAIN) -> list[Relation]:
    """Find the group ranges that are a function of a one-hot range's key, row for row.

    Returns [] without numba (the per-entity updates are compiled only).

    Parameters
    ----------
    csr : csr_matrix (N, F)
        Training rows with sorted indices and no duplicates.
    groups : int64 (F,)
        Prior group of every key; each contiguous run of one group is a candidate.
    min_gain : float
        Keep a relation only when the rows hold at least this many times the entries of the
        per-entity form.
    """
    n = csr.shape[0]
    if n == 0 or not HAVE_NUMBA:
        return []
    runs = group_runs(groups)
    bounds = np.asarray([a for _, a, _ in runs] + [csr.shape[1]], np.int64)
    indptr, indices = csr.indptr, csr.indices
    counts, one_hot = _range_stats(indptr, indices, bounds)  # O(ranges) memory
    candidates = [r for r in range(len(runs)) if not one_hot[r] and counts[r] >= min_gain * n]
    owners = [r for r in range(len(runs)) if one_hot[r]]
    found = []
    for r in candidates:
        a, b = int(bounds[r]), int(bounds[r + 1])
        lo, hi = _range_span(indptr, indices, a, b)
        for o in owners:
            entity = (indices[_range_span(indptr, indices, bounds[o], bounds[o + 1])[0]]
                      - bounds[o]).astype(np.int64)
            first = np.full(bounds[o + 1] - bounds[o], -1, np.int64)
            first[entity[::-1]] = np.arange(n - 1, -1, -1)  # first row of each entity
            if not _same_as_first(indices, csr.data, lo, hi, entity, first):
                continue
            table = _table(indices, csr.data, lo, hi, first, a, b)
            if counts[r] >= min_gain * (n + table.nnz):
                found.append(Relation(a, b, entity, table))
            break
    return found


def _table(indices: Any, data: Any, lo: Any, hi: Any, first: npt.NDArray[np.int64],
           a: int, b: int) -> sp.csr_matrix:
    """(entities, b - a) float64 CSR: each entity's keys, from its first row (empty if none)."""
    present = first >= 0
    lengths = np.zeros(first.shape[0], np.int64)
    lengths[present] = (hi - lo)[first[present]]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    pos = np.concatenate([np.arange(lo[i], hi[i]) for i in first[present]] or
                         [np.zeros(0, np.int64)])
    return sp.csr_matrix((data[pos].astype(np.float64), indices[pos] - a, indptr),
                         shape=(first.shape[0], b - a))


class RelationUpdater:
    """The Gibbs (or ALS) updates of one relation's keys, per entity (module docstring).

    Parameters
    ----------
    relation : Relation
    row_weights : float64 (N,)
        Per-row precision multipliers (ones when unweighted).
    """

    def __init__(self, relation: Relation, row_weights: Float64) -> None:
        if not HAVE_NUMBA:  # pragma: no cover - find_relations is used only with numba
            raise RuntimeError("relation updates need numba")
        self.start, self.stop = relation.start, relation.stop
        self.keys = np.arange(relation.start, relation.stop, dtype=np.int64)
        self.entity = relation.entity
        self.table = relation.table
        self.table2 = relation.table.multiply(relation.table).tocsr()
        csc = relation.table.tocsc()
        csc.sort_indices()
        self.indptr = csc.indptr.astype(np.uint64)
        self.ents = csc.indices.astype(np.uint32)
        self.vals = csc.data.astype(np.float64)
        self.r = row_weights
        self.n_e = np.bincount(self.entity, weights=row_weights,
                               minlength=relation.n_entities)

    def linear(self, e: Float64, w: Float64, group: Any, lam: Float64, mu: Float64,
               alpha: float, noise: Float64, scale: float) -> None:
        """Update ``w[start:stop]`` key by key; correct the residuals ``e`` in place."""
        E = np.zeros_like(self.n_e)
        _entity_sums1(self.entity, self.r, e, E)
        D = np.zeros_like(E)
        draw_keys(self.keys, self.indptr, self.ents, self.vals, self.n_e, E, D, w, group, lam,
                  mu, alpha, noise, scale)
        e -= D[self.entity]

    def factor(self, e: Float64, q: Float64, v: Float64, group: Any, lam: Float64,
               mu: Float64, alpha: float, noise: Float64, scale: float) -> None:
        """Update the factor column ``v[start:stop]``; correct ``e`` and ``q`` in place."""
        QR = self.table @ v[self.start:self.stop]
        sums = np.zeros((QR.shape[0], 4))  # per entity: P1, P2, E, PE (one cache line)
        _entity_sums4(self.entity, self.r, e, q, QR, sums)
        QR_new = QR.copy()
        dS = np.zeros_like(QR)  # change of sum_l c_el^2 v_lf^2 per entity
        _relation_factor(self.start, self.indptr, self.ents, self.vals, self.n_e, sums,
                         QR_new, dS, v, group, lam, mu, alpha, noise, scale)
        _apply_change(self.entity, QR_new - QR, dS, e, q)

    def add_outputs(self, w: Float64, Vt: Float64, Q: Float64, y: Float64) -> None:
        """Add the relation's keys to the outputs ``y`` (N,) and to ``Q`` (K, N) in place."""
        w_r, V_r = w[self.start:self.stop], Vt[:, self.start:self.stop].T
        QR = np.asarray(self.table @ V_r)[self.entity].T  # (K, N)
        SR = np.asarray(self.table2 @ (V_r * V_r)).sum(axis=1)[self.entity]
        y += (self.table @ w_r)[self.entity]
        y += (QR * (Q + 0.5 * QR)).sum(axis=0) - 0.5 * SR
        Q += QR


def without_ranges(blocks: list[Any], ranges: list[tuple[int, int]]) -> list[Any]:
    """Cut the key ranges out of sampling blocks (``Block``), keeping their order."""
    out = []
    for b in blocks:
        pieces = [(b.start, b.stop)]
        for a, z in ranges:
            pieces = [piece for s, t in pieces
                      for piece in ((s, min(t, a)), (max(s, z), t)) if piece[1] > piece[0]]
        out += [type(b)(s, t, b.independent) for s, t in pieces]
    return out


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _range_stats(indptr, indices, bounds):  # pragma: no cover - compiled
        """Entries of each key range, and whether it holds exactly one key in every row."""
        R = bounds.shape[0] - 1
        counts = np.zeros(R, np.int64)
        one_hot = np.ones(R, np.bool_)
        row = np.zeros(R, np.int64)
        for i in range(indptr.shape[0] - 1):
            row[:] = 0
            r = 0
            for p in range(indptr[i], indptr[i + 1]):
                while indices[p] >= bounds[r + 1]:
                    r += 1
                if indices[p] >= bounds[r]:
                    row[r] += 1
            for r in range(R):
                counts[r] += row[r]
                if row[r] != 1:
                    one_hot[r] = False
        return counts, one_hot

    @numba.njit(cache=True, nogil=True)
    def _range_span(indptr, indices, a, b):  # pragma: no cover - compiled
        """Positions [lo, hi) of the keys a..b-1 in each row (sorted indices)."""
        n = indptr.shape[0] - 1
        lo = np.empty(n, np.int64)
        hi = np.empty(n, np.int64)
        for i in range(n):
            p = indptr[i]
            end = indptr[i + 1]
            while p < end and indices[p] < a:
                p += 1
            lo[i] = p
            while p < end and indices[p] < b:
                p += 1
            hi[i] = p
        return lo, hi

    @numba.njit(cache=True, nogil=True)
    def _same_as_first(indices, data, lo, hi, entity, first):  # pragma: no cover
        """True when every row's part equals (keys and values) its entity's first row's."""
        for i in range(lo.shape[0]):
            f = first[entity[i]]
            if f == i:
                continue
            if hi[i] - lo[i] != hi[f] - lo[f]:
                return False
            for t in range(hi[i] - lo[i]):
                if indices[lo[i] + t] != indices[lo[f] + t] or data[lo[i] + t] != data[lo[f] + t]:
                    return False
        return True

    @numba.njit(cache=True, nogil=True)
    def _entity_sums1(entity, r, e, E):  # pragma: no cover - compiled
        for i in range(entity.shape[0]):
            E[entity[i]] += r[i] * e[i]

    @numba.njit(cache=True, nogil=True)
    def _entity_sums4(entity, r, e, q, QR, out):  # pragma: no cover - compiled
        """``out[e]`` = P1, P2, E, PE of the module docstring, ``p_i = q_i - QR[entity_i]``."""
        for i in range(entity.shape[0]):
            j = entity[i]
            p = q[i] - QR[j]
            rp = r[i] * p
            out[j, 0] += rp
            out[j, 1] += rp * p
            out[j, 2] += r[i] * e[i]
            out[j, 3] += rp * e[i]

    @numba.njit(cache=True, nogil=True)
    def _apply_change(entity, dQ, dS, e, q):  # pragma: no cover - compiled
        """Correct the rows after a factor pass: y_i moves by dq (q_i + dq / 2) - dS / 2."""
        for i in range(entity.shape[0]):
            j = entity[i]
            dq = dQ[j]
            e[i] -= dq * (q[i] + 0.5 * dq) - 0.5 * dS[j]
            q[i] += dq

    @numba.njit(cache=True, nogil=True)
    def draw_keys(keys, indptr, ents, vals, n_e, E, D, theta, group, lam, mu, alpha, noise,
                  scale):  # pragma: no cover - compiled
        """Draw ``theta[keys[k]]`` in turn, each a linear coefficient ``c`` (column k of a
        CSC over entities) of per-entity terms with row-weight sums ``n_e``: ``E`` holds
        the per-entity residual sums (kept exact across the draws), ``D`` accumulates the
        change of each entity's sum ``sum_k c theta_k``. Relations' linear weights; the
        user_item sampler's weights and factors (:mod:`fmkit.bayes.user_item`)."""
        for k in range(indptr.shape[0] - 1):
            key = keys[k]
            g = group[key]
            old = theta[key]
            prec = lam[g]
            num = lam[g] * mu[g]
            for p in range(indptr[k], indptr[k + 1]):
                j = ents[p]
                c = vals[p]
                prec += alpha * c * c * n_e[j]
                num += alpha * c * (E[j] + old * c * n_e[j])
            new = num / prec + scale * noise[k] / math.sqrt(prec)
            d = new - old
            for p in range(indptr[k], indptr[k + 1]):
                j = ents[p]
                c = vals[p]
                E[j] -= d * c * n_e[j]
                D[j] += d * c
            theta[key] = new

    @numba.njit(cache=True, nogil=True)
    def _relation_factor(start, indptr, ents, vals, n_e, st, QR, dS, theta, group, lam, mu,
                         alpha, noise, scale):  # pragma: no cover - compiled
        for k in range(indptr.shape[0] - 1):
            key = start + k
            g = group[key]
            old = theta[key]
            prec = lam[g]
            num = lam[g] * mu[g]
            for p in range(indptr[k], indptr[k + 1]):
                j = ents[p]
                c = vals[p]
                a = QR[j] - old * c
                s2 = n_e[j] * a * a + 2.0 * a * st[j, 0] + st[j, 1]
                prec += alpha * c * c * s2
                num += alpha * c * (a * st[j, 2] + st[j, 3] + old * c * s2)
            new = num / prec + scale * noise[k] / math.sqrt(prec)
            d = new - old
            for p in range(indptr[k], indptr[k + 1]):
                j = ents[p]
                c = vals[p]
                a = QR[j] - old * c
                st[j, 2] -= d * c * (n_e[j] * a + st[j, 0])
                st[j, 3] -= d * c * (a * st[j, 0] + st[j, 1])
                QR[j] += d * c
                dS[j] += c * c * (new * new - old * old)
            theta[key] = new
