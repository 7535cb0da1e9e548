"""Predictor: score rows with a saved model in numpy (no torch), for every solver.

For each kept parameter sample s (one for SGD/ALS models, many for MCMC), the FM gives

    y_s(x) = w0_s + x . w_s + 1/2 * sum_f [ (x . V_s[:, f])^2 - (x*x) . V_s[:, f]^2 ]

and the score is the mean over samples of link(y_s): identity for regressors, the logistic
sigmoid for SGD binary classifiers, the normal CDF for probit (MCMC) classifiers. Binary
predicted labels are 1.0 where score >= 0.5.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import ndtr

from fmkit.artifact import Artifact, load
from fmkit.errors import DataError
from fmkit.sparse import SparseBatch



def apply_link(link: str, y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Map raw FM outputs to scores: identity, logistic sigmoid or normal CDF."""
    if link == "identity":
        return y
    if link == "logit":
        return 0.5 * (1.0 + np.tanh(0.5 * y))  # overflow-free sigmoid
    if link == "probit":
        return np.asarray(ndtr(y), np.float64)
    raise ValueError(f"unknown link {link!r}")


class Predictor:
    """Scores CSR rows with an :class:`~fmkit.artifact.Artifact`; numpy only."""

    def __init__(self, artifact: Artifact) -> None:
        artifact.check()
        self.artifact = artifact
        self.predictor_type = artifact.predictor_type
        self.feature_dim = artifact.feature_dim
        self._w = artifact.w
        self._V = artifact.V
        self._V2 = artifact.V * artifact.V

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictor:
        """Load a model folder (fmkit or SageMaker) and return its predictor."""
        return cls(load(path))

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
        """Return raw FM outputs y, shape (S, N): one row per parameter sample."""
        csr = self._as_csr(X)
        csr2 = csr.multiply(csr).tocsr()
        out = np.empty((self.artifact.num_samples, csr.shape[0]), np.float64)
        for s in range(self.artifact.num_samples):
            xv = np.asarray(csr @ self._V[s], np.float64)  # (N, K)
            x2v2 = np.asarray(csr2 @ self._V2[s], np.float64)
            lin = np.asarray(csr @ self._w[s], np.float64)
            out[s] = float(self.artifact.w0[s]) + lin + 0.5 * (xv * xv - x2v2).sum(axis=1)
        return out

    def predict_scores(self, X: Any) -> npt.NDArray[np.float32]:
        """Return one score per row (N,): the value for regressors, P(y=1) for classifiers."""
        y = self.decision_function(X)
        return apply_link(self.artifact.link, y).mean(axis=0).astype(np.float32)

    def predict(self, X: Any) -> dict[str, npt.NDArray[np.float32]]:
        """Return ``{"score": (N,)}`` plus ``"predicted_label"`` for binary classifiers."""
        score = self.predict_scores(X)
        out = {"score": score}
        if self.predictor_type == "binary_classifier":
            out["predicted_label"] = (score >= 0.5).astype(np.float32)
        return out
