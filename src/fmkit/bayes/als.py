"""fit_als: alternating least squares (coordinate descent) for the FM regressor.

Minimises

    sum_i r_i (y_i - yhat_i)^2 + sum_l sqrt(1 + n_l) (reg_w w_l^2 + reg_v |v_l|^2)

(``r_i`` the sample weights, ``n_l`` the total weight of the training rows holding key
``l`` -- their number when unweighted -- and ``w0`` unpenalised) by exact coordinate
updates: each parameter is set to its least-squares solution given all others, in the
order of the Gibbs sweep
(:class:`~fmkit.bayes.sampler.CoordinateSampler` with ``mode='als'``). Scaling the
penalty with the key's frequency (as ALS-WR does, here with a square root) keeps rare
keys from overfitting without over-shrinking frequent ones; it measured 0.9275 test RMSE
on MovieLens 100K ua against 0.931 for a flat penalty. It is deterministic: the only
randomness is the initial factors, drawn from ``seed``.

Regularisation: ``linear_wd`` and ``factors_wd`` are read as ``reg_w`` and ``reg_v``
above. When both are left at a generic default (SageMaker's or fmkit's, which are
per-example SGD decays), fmkit's ALS defaults ``reg_w = 1`` and ``reg_v = 1.2`` are used
instead (tuned on MovieLens 100K ua, rank 8); see :mod:`fmkit.bayes.settings`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fmkit.artifact import Artifact
from fmkit.bayes.gibbs import _TestScorer
from fmkit.bayes.kernels import BACKENDS
from fmkit.bayes.sampler import CoordinateSampler
from fmkit.bayes.settings import als_regularisation, init_sigma
from fmkit.config import FMConfig
from fmkit.errors import ConfigError, DataError, DivergenceError
from fmkit.metrics import compute_metrics
from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

def fit_als(
    config: FMConfig,
    train: SparseBatch,
    *,
    test: SparseBatch | None = None,
    callback: Callable[[int, dict[str, Any]], bool | None] | None = None,
    backend: str | None = None,
) -> tuple[Artifact, list[dict[str, Any]]]:
    """Fit an FM regressor by ALS; return a one-sample artifact and per-epoch history.

    Parameters
    ----------
    config : FMConfig
        ``predictor_type`` must be 'regressor'; ``num_factors``, ``epochs`` (full passes),
        ``seed``, ``linear_wd`` / ``factors_wd`` (see the module docstring),
        ``factors_init_sigma`` (initial factors ~ N(0, sigma^2); a generic default is
        replaced by 0.1).
    train, test : SparseBatch
        Rows with labels; ``test`` is scored after every epoch.
    callback : callable(epoch, logs) -> bool or None, optional
        Called after each epoch; True stops.
    backend : {'numba', 'numpy'}, optional

    Returns
    -------
    artifact : Artifact
        One sample, link 'identity', metadata ``solver='als'``, ``regularisation``.
    history : list of dict
        ``epoch``, ``train:rmse``, ``test:<metric>``, ``seconds`` per epoch.
    """
    if config.predictor_type != "regressor":
        raise ConfigError("solver 'als' supports only predictor_type='regressor'; got "
                          f"{config.predictor_type!r}. Use solver='mcmc' for binary_classifier.")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    feature_dim = config.feature_dim or train.width
    if feature_dim < 1 or train.n_rows == 0:
        raise DataError("train: no rows or no features; check the input files.")
    train.validate(feature_dim=feature_dim, predictor_type="regressor", require_labels=True,
                   source="train")
    if test is not None:
        test.validate(feature_dim=feature_dim, predictor_type="regressor",
                      require_labels=True, source="test")
    reg_w, reg_v = als_regularisation(config)
    sigma = init_sigma(config)
    rng = np.random.default_rng(config.seed)
    weights = None if train.weights is None else train.weights.astype(np.float64)
    X = train.to_csr(feature_dim)
    # one prior "group" per key carries its own penalty sqrt(1 + n_l) * reg
    solver = CoordinateSampler(
        X, train.labels.astype(np.float64),  # type: ignore[union-attr]
        np.arange(feature_dim, dtype=np.int64), config.num_factors, rng, mode="als",
        init_sigma=sigma, row_weights=weights, backend=backend,
    )
    lengths = np.diff(solver.indptr).astype(np.int64)
    key_of_nnz = np.repeat(np.arange(feature_dim), lengths)
    held = np.bincount(key_of_nnz, weights=solver.r[solver.rows], minlength=feature_dim)
    scale = np.sqrt(1.0 + held)  # weighted count of rows holding each key
    # a tiny floor keeps keys absent from the data at 0 when a penalty is 0
    solver.lam_w = np.maximum(reg_w * scale, 1e-12)
    solver.lam_v = np.tile(np.maximum(reg_v * scale, 1e-12), (config.num_factors, 1))
    scorer = None if test is None else _TestScorer(test, feature_dim, "identity")
    history: list[dict[str, Any]] = []
    test_metrics: dict[str, float] = {}
    done = 0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        solver.sweep()
        done = epoch
        if not np.all(np.isfinite(solver.e)):
            raise DivergenceError(f"ALS produced NaN or infinity at epoch {epoch}; raise "
                                  "linear_wd / factors_wd.")
        logs: dict[str, Any] = {"epoch": epoch,
                                "train:rmse": float(np.sqrt(np.mean(solver.e ** 2)))}
        if scorer is not None and test is not None:
            scores = scorer.current(np.float32(solver.w0), solver.w.astype(np.float32),
                                    np.ascontiguousarray(solver.Vt.T, dtype=np.float32))
            test_metrics = compute_metrics("regressor", test.labels, scores,
                                           weights=test.weights)
            logs.update(test_metrics)
        logs["seconds"] = time.perf_counter() - start
        history.append(logs)
        if callback is not None and callback(epoch, logs):
            break
    w0, w, V = solver.parameters()
    metadata: dict[str, Any] = {
        "solver": "als",
        "sweeps": done,
        "regularisation": {"linear": reg_w, "factors": reg_v,
                           "scaling": "sqrt(1 + rows holding the key)"},
        "backend": solver.backend,
        "hyperparameters": config.to_dict(),
    }
    if test_metrics:
        metadata["test_metrics"] = test_metrics
    return Artifact.from_point(w0, w, V, "regressor", metadata=metadata), history
