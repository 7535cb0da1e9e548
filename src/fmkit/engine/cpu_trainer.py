"""The CPU trainer of one process: a numpy model stepped by the fused numba kernel.

:func:`fmkit.engine.trainer.fit` takes it for CPU training in one process when numba is
installed (the usual case: ``pip install 'fmkit[bayes]'`` or ``[all]``); it imports no
torch, so such a job does not pay torch's import (about a second). The model starts from the
same parameters as the torch trainer's (:func:`fmkit.engine.params.initial_parameters`) and
takes the same steps (:mod:`fmkit.engine.cpu_kernel`), so ``fit(..., fused=False)`` (the
torch step) reaches the same model to float32 rounding.

An in-memory epoch is stepped many batches per kernel call
(:meth:`~fmkit.engine.cpu_kernel.CpuKernelPath.step_batches`): the epoch's shuffle is one
``rng.permutation`` as before, and the kernel gathers each batch's rows itself, so the
parameters are bit for bit those of one call per batch. Streamed channels, and batches
large enough for the parallel step, go one batch per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fmkit import metrics as M
from fmkit.artifact import Artifact, mask_runs
from fmkit.config import FMConfig
from fmkit.engine.cpu_kernel import CpuKernelPath
from fmkit.engine.epoch import EVAL_BATCH, BatchLog, EpochOutput, divergence_error
from fmkit.engine.loader import epoch_batches
from fmkit.engine.params import NumpyFM, NumpyOptimizer, initial_parameters
from fmkit.sparse import SparseBatch


class CpuTrainer:
    """Holds the numpy model, optimiser state and kernel of one CPU run.

    Parameters
    ----------
    config : FMConfig
    feature_dim : int
    init : Artifact, optional
        Warm start (its sample mean).
    label_mean : float, optional
        For ``bias_init_method='mean'``.
    user_block : ndarray (F,) bool, optional
        A ``user_item`` model's user keys.
    threads : int, optional
        numba threads of the step; None chooses 1 or all by timing them.
    """

    rank = 0
    world_size = 1

    def __init__(self, config: FMConfig, feature_dim: int, *, init: Artifact | None = None,
                 label_mean: float | None = None, user_block: np.ndarray | None = None,
                 threads: int | None = None) -> None:
        self.config = config
        self.feature_dim = feature_dim
        w0, w, V = initial_parameters(config, feature_dim, init=init, label_mean=label_mean,
                                      user_block=user_block)
        self.model = NumpyFM(w0, w, V, use_bias=config.use_bias, use_linear=config.use_linear,
                             user_block=user_block)
        params = {"factors": self.model.V}
        if config.use_bias:
            params["bias"] = self.model.w0
        if config.use_linear:
            params["linear"] = self.model.w
        self.optimizer = NumpyOptimizer(params, config)
        self.rng = np.random.default_rng(config.seed)
        self.kernel = CpuKernelPath(self.model, self.optimizer, config.predictor_type,
                                    config.rescale_grad, threads=threads)
        self._canonical: tuple[int, SparseBatch] | None = None

    @staticmethod
    def applies(config: FMConfig) -> bool:
        """Whether this trainer can run ``config`` here (numba installed, a known optimizer)."""
        from fmkit.engine import cpu_kernel

        return cpu_kernel.numba is not None and config.optimizer in cpu_kernel._OPTIMIZERS

    # ------------------------------------------------------------------ training
    def train_epoch(self, train: Any, epoch: int, *, batch_size: int,
                    stop: Callable[[], bool], on_rows: Callable[[int], None] | None = None,
                    log_batch: BatchLog | None = None, log_every: int = 0) -> EpochOutput:
        """Train one epoch; return its running logits in the order trained.

        ``stop()`` is asked between kernel calls (a few milliseconds apart); ``log_batch``
        gets batch 0 and every ``log_every``-th batch.
        """
        if isinstance(train, SparseBatch):
            per_call = self.kernel.batches_per_call(train, batch_size)
            if per_call:
                return self._epoch_in_calls(self._canonical_rows(train), epoch, batch_size,
                                            per_call, stop, on_rows, log_batch, log_every)
        ys: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        ws: list[np.ndarray | None] = []
        rows = 0
        stopped = False
        b = -1
        for batch in epoch_batches(train, batch_size, shuffle=self.config.shuffle,
                                   rng=self.rng):
            if batch.n_rows == 0:
                continue
            b += 1
            y, loss = self.kernel.step(batch)
            if not np.isfinite(loss).all():
                raise divergence_error(epoch, b)
            ys.append(y)
            ts.append(batch.labels)
            ws.append(batch.weights)
            rows += batch.n_rows
            if on_rows is not None:
                on_rows(batch.n_rows)
            if log_batch is not None and (b == 0 or (log_every and b % log_every == 0)):
                log_batch(epoch, b, y, batch.labels)
            if stop():
                stopped = True
                break
        weights = None if any(w is None for w in ws) else (
            np.concatenate(ws) if ws else np.zeros(0, np.float32))
        return EpochOutput(np.concatenate(ys) if ys else np.zeros(0, np.float32),
                           np.concatenate(ts) if ts else np.zeros(0, np.float32), weights,
                           rows, stopped)

    def _canonical_rows(self, train: SparseBatch) -> SparseBatch:
        """``train`` with each row's keys sorted and repeats summed, computed once a fit
        (row by row the same as canonicalising each gathered batch)."""
        if self._canonical is None or self._canonical[0] != id(train):
            self._canonical = (id(train), train.canonical())
        return self._canonical[1]

    def _epoch_in_calls(self, data: SparseBatch, epoch: int, batch_size: int, per_call: int,
                        stop: Callable[[], bool], on_rows: Callable[[int], None] | None,
                        log_batch: BatchLog | None, log_every: int) -> EpochOutput:
        n = data.n_rows
        # the same permutation epoch_batches draws, so the same batches
        order = (self.rng.permutation(n) if self.config.shuffle
                 else np.arange(n, dtype=np.int64))
        y = np.empty(n, np.float32)
        loss = np.empty(n, np.float32)
        n_batches = -(-n // batch_size)
        b = 0
        stopped = False
        while b < n_batches:
            done, status = self.kernel.step_batches(data, order, batch_size, b,
                                                    min(n_batches, b + per_call), y, loss)
            if status == 1:
                raise divergence_error(epoch, b + done - 1)
            lo, b = b, b + done
            rows = min(n, b * batch_size)
            if on_rows is not None:
                on_rows(rows - lo * batch_size)
            if log_batch is not None:
                for k in range(lo, b):
                    if k == 0 or (log_every and k % log_every == 0):
                        s, e = k * batch_size, min(n, (k + 1) * batch_size)
                        log_batch(epoch, k, y[s:e], data.labels[order[s:e]])
            if stop():
                stopped = True
                break
        rows = min(n, b * batch_size)
        taken = order[:rows]
        return EpochOutput(y[:rows], data.labels[taken],
                           None if data.weights is None else data.weights[taken], rows,
                           stopped)

    # ------------------------------------------------------------------ evaluation
    def predict_scores(self, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return (scores, labels, weights) of a channel under the current model."""
        from fmkit.inference.predictor import Predictor

        predictor = Predictor(self._point({}))
        chunks = ([data.slice(i, i + EVAL_BATCH) for i in range(0, data.n_rows, EVAL_BATCH)]
                  if isinstance(data, SparseBatch) else data.iter_batches(EVAL_BATCH))
        out, labels, weights = [], [], []
        for chunk in chunks:
            out.append(predictor.predict_scores(chunk.with_feature_dim(self.feature_dim)))
            labels.append(chunk.labels)
            weights.append(chunk.weights)
        if not out:
            return np.zeros(0, np.float32), np.zeros(0, np.float32), None
        w = None if any(x is None for x in weights) else np.concatenate(weights)
        return np.concatenate(out), np.concatenate(labels), w

    def evaluate(self, data: Any, prefix: str) -> dict[str, float]:
        """Score ``data`` and return its metrics under ``prefix`` (SageMaker's names)."""
        s, t, w = self.predict_scores(data)
        return M.compute_metrics(self.config.predictor_type, t, s, weights=w, prefix=prefix)

    def snapshot(self) -> tuple[np.ndarray, ...]:
        return tuple(a.copy() for a in (self.model.w0, self.model.w, self.model.V))

    def restore(self, snap: tuple[np.ndarray, ...]) -> None:
        for a, s in zip((self.model.w0, self.model.w, self.model.V), snap, strict=True):
            a[...] = s

    def _point(self, metadata: dict[str, Any]) -> Artifact:
        if self.model.user_block is not None:
            metadata = dict(metadata, interactions="user_item",
                            user_block=mask_runs(self.model.user_block))
        return Artifact.from_point(float(self.model.w0[0]), self.model.w, self.model.V,
                                   self.config.predictor_type, metadata=metadata)

    def to_artifact(self, metadata: dict[str, Any]) -> Artifact:
        """The trained model as an artifact (its own copy of the parameters)."""
        art = self._point(metadata)
        art.w, art.V = art.w.copy(), art.V.copy()
        return art

