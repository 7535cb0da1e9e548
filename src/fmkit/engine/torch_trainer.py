"""The torch trainer: the FM as torch tensors, one row-sparse step per batch.

:func:`fmkit.engine.trainer.fit` takes it where torch is needed: CUDA (with the fused step
of :mod:`fmkit.engine.fused` for uniform rows), several processes (``torch.distributed``,
:mod:`fmkit.distributed`), CPU without numba, and ``fit(..., fused=False)`` (the plain torch
step, the reference the kernel tests compare with). On the CPU in one process it still
steps through the numba kernel (:mod:`fmkit.engine.cpu_kernel`) unless ``fused=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fmkit import metrics as M
from fmkit.artifact import Artifact, mask_runs
from fmkit.config import FMConfig
from fmkit.engine.epoch import EVAL_BATCH, BatchLog, EpochOutput, divergence_error
from fmkit.engine.loader import BatchSource, epoch_batches, resolve_device, to_device
from fmkit.engine.optim import RowSparseOptimizer
from fmkit.engine.params import initial_parameters
from fmkit.engine.strategy import LocalStrategy, Strategy
from fmkit.model.fm import FactorizationMachine
from fmkit.model.losses import loss_and_grad, scores
from fmkit.sparse import SparseBatch


class Trainer:
    """Holds the model, optimiser and device for one run; :func:`fit` is the entry point."""

    def __init__(
        self,
        config: FMConfig,
        feature_dim: int,
        *,
        strategy: Strategy | None = None,
        init: Artifact | None = None,
        label_mean: float | None = None,
        fused: bool | None = None,
        user_block: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.feature_dim = feature_dim
        self.strategy = strategy or LocalStrategy()
        self.device = resolve_device(config.device)
        self.strategy.setup(feature_dim, self.device)
        w0, w, V = (torch.from_numpy(a) for a in initial_parameters(
            config, feature_dim, init=init, label_mean=label_mean, user_block=user_block))
        # every process starts from rank 0's parameters
        w0, w, V = (self.strategy.broadcast(t.to(self.device)) for t in (w0, w, V))
        self.model = FactorizationMachine(
            w0, w, V, use_bias=config.use_bias, use_linear=config.use_linear,
            user_block=None if user_block is None else torch.from_numpy(
                np.asarray(user_block, np.float32)).to(self.device),
        )
        params = {"factors": self.model.V}
        if config.use_bias:
            params["bias"] = self.model.w0
        if config.use_linear:
            params["linear"] = self.model.w
        self.optimizer = RowSparseOptimizer(params, config)
        # processes of one job shuffle their own shards with their own streams; with
        # replicated data all draw the one-process shuffle
        self.replicated = bool(getattr(self.strategy, "replicated", False))
        offset = 0 if self.replicated else 1000003 * self.strategy.rank
        self.rng = np.random.default_rng(config.seed + offset)
        # uniform one-hot rows on CUDA take the fused step (engine/fused.py; ordinary FMs
        # only); same updates
        from fmkit.engine.fused import TrainerFastPath

        self.fast_path = TrainerFastPath.create(
            config, self.model, self.optimizer, world_size=self.strategy.world_size,
            force=False if user_block is not None else fused)
        # on the CPU, one process: the fused numba step (engine/cpu_kernel.py); same updates
        self.cpu_kernel = None
        if self.fast_path is None and fused is not False:
            from fmkit.engine.cpu_kernel import CpuKernelPath

            self.cpu_kernel = CpuKernelPath.create(config, self.model, self.optimizer,
                                                   device=self.device,
                                                   world_size=self.strategy.world_size)

    @property
    def rank(self) -> int:
        return self.strategy.rank

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    # --------------------------------------------------------------------- one step
    def step(self, batch: SparseBatch, rescale: float | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on one mini-batch; return (logits, per-row loss) for running metrics."""
        # the fused steps take the batch mean: only when no other rescale is asked for
        if rescale is None or abs(rescale * batch.n_rows - 1.0) < 1e-9:
            if self.fast_path is not None:
                out = self.fast_path.step(batch, self.device)
                if out is not None:
                    return out
            if self.cpu_kernel is not None:
                return self.cpu_kernel.step(batch)
        cfg = self.config
        db = to_device(batch, self.device)
        y, xv, s = self.model.forward(db)
        loss, dy = loss_and_grad(cfg.predictor_type, y, db.labels)  # type: ignore[arg-type]
        if db.weights is not None:
            dy = dy * db.weights
        scale = cfg.rescale_grad if cfg.rescale_grad is not None else (
            rescale if rescale is not None else 1.0 / max(batch.n_rows, 1))
        dy = dy * scale
        gw0, gw, gV = self.model.entry_gradients(db, dy, xv, s)
        keys, sw, sV, gw0 = self.strategy.reduce_gradients(db.indices, gw, gV, gw0)
        opt = self.optimizer
        opt.begin_step()
        if "bias" in opt.params:
            opt.update("bias", None, gw0)
        if "linear" in opt.params:
            opt.update("linear", keys, sw)
        opt.update("factors", keys, sV)
        return y.detach(), loss.detach()

    # --------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict_scores(self, data: SparseBatch | BatchSource
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return (scores, labels, weights) of a channel under the current model."""
        out, labels, weights = [], [], []
        chunks = ([data.slice(i, i + EVAL_BATCH) for i in range(0, data.n_rows, EVAL_BATCH)]
                  if isinstance(data, SparseBatch) else data.iter_batches(EVAL_BATCH))
        for chunk in chunks:
            db = to_device(chunk, self.device)
            y = self.model.predict(db)
            out.append(scores(self.config.predictor_type, y).cpu().numpy())
            labels.append(chunk.labels)
            weights.append(chunk.weights)
        if not out:  # an empty shard of a multi-process job
            return np.zeros(0, np.float32), np.zeros(0, np.float32), None
        w = None if any(x is None for x in weights) else np.concatenate(weights)
        return np.concatenate(out), np.concatenate(labels), w

    def evaluate(self, data: SparseBatch | BatchSource, prefix: str) -> dict[str, float]:
        """Score ``data`` (this process's shard) and return metrics over all processes."""
        s, t, w = self.predict_scores(data)
        s, t, w = self.strategy.gather_rows([s, t, w])
        return M.compute_metrics(self.config.predictor_type, t, s, weights=w, prefix=prefix)

    # --------------------------------------------------------------------- one epoch
    def train_epoch(self, train: SparseBatch | BatchSource, epoch: int, *, batch_size: int,
                    stop: Callable[[], bool], on_rows: Callable[[int], None] | None = None,
                    log_batch: BatchLog | None = None, log_every: int = 0) -> EpochOutput:
        """Train one epoch, one step per batch, in step with the other processes; return
        this process's running logits (the rows count is over all processes)."""
        ys: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        ws: list[np.ndarray | None] = []
        rows = 0
        sync = _StepSync(self.strategy, epoch, self.feature_dim)
        if self.replicated and isinstance(train, SparseBatch):
            source = _shares_of_global_batches(train, self.config.mini_batch_size,
                                               shuffle=self.config.shuffle, rng=self.rng,
                                               rank=self.rank, world_size=self.world_size)
        else:
            source = epoch_batches(train, batch_size, shuffle=self.config.shuffle,
                                   rng=self.rng)
        for b, (batch, global_rows) in enumerate(sync.batches(source, stop=stop)):
            y, loss = self.step(batch, rescale=1.0 / global_rows)
            sync.check_finite(loss, b)
            if batch.n_rows:
                ys.append(y.cpu().numpy())
                ts.append(batch.labels)
                ws.append(batch.weights)
            rows += global_rows
            if on_rows is not None:
                on_rows(batch.n_rows)
            if log_batch is not None and batch.n_rows and (
                    b == 0 or (log_every and b % log_every == 0)):
                log_batch(epoch, b, ys[-1], batch.labels)
        weights = None if any(w is None for w in ws) else (
            np.concatenate(ws) if ws else np.zeros(0, np.float32))
        return EpochOutput(np.concatenate(ys) if ys else np.zeros(0, np.float32),
                           np.concatenate(ts) if ts else np.zeros(0, np.float32), weights,
                           rows, sync.stopped)

    def snapshot(self) -> tuple[torch.Tensor, ...]:
        return tuple(t.detach().clone() for t in (self.model.w0, self.model.w, self.model.V))

    def restore(self, snap: tuple[torch.Tensor, ...]) -> None:
        for t, s in zip((self.model.w0, self.model.w, self.model.V), snap, strict=True):
            t.copy_(s)

    def to_artifact(self, metadata: dict[str, Any]) -> Artifact:
        if self.model.user_block is not None:
            metadata = dict(metadata, interactions="user_item",
                            user_block=mask_runs(self.model.user_block.cpu().numpy() > 0.5))
        return Artifact.from_point(
            float(self.model.w0.cpu()[0]),
            self.model.w.cpu().numpy(),
            self.model.V.cpu().numpy(),
            self.config.predictor_type,
            metadata=metadata,
        )


class _StepSync:
    """Keep the processes of a job in step: same number of steps, same stop, same rescale.

    Before every step the processes sum ``[rows, has_batch, wants_stop, diverged]``; a
    process whose shard is exhausted joins with an empty batch until every shard is, so
    collectives always pair up. A single process exchanges nothing.
    """

    def __init__(self, strategy: Strategy, epoch: int, feature_dim: int) -> None:
        self.strategy = strategy
        self.epoch = epoch
        self.feature_dim = feature_dim
        self.stopped = False
        self._diverged_at: int | None = None

    def batches(self, source: Any, stop: Any) -> Any:
        """Yield ``(local batch, global rows)`` until every process is out of rows."""
        it = iter(source)
        single = self.strategy.world_size == 1
        b = 0
        while True:
            batch = next(it, None)
            while single and batch is not None and batch.n_rows == 0:
                batch = next(it, None)
            if single:  # (check_finite raises at once in one process)
                if batch is None:
                    return
                yield batch, batch.n_rows
                if stop():
                    self.stopped = True
                    return
                continue
            flags = torch.tensor([0.0 if batch is None else float(batch.n_rows),
                                  0.0 if batch is None else 1.0, float(bool(stop())),
                                  0.0 if self._diverged_at is None else 1.0],
                                 dtype=torch.float64)
            rows, more, want, bad = self.strategy.all_reduce_sum(flags).tolist()
            if bad > 0:
                self._raise(b - 1)
            if want > 0 and b > 0:
                self.stopped = True
                return
            if more == 0:
                return
            if batch is None:
                batch = _empty_batch(self.feature_dim)
            if rows > 0:
                yield batch, int(rows)
            b += 1

    def check_finite(self, loss: torch.Tensor, b: int) -> None:
        if not bool(torch.isfinite(loss).all()):
            if self.strategy.world_size == 1:
                self._raise(b)
            self._diverged_at = b  # raised by every process at the next sync

    def _raise(self, b: int) -> None:
        raise divergence_error(self.epoch, b)


def _empty_batch(feature_dim: int) -> SparseBatch:
    return SparseBatch.from_arrays(np.zeros(0, np.int64), np.zeros(1, np.int64),
                                   np.zeros(0, np.float32), np.zeros(0, np.float32),
                                   feature_dim=feature_dim)


def _shares_of_global_batches(data: SparseBatch, global_batch: int, *, shuffle: bool,
                              rng: np.random.Generator, rank: int, world_size: int) -> Any:
    """Yield process ``rank``'s part of each global batch of an epoch over all of ``data``:
    the batches one process draws (one permutation, ``global_batch`` rows each), each cut
    into ``world_size`` near-equal row ranges in rank order."""
    n = data.n_rows
    order = rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    for start in range(0, n, global_batch):
        rows = order[start:start + global_batch]
        lo, hi = (rows.shape[0] * rank) // world_size, (rows.shape[0] * (rank + 1)) // world_size
        yield data.take(rows[lo:hi])
