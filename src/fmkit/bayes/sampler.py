"""The state of a Bayesian FM and one sweep of coordinate updates over it.

:class:`CoordinateSampler` holds ``w0``, ``w`` and the factors of one FM plus their
hyperparameters, and runs sweeps over a fixed training matrix. One sweep:

1. every ``refresh`` sweeps recompute ``q = X V`` and the predictions from scratch (in
   between they are kept up to date by the updates); for the probit likelihood draw the
   latent targets (:mod:`fmkit.bayes.likelihood`);
2. in myFM's order: the noise precision (Gibbs, regression), ``w0``, every group's
   ``lambda`` and ``mu`` of ``w`` (Gibbs), ``w`` block by block, ``lambda`` and ``mu`` of
   each factor column (Gibbs), then each factor column block by block
   (:mod:`fmkit.bayes.kernels`, :mod:`fmkit.bayes.priors`).

With ``mode='gibbs'`` each update is a draw from the conditional (MCMC); with
``mode='als'`` it is the conditional mean under fixed precisions, which is exact
coordinate descent on the L2-regularised squared loss (ALS).

Shapes: N rows, F keys, K factors, G groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.bayes.groups import Block, plan_blocks
from fmkit.bayes.kernels import (
    balanced_spans,
    default_backend,
    predict_rows,
    start_threads,
    update_block,
)
from fmkit.bayes.likelihood import sample_latent
from fmkit.bayes.priors import Hyperpriors, membership, sample_alpha, sample_group_priors
from fmkit.bayes.relations import Relation, RelationUpdater, without_ranges

Float64 = npt.NDArray[np.float64]


class ChainState:
    """What every sampler of a Bayesian FM holds and how each sweep starts.

    The targets, the priors and their hyperparameters, the current sample (``w0``, ``w``,
    ``Vt``), the residuals ``e`` and, for the probit likelihood, the latent targets.
    Subclasses set the sampling blocks and implement :meth:`predict_train` and the rest
    of the sweep.
    """

    mode = "gibbs"

    def _init_state(self, n_rows: int, feature_dim: int, target: Float64,
                    groups: npt.NDArray[np.int64], num_factors: int,
                    rng: np.random.Generator, *, likelihood: str, init_sigma: float,
                    prior: Hyperpriors | None, row_weights: Float64 | None, refresh: int,
                    reg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.r = (np.ones(n_rows) if row_weights is None
                  else np.asarray(row_weights, np.float64))
        self.n_rows, self.feature_dim = n_rows, feature_dim
        self.num_factors = num_factors
        self.target = np.asarray(target, np.float64)
        self.positive = self.target > 0.5
        self.likelihood = likelihood
        self.rng = rng
        self.prior = prior or Hyperpriors()
        self.groups = np.ascontiguousarray(groups, np.int64)
        self.member = membership(self.groups)
        self.n_groups = self.member.shape[0]
        self.counts = np.asarray(self.member.sum(axis=1), np.float64).reshape(-1)

        G, K, F = self.n_groups, num_factors, feature_dim
        if likelihood == "gaussian":
            total = float(self.r.sum())
            self.w0 = float(np.sum(self.r * self.target) / total) if total > 0 else 0.0
        else:
            self.w0 = 0.0
        self.w = np.zeros(F)
        self.Vt = np.ascontiguousarray(rng.normal(0.0, init_sigma, (K, F)))  # (K, F)
        self.alpha = 1.0
        if self.mode == "als":
            self.w0_precision = reg[0]
            self.lam_w = np.full(G, reg[1])
            self.lam_v = np.full((K, G), reg[2])
        else:
            self.w0_precision = self.prior.w0_precision
            self.lam_w = np.ones(G)
            self.lam_v = np.ones((K, G))
        self.mu_w = np.zeros(G)
        self.mu_v = np.zeros((K, G))
        self.e = np.zeros(n_rows)
        self.latent = self.target.copy()
        self.refresh = max(1, refresh)
        self.sweeps = 0

    def predict_train(self) -> Float64:
        raise NotImplementedError

    def _noise(self, *shape: int) -> Float64:
        if self.mode == "als":
            return np.zeros(shape)
        return self.rng.standard_normal(shape)

    def _begin_sweep(self) -> None:
        """Outputs (refreshed every ``refresh`` sweeps), latent targets, residuals, the
        noise precision and ``w0``: the start of every sweep, in myFM's order."""
        gibbs = self.mode == "gibbs"
        if self.sweeps % self.refresh == 0:
            y = self.predict_train()
        else:
            y = self.latent - self.e
        if self.likelihood == "probit" and gibbs:
            self.latent = sample_latent(self.rng, y, self.positive)
        self.e = self.latent - y
        self.sweeps += 1
        e, r = self.e, self.r
        if gibbs and self.likelihood == "gaussian":
            self.alpha = sample_alpha(self.rng, e, r, self.prior)
        prec = self.w0_precision + self.alpha * float(r.sum())
        num = self.alpha * float(np.sum(r * (e + self.w0)))  # np.sum: see sample_alpha
        scale = 1.0 if gibbs else 0.0
        new = num / prec + scale * float(self._noise(1)[0]) / np.sqrt(prec)
        e -= new - self.w0
        self.w0 = new

    def residuals(self) -> Float64:
        """Return the residuals (N,) of the last sweep's targets, as numpy."""
        return self.e

    def outputs(self) -> Float64:
        """Return the current sample's FM outputs on the training rows (N,), as numpy."""
        return self.latent - self.e

    def snapshot(self) -> tuple[float, Float64, Float64]:
        """Return ``(w0, w (F,), Vt (K, F))``: numpy views of the current sample."""
        return self.w0, self.w, self.Vt


class CoordinateSampler(ChainState):
    """Gibbs sampler (or ALS) for an FM on a fixed training matrix.

    Parameters
    ----------
    X : csr_matrix (N, F)
        Training rows; converted to float64 with duplicates summed.
    target : float64 (N,)
        Labels (0/1 for ``likelihood='probit'``).
    groups : int64 (F,)
        Prior group of every key, numbered 0..G-1.
    num_factors : int
        K.
    rng : numpy Generator
        The only source of randomness.
    likelihood : {'gaussian', 'probit'}
    mode : {'gibbs', 'als'}
    init_sigma : float
        Initial factors ~ N(0, init_sigma^2).
    prior : Hyperpriors, optional
    row_weights : float64 (N,), optional
        Per-row precision multipliers (sample weights); ones by default.
    backend : {'numba', 'numpy'}, optional
    blocks : list of Block, optional
        Sampling blocks; found by :func:`~fmkit.bayes.groups.plan_blocks` by default.
    reg : (float, float, float), optional
        ALS only: fixed precisions (L2 penalties) of ``w0``, ``w`` and ``V``.
    refresh : int, default=10
        Recompute predictions from scratch every this many sweeps (rounding drift).
    relations : list of Relation, optional
        Key ranges updated per entity (:mod:`fmkit.bayes.relations`, numba backend only);
        they are updated after the other keys of each pass.
    """

    def __init__(
        self,
        X: sp.spmatrix,
        target: Float64,
        groups: npt.NDArray[np.int64],
        num_factors: int,
        rng: np.random.Generator,
        *,
        likelihood: str = "gaussian",
        mode: str = "gibbs",
        init_sigma: float = 0.1,
        prior: Hyperpriors | None = None,
        row_weights: Float64 | None = None,
        backend: str | None = None,
        blocks: Sequence[Block] | None = None,
        reg: tuple[float, float, float] = (0.0, 0.0, 0.0),
        refresh: int = 10,
        relations: Sequence[Relation] = (),
    ) -> None:
        self.mode = mode
        self._init_state(X.shape[0], X.shape[1], target, groups, num_factors, rng,
                         likelihood=likelihood, init_sigma=init_sigma, prior=prior,
                         row_weights=row_weights, refresh=refresh, reg=reg)
        self.relations = [RelationUpdater(rel, self.r) for rel in relations]
        csr = _without_keys(sp.csr_matrix(X), [(u.start, u.stop) for u in relations])
        csr = sp.csr_matrix(csr, dtype=np.float64, copy=True)  # sorted in place below
        csr.sum_duplicates()
        self.X = csr
        self.X2 = csr.multiply(csr).tocsr()
        csc = csr.tocsc()
        csc.sort_indices()
        # unsigned indices spare numba's negative-index checks: 30% faster kernels
        self.indptr = csc.indptr.astype(np.uint64)
        self.rows = csc.indices.astype(np.uint32 if csr.shape[0] < 2**32 else np.uint64)
        self.vals = csc.data.astype(np.float64)
        self.unit = bool(np.all(self.vals == 1.0))  # one-hot: kernels skip the values
        self.backend = backend or default_backend()
        if self.backend == "numba":
            start_threads()
        self.blocks = list(blocks) if blocks is not None else plan_blocks(csc)
        if relations:
            self.blocks = without_ranges(self.blocks, [(u.start, u.stop) for u in relations])
        self._kernel_r = None if row_weights is None else self.r  # None: unweighted loops
        self.Q = np.zeros((num_factors, self.n_rows))
        # (numba thread count, each independent block's balanced_spans by its first key)
        self._spans_of: tuple[int, dict[int, Any]] | None = None

    # ------------------------------------------------------------------ predictions
    def predict_train(self) -> Float64:
        """Return the current FM outputs on the training rows (N,), float64."""
        y = predict_rows(self.backend, self.X, self.X2, self.w0, self.w, self.Vt, self.Q)
        for u in self.relations:
            u.add_outputs(self.w, self.Vt, self.Q, y)
        return y

    # ------------------------------------------------------------------ sweep
    def sweep(self) -> None:
        """Run one sweep (see the module docstring for the order)."""
        gibbs = self.mode == "gibbs"
        scale = 1.0 if gibbs else 0.0
        self._begin_sweep()
        e, alpha = self.e, self.alpha
        # one pass's noise (its blocks, then its relations) in one draw per pass, and the
        # K factor passes' in one: the same stream as a draw per block, fewer calls
        parts = self._noise_parts()
        spans = self._spans()
        if gibbs:
            self.lam_w, self.mu_w = sample_group_priors(
                self.rng, self.w, self.member, self.counts, self.mu_w, self.prior)
        noise = self._noise(parts[-1])
        for b, a in zip(self.blocks, parts, strict=False):
            update_block(self.backend, b.start, b.stop, b.independent, self.indptr,
                         self.rows, self.vals, self._kernel_r, e, None, self.w, self.groups,
                         self.lam_w, self.mu_w, alpha, noise[a:a + b.stop - b.start], scale,
                         unit=self.unit, spans=spans.get(b.start))
        for u, a in zip(self.relations, parts[len(self.blocks):], strict=False):
            u.linear(e, self.w, self.groups, self.lam_w, self.mu_w, alpha,
                     noise[a:a + u.stop - u.start], scale)
        if gibbs:
            self.lam_v, self.mu_v = sample_group_priors(
                self.rng, self.Vt, self.member, self.counts, self.mu_v, self.prior)
        noise_v = self._noise(self.num_factors, parts[-1])
        for f in range(self.num_factors):
            q, v = self.Q[f], self.Vt[f]
            lam, mu, z = self.lam_v[f], self.mu_v[f], noise_v[f]
            for b, a in zip(self.blocks, parts, strict=False):
                update_block(self.backend, b.start, b.stop, b.independent, self.indptr,
                             self.rows, self.vals, self._kernel_r, e, q, v, self.groups, lam,
                             mu, alpha, z[a:a + b.stop - b.start], scale, unit=self.unit,
                             spans=spans.get(b.start))
            for u, a in zip(self.relations, parts[len(self.blocks):], strict=False):
                u.factor(e, q, v, self.groups, lam, mu, alpha, z[a:a + u.stop - u.start],
                         scale)

    def _spans(self) -> dict[int, Any]:
        """Each independent block's runs of keys for the numba threads (balanced_spans),
        by the block's first key; computed once per thread count."""
        if self.backend != "numba":
            return {}
        import numba

        threads = numba.get_num_threads()
        if self._spans_of is None or self._spans_of[0] != threads:
            self._spans_of = (threads, {b.start: balanced_spans(self.indptr, b.start, b.stop,
                                                                threads)
                                        for b in self.blocks if b.independent})
        return self._spans_of[1]

    def _noise_parts(self) -> list[int]:
        """Where each block's, then each relation's, noise starts in a pass's draw; the
        pass's size last."""
        out = [0]
        for a, b in [(b.start, b.stop) for b in self.blocks] + [(u.start, u.stop)
                                                               for u in self.relations]:
            out.append(out[-1] + b - a)
        return out

    def parameters(self) -> tuple[float, Float64, Float64]:
        """Return ``(w0, w (F,), V (F, K))`` as float64 copies."""
        return self.w0, self.w.copy(), self.Vt.T.copy()


def _without_keys(csr: sp.csr_matrix, ranges: list[tuple[int, int]]) -> sp.csr_matrix:
    """Return ``csr`` with the entries of the key ranges removed (the relations' keys)."""
    if not ranges:
        return csr
    keep = np.ones(csr.shape[1], bool)
    for a, b in ranges:
        keep[a:b] = False
    return keys_only(csr, keep)


def keys_only(csr: sp.csr_matrix, keep: npt.NDArray[np.bool_]) -> sp.csr_matrix:
    """Return ``csr`` with only the entries whose key is in ``keep`` (F,) bool; O(nnz)."""
    pos = np.flatnonzero(keep[csr.indices])
    indptr = np.searchsorted(pos, csr.indptr)
    return sp.csr_matrix((csr.data[pos], csr.indices[pos], indptr), shape=csr.shape)
