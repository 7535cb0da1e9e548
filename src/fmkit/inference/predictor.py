"""Predictor: score rows with a saved model in numpy (no torch), for every solver.

For each kept parameter sample s (one for SGD/ALS models, many for MCMC), the FM gives

    y_s(x) = w0_s + x . w_s + 1/2 * sum_f [ (x . V_s[:, f])^2 - (x*x) . V_s[:, f]^2 ]

and the score is the mean over samples of link(y_s): identity for regressors, the logistic
sigmoid for SGD binary classifiers, the normal CDF for probit (MCMC) classifiers. Binary
predicted labels are 1.0 where score >= 0.5.

A ``user_item`` model (:attr:`fmkit.artifact.Artifact.interactions`, Bayesian solver) keeps
only the pairs between its user block U (:attr:`~fmkit.artifact.Artifact.user_block`) and
the other keys I::

    y_s(x) = w0_s + x . w_s + sum_f (sum_{j in U} x_j V_s[j, f]) * (sum_{j in I} x_j V_s[j, f])

Every scoring path (bulk, the request fast path, recommendations) uses that formula for
such models.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.artifact import Artifact
from fmkit.errors import DataError
from fmkit.inference.links import apply_link
from fmkit.sparse import SparseBatch

__all__ = ["Predictor", "apply_link", "fm_outputs", "user_item_outputs"]


def fm_outputs(csr: Any, csr2: Any, w0: Any, w: Any, V: Any, V2: Any
               ) -> npt.NDArray[np.float64]:
    """Return FM outputs (N,) of CSR rows for one parameter sample; ``csr2`` holds the
    squared values and ``V2`` the squared factors. The one formula behind bulk scoring and
    the Bayesian solvers' running test metrics, so they agree bit for bit."""
    xv = np.asarray(csr @ V, np.float64)  # (N, K)
    x2v2 = np.asarray(csr2 @ V2, np.float64)
    lin = np.asarray(csr @ w, np.float64)
    return float(w0) + lin + 0.5 * (xv * xv - x2v2).sum(axis=1)


def user_item_outputs(csr: Any, w0: Any, w: Any, V: Any, user_block: npt.NDArray[np.bool_]
                      ) -> npt.NDArray[np.float64]:
    """Return the outputs (N,) of a ``user_item`` model for one parameter sample: pairs
    only across the blocks, ``y = w0 + x.w + <x_U V, x_I V>`` (``user_block`` (F,) marks
    U; every other key is in I). Bulk scoring and the MCMC running test metrics."""
    VU = np.where(user_block[:, None], V, 0).astype(V.dtype, copy=False)
    qU = np.asarray(csr @ VU, np.float64)
    qI = np.asarray(csr @ (V - VU), np.float64)
    return float(w0) + np.asarray(csr @ w, np.float64) + (qU * qI).sum(axis=1)


class Predictor:
    """Scores CSR rows with an :class:`~fmkit.artifact.Artifact`; numpy only."""

    def __init__(self, artifact: Artifact) -> None:
        artifact.check()
        self.artifact = artifact
        self.predictor_type = artifact.predictor_type
        self.feature_dim = artifact.feature_dim
        self._w = artifact.w
        self._V = artifact.V
        # (F,) bool for user_item models, read once here; None for the ordinary FM
        self._user_block = artifact.user_block
        # ||V_j||^2 per key (S, F); V * V itself is not kept (a second copy of V per server
        # worker, which only bulk scoring reads). user_item models have no squared terms.
        self._norms = (None if self._user_block is not None
                       else (artifact.V * artifact.V).sum(axis=2, dtype=np.float64))
        self._recommender: Any = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictor:
        """Load a model (an fmkit folder or a SageMaker model.tar.gz / model_algo-1, local or
        ``s3://``: :func:`fmkit.model_store.load_model`) and return its predictor."""
        from fmkit.model_store import load_model

        return cls(load_model(path))

    def _as_csr(self, X: Any) -> sp.csr_matrix:
        if isinstance(X, SparseBatch):
            X.validate(feature_dim=self.feature_dim, source="input")
            return X.to_csr(self.feature_dim)
        if sp.issparse(X):
            csr = sp.csr_matrix(X, dtype=np.float32)
        else:
            arr = np.asarray(X, dtype=np.float32)
            if arr.ndim != 2:
                raise DataError(f"X must be 2-D; got shape {arr.shape}.")
            csr = sp.csr_matrix(arr)
        if csr.shape[1] != self.feature_dim:
            raise DataError(
                f"X has {csr.shape[1]} columns but the model was trained with "
                f"feature_dim={self.feature_dim}."
            )
        return csr

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """Return raw FM outputs y, shape (S, N): one row per parameter sample.

        Sparse matrix products, for bulk scoring; the Bayesian solvers' running test metrics
        use the same arithmetic, so a saved model reproduces them bit for bit. Small
        requests go through :meth:`decision_rows` instead (no scipy overhead).
        """
        csr = self._as_csr(X)
        out = np.empty((self.artifact.num_samples, csr.shape[0]), np.float64)
        if self._user_block is not None:
            for s in range(self.artifact.num_samples):
                out[s] = user_item_outputs(csr, self.artifact.w0[s], self._w[s], self._V[s],
                                           self._user_block)
            return out
        csr2 = csr.multiply(csr).tocsr()
        for s in range(self.artifact.num_samples):
            V = self._V[s]
            out[s] = fm_outputs(csr, csr2, self.artifact.w0[s], self._w[s], V, V * V)
        return out

    def _scores(self, y: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Mean over samples of link(y_s): (S, N) -> (N,) float32."""
        linked = apply_link(self.artifact.link, y)
        return (linked[0] if linked.shape[0] == 1 else linked.mean(axis=0)).astype(np.float32)

    def _outputs(self, score: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float32]]:
        out = {"score": score}
        if self.predictor_type == "binary_classifier":
            out["predicted_label"] = (score >= 0.5).astype(np.float32)
        return out

    def predict_scores(self, X: Any) -> npt.NDArray[np.float32]:
        """Return one score per row (N,): the value for regressors, P(y=1) for classifiers."""
        return self._scores(self.decision_function(X))

    def predict(self, X: Any) -> dict[str, npt.NDArray[np.float32]]:
        """Return ``{"score": (N,)}`` plus ``"predicted_label"`` for binary classifiers."""
        return self._outputs(self.predict_scores(X))

    # ------------------------------------------------------------------ request fast path
    def decision_rows(
        self,
        indices: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.int64],
        values: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float64]:
        """Return raw FM outputs (S, N) for trusted CSR arrays, without building scipy matrices.

        The fast path for small requests: it gathers the rows of V that the non-zeros touch
        and sums them per row in float64, using ``sum_f (x_j v_jf)^2 = x_j^2 ||v_j||^2``.
        The caller has checked that keys lie in ``[0, feature_dim)`` and values are finite
        (:meth:`fmkit.sparse.SparseBatch.validate`). Results equal
        :meth:`decision_function` up to float32 rounding.
        """
        n = int(offsets.shape[0] - 1)
        S = self.artifact.num_samples
        out = np.empty((S, n), np.float64)
        out[:] = self.artifact.w0.astype(np.float64)[:, None]
        if n == 0 or indices.shape[0] == 0:
            return out
        # bound the (Z, K) gather to about 2**20 floats per block of rows
        K = max(1, self.artifact.num_factors)
        budget = max(1, (1 << 20) // K)
        if indices.shape[0] <= budget:
            self._decision_block(indices, offsets, values, out)
            return out
        start = 0
        while start < n:
            stop = int(np.searchsorted(offsets, offsets[start] + budget, side="right")) - 1
            stop = min(n, max(stop, start + 1))
            lo, hi = int(offsets[start]), int(offsets[stop])
            if hi > lo:
                self._decision_block(indices[lo:hi], offsets[start : stop + 1] - lo,
                                     values[lo:hi], out[:, start:stop])
            start = stop
        return out

    def _decision_block(self, idx: npt.NDArray[np.int64], offs: npt.NDArray[np.int64],
                        vals: npt.NDArray[np.float32], out: npt.NDArray[np.float64]) -> None:
        if self._user_block is not None:
            self._user_item_block(idx, offs, vals, out)
            return
        assert self._norms is not None
        if offs.shape[0] == 2 and (idx.shape[0] < 2 or np.all(idx[1:] > idx[:-1])):
            # one row with sorted, distinct keys (a typical single request): plain dots
            x = vals.astype(np.float64)
            x2 = x * x
            for s in range(self.artifact.num_samples):
                xv = x @ self._V[s][idx]  # (K,)
                out[s, 0] += (float(self._w[s][idx] @ x)
                              + 0.5 * (float(xv @ xv) - float(self._norms[s][idx] @ x2)))
            return
        lengths = np.diff(offs)
        row = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
        flat = row * self.feature_dim + idx
        x = vals.astype(np.float64)
        if flat.shape[0] > 1 and not np.all(flat[1:] > flat[:-1]):
            # unsorted or duplicate keys: duplicates add up before squaring, as in a matrix
            flat, inverse = np.unique(flat, return_inverse=True)
            x = np.asarray(np.bincount(inverse, weights=x, minlength=flat.shape[0]), np.float64)
            idx = flat % self.feature_dim
            lengths = np.bincount(flat // self.feature_dim, minlength=lengths.shape[0])
            offs = np.zeros(lengths.shape[0] + 1, np.int64)
            np.cumsum(lengths, out=offs[1:])
        nonempty = lengths > 0
        starts = offs[:-1][nonempty]
        x2 = x * x
        for s in range(self.artifact.num_samples):
            gathered = self._V[s][idx] * x[:, None]  # (Z, K)
            xv = np.add.reduceat(gathered, starts, axis=0)  # (N', K)
            lin = np.add.reduceat(self._w[s][idx] * x, starts)
            sq = np.add.reduceat(self._norms[s][idx] * x2, starts)
            out[s, nonempty] += lin + 0.5 * (np.einsum("ij,ij->i", xv, xv) - sq)

    def _user_item_block(self, idx: npt.NDArray[np.int64], offs: npt.NDArray[np.int64],
                         vals: npt.NDArray[np.float32], out: npt.NDArray[np.float64]) -> None:
        """:meth:`_decision_block` for a ``user_item`` model: ``y += x.w + <q_U, q_I>``.

        ``q_U`` and ``q_I`` are a row's summed ``x_j V_j`` over its keys in and out of the
        user block. Both are linear in x, so duplicate keys and their order need no
        special care: summing first or adding the gathered terms gives the same sums.
        """
        assert self._user_block is not None
        x = vals.astype(np.float64)
        in_u = self._user_block[idx]
        if offs.shape[0] == 2:  # one row (a typical single request): plain dots
            iu, ii = idx[in_u], idx[~in_u]
            xu, xi = x[in_u], x[~in_u]
            for s in range(self.artifact.num_samples):
                V = self._V[s]
                out[s, 0] += float(self._w[s][idx] @ x) + float((xu @ V[iu]) @ (xi @ V[ii]))
            return
        lengths = np.diff(offs)
        nonempty = lengths > 0
        starts = offs[:-1][nonempty]
        K = self.artifact.num_factors
        # x_j split into the two blocks, (Z, 2): [x_j if j in U, x_j if j in I]
        split = np.zeros((x.shape[0], 2), np.float64)
        split[in_u, 0] = x[in_u]
        split[~in_u, 1] = x[~in_u]
        for s in range(self.artifact.num_samples):
            # (Z, 2, K) -> per row (N', 2K): [q_U, q_I]
            rows = self._V[s][idx]  # (Z, K)
            gathered = (split[:, :, None] * rows[:, None, :]).reshape(x.shape[0], 2 * K)
            q = np.add.reduceat(gathered, starts, axis=0)
            lin = np.add.reduceat(self._w[s][idx] * x, starts)
            out[s, nonempty] += lin + np.einsum("ij,ij->i", q[:, :K], q[:, K:])

    def predict_batch(self, batch: SparseBatch, *, validate: bool = True
                      ) -> dict[str, npt.NDArray[np.float32]]:
        """Like :meth:`predict` for a :class:`SparseBatch`, through :meth:`decision_rows`.

        Raises
        ------
        DataError
            A key is out of range for the model's feature_dim or a value is not finite
            (when ``validate``).
        """
        if validate:
            batch.validate(feature_dim=self.feature_dim, source="input")
        return self._outputs(self._scores(
            self.decision_rows(batch.indices, batch.offsets, batch.values)))

    def recommend(self, user_ids: Any, *, k: int = 10, **options: Any) -> list[Any]:
        """Return one :class:`~fmkit.inference.recommend.Recommendation` per raw user id.

        The top ``k`` items in raw ids, best first, training items excluded; ``options``
        are those of :meth:`fmkit.inference.recommend.Recommender.recommend_many`
        (``exclude_seen``, ``exclude``, ``context``, ``min_score``, ``label_only``). The
        item tables are built on the first call and kept.
        """
        from fmkit.inference.recommend import Recommender

        if self._recommender is None:
            self._recommender = Recommender(self.artifact)
        return list(self._recommender.recommend_many([str(u) for u in user_ids], k=k,
                                                     **options))
