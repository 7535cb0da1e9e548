"""fit_mcmc: Bayesian FM by Gibbs sampling, with kept posterior samples and test metrics.

Regressors use a Gaussian likelihood with a sampled noise precision; binary classifiers
a probit likelihood (latent targets, :mod:`fmkit.bayes.likelihood`). Sweeps, burn-in,
thinning and what is reported are described in :func:`fit_mcmc` and docs/bayesian.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.artifact import Artifact, group_runs, mask_runs
from fmkit.bayes.groups import check_groups
from fmkit.bayes.kernels import BACKENDS, default_backend
from fmkit.bayes.priors import Hyperpriors
from fmkit.bayes.relations import find_relations
from fmkit.bayes.sampler import CoordinateSampler
from fmkit.bayes.settings import init_sigma
from fmkit.bayes.torch_sampler import TorchSampler
from fmkit.bayes.user_item import UserItemSampler
from fmkit.config import FMConfig
from fmkit.errors import ConfigError, DataError, DivergenceError
from fmkit.inference.links import apply_link
from fmkit.inference.predictor import fm_outputs, user_item_outputs
from fmkit.metrics import compute_metrics
from fmkit.sparse import SparseBatch
from fmkit.threads import in_parts

logger = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, Any]], "bool | None"]

# burn-in defaults measured on MovieLens 100K ua, rank 8, 200 sweeps, 3 seeds: the Gaussian
# chain is best averaged from sweep 20 on (RMSE 0.9146 vs 0.9155 from sweep 50); the probit
# chain mixes slower (latent targets) and is best from sweep 50 (AUC 0.7782 vs 0.7776)
DEFAULT_BURN_IN = {"regressor": (20, 10), "binary_classifier": (50, 4)}  # (cap, divisor)
DEFAULT_KEEP_CAP = 100
KEEP_BYTES_CAP = 1 << 28  # default thinning keeps the samples under 256 MiB


def default_burn_in(sweeps: int, predictor_type: str = "regressor") -> int:
    """Return fmkit's burn-in: regressor a tenth of the sweeps, at most 20; binary a
    quarter, at most 50."""
    cap, divisor = DEFAULT_BURN_IN[predictor_type]
    return min(cap, sweeps // divisor)


def kept_sweeps(sweeps: int, burn_in: int, keep: int | None, feature_dim: int,
                num_factors: int) -> list[int]:
    """Return the 1-based sweep numbers whose samples are kept, evenly spaced, last included.

    ``keep=None`` keeps every sweep after burn-in, thinned to at most 100 samples and to
    under 256 MiB of float32 weights.
    """
    post = sweeps - burn_in
    if keep is None:
        per_sample = 4 * feature_dim * (num_factors + 1)
        keep = max(1, min(DEFAULT_KEEP_CAP, KEEP_BYTES_CAP // max(per_sample, 1)))
    n = min(keep, post)
    return [burn_in + ((j + 1) * post) // n for j in range(n)]


class _TestScorer:
    """Running mean of link(y_s) on the test rows, computed exactly as Predictor does."""

    def __init__(self, test: SparseBatch, feature_dim: int, link: str,
                 user_block: npt.NDArray[np.bool_] | None = None) -> None:
        self.csr = sp.csr_matrix(test.to_csr(feature_dim), dtype=np.float32)
        self.user_block = user_block
        self.csr2 = None if user_block is not None else self.csr.multiply(self.csr).tocsr()
        self.link = link
        self.total: npt.NDArray[np.float64] | None = None
        self.count = 0

    def _outputs(self, w0: np.float32, w: Any, V: Any) -> npt.NDArray[np.float64]:
        if self.user_block is not None:
            return user_item_outputs(self.csr, w0, w, V, self.user_block)
        return fm_outputs(self.csr, self.csr2, w0, w, V, V * V)

    def current(self, w0: np.float32, w: Any, V: Any) -> npt.NDArray[np.float32]:
        """Return the scores of one sample alone."""
        return apply_link(self.link, self._outputs(w0, w, V)).astype(np.float32)

    def add(self, w0: np.float32, w: Any, V: Any) -> npt.NDArray[np.float32]:
        """Add a kept sample; return the mean score over the kept samples so far."""
        y = apply_link(self.link, self._outputs(w0, w, V))
        self.total = y.copy() if self.total is None else self.total + y
        self.count += 1
        return self.mean()

    def mean(self) -> npt.NDArray[np.float32]:
        assert self.total is not None
        return (self.total / self.count).astype(np.float32)


def _add_scores(total: npt.NDArray[np.float64], link: str, y: npt.NDArray[np.float64]
                ) -> None:
    """``total += link(y)``, element-wise in parts on threads (probit's ndtr is slow)."""
    in_parts(y.shape[0], lambda a, b: total[a:b].__iadd__(apply_link(link, y[a:b])))


def _torch_device(device: str) -> str:
    """Resolve config.device for the torch backend ('auto': CUDA when available)."""
    try:
        import torch
    except ImportError:
        raise ConfigError("backend 'torch' (device='cuda') needs torch: "
                          "pip install 'fmkit[train]'.") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch sees no CUDA device; use device='cpu'.")
    return device


def _check_user_block(user_block: Any, feature_dim: int, backend: str | None,
                      device: str) -> npt.NDArray[np.bool_]:
    if backend not in (None, "numba") or device == "cuda":
        raise ConfigError("interactions='user_item' samples on the CPU (numba backend) only; "
                          f"got backend {backend!r}, device {device!r}.")
    if user_block is None:
        raise ConfigError("interactions='user_item' needs the user block: train on data "
                          "whose vocabulary (written by `fmkit prepare`) has fields with "
                          "role 'user' and 'item'.")
    mask = np.asarray(user_block, bool)
    if mask.shape != (feature_dim,):
        raise DataError(f"user_block must have one entry per key ({feature_dim}); got shape "
                        f"{mask.shape}.")
    if mask.all() or not mask.any():
        raise DataError("interactions='user_item' needs keys in both the user and the item "
                        f"block; the user block holds {int(mask.sum())} of {feature_dim} keys.")
    return mask


def _check_inputs(config: FMConfig, train: SparseBatch, test: SparseBatch | None
                  ) -> tuple[int, int]:
    if config.predictor_type not in ("regressor", "binary_classifier"):
        raise ConfigError(f"predictor_type must be 'binary_classifier' or 'regressor'; got "
                          f"{config.predictor_type!r}.")
    feature_dim = config.feature_dim or train.width
    if feature_dim < 1:
        raise DataError("train: no features (feature_dim is 0); check the input files.")
    train.validate(feature_dim=feature_dim, predictor_type=config.predictor_type,
                   require_labels=True, source="train")
    if train.n_rows == 0:
        raise DataError("train: no rows.")
    if test is not None:
        test.validate(feature_dim=feature_dim, predictor_type=config.predictor_type,
                      require_labels=True, source="test")
    sweeps = config.epochs
    burn_in = (default_burn_in(sweeps, config.predictor_type) if config.burn_in is None
               else config.burn_in)
    if burn_in >= sweeps:
        raise ConfigError(f"burn_in must be smaller than epochs (the number of sweeps); got "
                          f"burn_in={burn_in}, epochs={sweeps}. Raise epochs or lower burn_in.")
    return feature_dim, burn_in


def fit_mcmc(
    config: FMConfig,
    train: SparseBatch,
    *,
    groups: npt.NDArray[np.int64] | None = None,
    test: SparseBatch | None = None,
    callback: Callback | None = None,
    backend: str | None = None,
    prior: Hyperpriors | None = None,
    user_block: npt.NDArray[np.bool_] | None = None,
) -> tuple[Artifact, list[dict[str, Any]]]:
    """Fit a Bayesian FM by Gibbs sampling; return the kept samples and per-sweep history.

    Parameters
    ----------
    config : FMConfig
        ``predictor_type`` ('regressor': Gaussian likelihood; 'binary_classifier': probit),
        ``num_factors`` (K), ``epochs`` (sweeps), ``burn_in`` (None: regressor a tenth
        of the sweeps, at most 20; binary_classifier a quarter, at most 50),
        ``keep_samples`` (None: every sample after burn-in, thinned
        evenly to at most 100 and under 256 MiB), ``seed``, ``factors_init_sigma`` (initial
        factors ~ N(0, sigma^2); a generic SGD default is replaced by 0.1),
        ``feature_dim`` (None: from the data).
    train : SparseBatch
        Rows with labels (0/1 for binary_classifier); ``weights`` act as per-row
        precision multipliers.
    groups : int array (F,), optional
        Prior group of every key (:meth:`Vocabulary.groups`, :func:`read_groups`); shorter
        arrays are padded with one extra group. None: one group.
    test : SparseBatch, optional
        Scored after every sweep: the running posterior mean over the kept samples after
        burn-in (during burn-in, the current sample).
    callback : callable(epoch, logs) -> bool or None, optional
        Called after each sweep with that sweep's history entry; True stops sampling.
    backend : {'numba', 'numpy', 'torch'}, optional
        Kernel implementation: numba when installed, else numpy; 'torch' (chosen by
        default when ``config.device == 'cuda'``) runs the sweep on ``config.device``
        ('auto': CUDA when available).
    prior : Hyperpriors, optional
        Hyperprior constants (libFM's defaults).
    user_block : bool array (F,), optional
        With ``config.interactions == 'user_item'`` (required then): the keys of the user
        block; pairs run only between it and the other keys
        (:mod:`fmkit.bayes.user_item`, numba backend).

    Returns
    -------
    artifact : Artifact
        ``w0`` (S,), ``w`` (S, F), ``V`` (S, F, K) float32: the kept samples (the current
        sample when stopped before any was kept); link 'identity' or 'probit';
        metadata ``solver``, ``burn_in``, ``sweeps``, ``kept_sweeps``, ``groups``
        (``[[group, start, stop], ...]`` runs), ``test_metrics`` when ``test`` is given,
        and for user_item models ``interactions`` and ``user_block`` (key runs).
    history : list of dict
        One entry per sweep: ``epoch`` (1-based), ``seconds`` (that sweep's wall time,
        scoring included), ``train:rmse`` (regressor, current sample), ``test:<metric>``.

    Raises
    ------
    ConfigError
        ``burn_in >= epochs``, unknown backend; user_item without ``user_block`` or on a
        backend other than numba.
    DataError
        Missing or invalid labels, keys out of range, bad ``groups``.
    """
    feature_dim, burn_in = _check_inputs(config, train, test)
    if backend is not None and backend not in (*BACKENDS, "torch"):
        raise ConfigError(f"backend must be one of {', '.join((*BACKENDS, 'torch'))}; got "
                          f"{backend!r}.")
    user_item = config.interactions == "user_item"
    if user_item:
        user_block = _check_user_block(user_block, feature_dim, backend, config.device)
    elif backend is None and config.device == "cuda":
        backend = "torch"
    sweeps, K = config.epochs, config.num_factors
    binary = config.predictor_type == "binary_classifier"
    link = "probit" if binary else "identity"
    group_ids = check_groups(np.zeros(feature_dim, np.int64) if groups is None else groups,
                             feature_dim)
    keep_at = kept_sweeps(sweeps, burn_in, config.keep_samples, feature_dim, K)
    keep_set = set(keep_at)

    rng = np.random.default_rng(config.seed)
    weights = None if train.weights is None else train.weights.astype(np.float64)
    csr = train.to_csr(feature_dim)
    if not csr.has_canonical_format:  # find_relations reads sorted rows
        csr = csr.copy()
        csr.sum_duplicates()
    args = (csr, train.labels.astype(np.float64),  # type: ignore[union-attr]
            group_ids, K, rng)
    kw: dict[str, Any] = {"likelihood": "probit" if binary else "gaussian", "mode": "gibbs",
                          "init_sigma": init_sigma(config), "prior": prior,
                          "row_weights": weights}
    sampler: CoordinateSampler | UserItemSampler
    if user_item:
        del kw["mode"]
        sampler = UserItemSampler(*args, user_block=user_block, **kw)
    elif backend == "torch":
        sampler = TorchSampler(*args, device=_torch_device(config.device), **kw)
    else:
        if (backend or default_backend()) == "numba":
            kw["relations"] = find_relations(csr, group_ids)
        sampler = CoordinateSampler(*args, backend=backend, **kw)
    scorer = None if test is None else _TestScorer(test, feature_dim, link,
                                                    user_block if user_item else None)
    w0s: list[np.float32] = []
    ws: list[npt.NDArray[np.float32]] = []
    Vs: list[npt.NDArray[np.float32]] = []
    history: list[dict[str, Any]] = []
    test_metrics: dict[str, float] = {}
    train_sum = np.zeros(train.n_rows)  # link(outputs) summed over the kept samples
    train_count = 0
    done = 0
    for epoch in range(1, sweeps + 1):
        start = time.perf_counter()
        sampler.sweep()
        done = epoch
        residuals = sampler.residuals()
        if not np.isfinite(sampler.w0) or not np.all(np.isfinite(residuals)):
            raise DivergenceError(f"the sampler produced NaN or infinity at sweep {epoch}; "
                                  "check the labels' scale or lower factors_init_sigma.")
        logs: dict[str, Any] = {"epoch": epoch}
        if not binary:
            logs["train:rmse"] = float(np.sqrt(np.mean(residuals * residuals)))
        kept = epoch in keep_set
        if kept or scorer is not None:
            cur_w0, cur_w, cur_Vt = sampler.snapshot()
            w0 = np.float32(cur_w0)
            w = cur_w.astype(np.float32)
            V = np.ascontiguousarray(cur_Vt.T, dtype=np.float32)
            if kept:
                _add_scores(train_sum, link, sampler.outputs())
                train_count += 1
                w0s.append(w0)
                ws.append(w)
                Vs.append(V)
            if scorer is not None and test is not None:
                if kept:
                    scores = scorer.add(w0, w, V)
                elif scorer.count:
                    scores = scorer.mean()
                else:
                    scores = scorer.current(w0, w, V)
                test_metrics = compute_metrics(config.predictor_type, test.labels, scores,
                                               weights=test.weights)
                logs.update(test_metrics)
        logs["seconds"] = time.perf_counter() - start
        history.append(logs)
        if callback is not None and callback(epoch, logs):
            logger.info("sampling stopped by the callback after sweep %d", epoch)
            break

    if not w0s:  # stopped during burn-in: keep the current sample
        cur_w0, cur_w, cur_Vt = sampler.snapshot()
        w0s = [np.float32(cur_w0)]
        ws = [cur_w.astype(np.float32)]
        Vs = [np.ascontiguousarray(cur_Vt.T, dtype=np.float32)]
        keep_at = [done]
        if scorer is not None and test is not None:
            scores = scorer.current(w0s[0], ws[0], Vs[0])
            test_metrics = compute_metrics(config.predictor_type, test.labels, scores,
                                           weights=test.weights)
    metadata: dict[str, Any] = {
        "solver": "mcmc",
        "sweeps": done,
        "burn_in": burn_in,
        "kept_sweeps": [k for k in keep_at if k <= done],
        "groups": group_runs(group_ids),
        "backend": "torch" if backend == "torch" else sampler.backend,
        "relations": [[u.start, u.stop] for u in sampler.relations],
        "hyperparameters": config.to_dict(),
    }
    if user_item:
        assert user_block is not None
        metadata.update(interactions="user_item", user_block=mask_runs(user_block))
    if train_count:  # the posterior mean on the training rows, from the sampler's outputs
        metadata["train_metrics"] = compute_metrics(
            config.predictor_type, train.labels, train_sum / train_count,
            weights=train.weights, prefix="train")
    if test_metrics:
        metadata["test_metrics"] = test_metrics
    artifact = Artifact(
        np.asarray(w0s, np.float32),
        np.stack(ws).astype(np.float32, copy=False),
        np.stack(Vs).astype(np.float32, copy=False),
        config.predictor_type,
        link,
        metadata,
    )
    return artifact, history
