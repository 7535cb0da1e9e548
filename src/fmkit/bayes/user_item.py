"""Gibbs sampler for a Bayesian FM whose pairs run only between a user and an item block.

The model (``interactions='user_item'``): the keys split into a user block U and an item
block I (all other keys), and

    y_i = w0 + sum_l w_l x_il + sum_f qU_if qI_if,   qU_i = x_iU V_U,  qI_i = x_iI V_I.

There are no pairs inside a block (user x own gender, movie x own genre): those products
are per-user and per-item constants that compete with the linear terms. The priors, the
likelihoods and the order of a sweep are those of
:class:`~fmkit.bayes.sampler.CoordinateSampler`, except that each pass draws the keys of U,
then those of I (key order within each); on one-hot user + item rows, where U's keys come
first, the draws are the same.

Rows are grouped by their user part (the entries of the row in U) and by their item part:
on data prepared per user and per item (MovieLens) every row of a user has the same user
part. With ``ent`` the row's entity and ``Xe`` the entities' parts, ``qU_i = QU[ent_i]``,
and for a key l of U and a factor f the row coefficient is ``h_i = x_il QI[item_i, f]``, so
the conditional's sums group by entity:

    prec = lam + alpha sum_u x_ul^2 S2_u,            S2_u = sum_{i of u} r_i QI_if^2
    num  = lam mu + alpha sum_u x_ul (Se_u + old x_ul S2_u),  Se_u = sum_{i of u} r_i QI_if e_i

After each draw (d = new - old) ``Se_u -= d x_ul S2_u`` for the key's entities; when the
block is done, ``e_i -= dQU[ent_i] QI_if`` (exact: e is linear in one block's parameters
while the other is fixed). Linear weights are the same with ``QI`` replaced by 1. A sweep
costs O(N K) plus O(entity nnz K), whatever the number of keys per row.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.bayes.kernels import HAVE_NUMBA
from fmkit.bayes.priors import Hyperpriors, sample_group_priors
from fmkit.bayes.sampler import ChainState, keys_only
from fmkit.errors import ConfigError

if HAVE_NUMBA:
    import numba

    from fmkit.bayes.relations import draw_keys

Float64 = npt.NDArray[np.float64]


class _Block:
    """One block's entities: the entity of each row and the entities' parts by key."""

    def __init__(self, csr: sp.csr_matrix, mask: npt.NDArray[np.bool_]) -> None:
        ent, first = _group_rows(csr, mask)
        self.ent = ent
        self.Xe = sp.csr_matrix(keys_only(csr[first], mask), dtype=np.float64)  # (entities, F)
        self.n = self.Xe.shape[0]
        self.keys = np.flatnonzero(mask).astype(np.int64)
        csc = sp.csc_matrix(self.Xe[:, self.keys])
        csc.sort_indices()
        self.indptr = csc.indptr.astype(np.int64)
        self.ents = csc.indices.astype(np.int64)
        self.xs = csc.data.astype(np.float64)


def _group_rows(csr: sp.csr_matrix, mask: npt.NDArray[np.bool_]
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Number the distinct parts (entries in ``mask``) of the rows of a canonical CSR:
    return each row's entity and the first row of each entity.

    Rows are grouped by two random projections and the part's length (equal parts give
    bit-identical sums), then checked entry by entry; a collision falls back to
    comparing bytes.
    """
    rng = np.random.default_rng(0)
    F = csr.shape[1]
    keys = np.empty((csr.shape[0], 3))
    _row_keys(csr.indptr, csr.indices, csr.data, mask, rng.random(F), rng.random(F), keys)
    _, first, ent = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    ent = ent.reshape(-1).astype(np.int64)
    first = first.astype(np.int64)
    if _same_parts(csr.indptr, csr.indices, csr.data, mask, ent, first):
        return ent, first
    part = keys_only(csr, mask)  # a projection collision (tested by forcing one)
    index: dict[bytes, int] = {}
    firsts: list[int] = []
    ptr, idx, val = part.indptr, part.indices, part.data
    for i in range(part.shape[0]):
        a, b = ptr[i], ptr[i + 1]
        e = index.setdefault(idx[a:b].tobytes() + val[a:b].tobytes(), len(firsts))
        if e == len(firsts):
            firsts.append(i)
        ent[i] = e
    return ent, np.asarray(firsts, np.int64)


class UserItemSampler(ChainState):
    """Gibbs sampler of the user x item FM on a fixed training matrix.

    Parameters as :class:`~fmkit.bayes.sampler.CoordinateSampler` (Gibbs mode), plus
    ``user_block``: bool (F,), the keys of the user block (the rest is the item block).
    Needs numba.
    """

    backend = "numba"
    relations = ()  # the entity grouping replaces relation blocks

    def __init__(
        self,
        X: sp.spmatrix,
        target: Float64,
        groups: npt.NDArray[np.int64],
        num_factors: int,
        rng: np.random.Generator,
        *,
        user_block: npt.NDArray[np.bool_],
        likelihood: str = "gaussian",
        init_sigma: float = 0.1,
        prior: Hyperpriors | None = None,
        row_weights: Float64 | None = None,
        refresh: int = 10,
    ) -> None:
        if not HAVE_NUMBA:
            raise ConfigError("interactions='user_item' needs numba: "
                              "pip install 'fmkit[bayes]'.")
        csr = sp.csr_matrix(X)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        mask = np.asarray(user_block, bool)
        self.U = _Block(csr, mask)
        self.I = _Block(csr, ~mask)
        self._init_state(csr.shape[0], csr.shape[1], target, groups, num_factors, rng,
                         likelihood=likelihood, init_sigma=init_sigma, prior=prior,
                         row_weights=row_weights, refresh=refresh)
        self.QU = np.zeros((num_factors, self.U.n))
        self.QI = np.zeros((num_factors, self.I.n))

    def predict_train(self) -> Float64:
        """Return the current outputs on the training rows (N,) from scratch."""
        self.QU = np.ascontiguousarray((self.U.Xe @ self.Vt.T).T)
        self.QI = np.ascontiguousarray((self.I.Xe @ self.Vt.T).T)
        u, m = self.U.ent, self.I.ent
        lin = (self.U.Xe @ self.w)[u] + (self.I.Xe @ self.w)[m]
        return self.w0 + lin + np.einsum("ki,ki->i", self.QU[:, u], self.QI[:, m])

    def _block(self, side: _Block, other: _Block, other_q: Float64, theta: Float64,
               lam: Float64, mu: Float64, noise: Float64) -> Float64:
        S2 = np.empty(side.n)
        Se = np.empty(side.n)
        _entity_sums(side.ent, other.ent, other_q, self.r, self.e, S2, Se)
        dQ = np.zeros(side.n)
        draw_keys(side.keys, side.indptr, side.ents, side.xs, S2, Se, dQ, theta, self.groups,
                  lam, mu, self.alpha, noise, 1.0)
        _propagate(side.ent, other.ent, dQ, other_q, self.e)
        return dQ

    def _linear(self, side: _Block, other: _Block, noise: Float64) -> None:
        self._block(side, other, np.ones(other.n), self.w, self.lam_w, self.mu_w, noise)

    def sweep(self) -> None:
        """Run one sweep: latent targets, noise precision, w0, w, then each factor column."""
        self._begin_sweep()
        self.lam_w, self.mu_w = sample_group_priors(self.rng, self.w, self.member,
                                                    self.counts, self.mu_w, self.prior)
        noise = self.rng.standard_normal(self.feature_dim)
        self._linear(self.U, self.I, noise[self.U.keys])
        self._linear(self.I, self.U, noise[self.I.keys])
        self.lam_v, self.mu_v = sample_group_priors(self.rng, self.Vt, self.member,
                                                    self.counts, self.mu_v, self.prior)
        for f in range(self.num_factors):
            noise = self.rng.standard_normal(self.feature_dim)
            v, lam, mu = self.Vt[f], self.lam_v[f], self.mu_v[f]
            self.QU[f] += self._block(self.U, self.I, self.QI[f], v, lam, mu,
                                      noise[self.U.keys])
            self.QI[f] += self._block(self.I, self.U, self.QU[f], v, lam, mu,
                                      noise[self.I.keys])


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _entity_sums(ent, other_ent, other_q, r, e, S2, Se):  # type: ignore[no-untyped-def]
        """S2_u = sum r_i h_i^2, Se_u = sum r_i h_i e_i over the rows i of entity u,
        with h_i the other block's value ``other_q[other_ent[i]]``."""
        S2[:] = 0.0
        Se[:] = 0.0
        for i in range(ent.shape[0]):
            h = other_q[other_ent[i]]
            u = ent[i]
            S2[u] += r[i] * h * h
            Se[u] += r[i] * h * e[i]

    @numba.njit(cache=True, nogil=True)
    def _propagate(ent, other_ent, dQ, other_q, e):  # type: ignore[no-untyped-def]
        for i in range(ent.shape[0]):
            e[i] -= dQ[ent[i]] * other_q[other_ent[i]]

    @numba.njit(cache=True, nogil=True)
    def _row_keys(indptr, indices, data, mask, r1, r2, out):  # type: ignore[no-untyped-def]
        """Per row: two random projections and the length of its entries in ``mask``."""
        for i in range(indptr.shape[0] - 1):
            h1 = 0.0
            h2 = 0.0
            c = 0
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if mask[j]:
                    h1 += data[p] * r1[j]
                    h2 += data[p] * r2[j]
                    c += 1
            out[i, 0] = h1
            out[i, 1] = h2
            out[i, 2] = c

    @numba.njit(cache=True, nogil=True)
    def _same_parts(indptr, indices, data, mask, ent, first):  # type: ignore[no-untyped-def]
        """True if every row's entries in ``mask`` equal those of its entity's first row."""
        for i in range(indptr.shape[0] - 1):
            f = first[ent[i]]
            if f == i:
                continue
            p, q = indptr[i], indptr[f]
            while True:
                while p < indptr[i + 1] and not mask[indices[p]]:
                    p += 1
                while q < indptr[f + 1] and not mask[indices[q]]:
                    q += 1
                end_p, end_q = p >= indptr[i + 1], q >= indptr[f + 1]
                if end_p or end_q:
                    if end_p != end_q:
                        return False
                    break
                if indices[p] != indices[q] or data[p] != data[q]:
                    return False
                p += 1
                q += 1
        return True
