"""The training loop: epochs of row-sparse steps, metrics, early stopping, stop requests.

:func:`fit` trains an FM from a :class:`~fmkit.config.FMConfig` on a train channel (in
memory or streamed) and returns a :class:`TrainResult` holding the artifact, per-epoch
history and final metrics under SageMaker's names. The Bayesian solvers
(``solver='mcmc'|'als'``) are dispatched to :mod:`fmkit.bayes`.

Per epoch the trainer logs SageMaker's ``#quality_metric`` lines (train metrics are the
running metrics of the epoch's predictions, as SageMaker reports them), evaluates the
validation channel if given (early stopping keeps the best epoch), and calls callbacks.
The test channel is scored once, after training, with the final (or best) model.
Ctrl-C (KeyboardInterrupt) finishes the current batch, and the result is returned with
status ``Stopped``, as are runs cut by ``max_run_seconds`` or a callback.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from fmkit import metrics as M
from fmkit.artifact import Artifact, mask_runs
from fmkit.config import FMConfig
from fmkit.engine.loader import BatchSource, count_rows, epoch_batches, resolve_device, to_device
from fmkit.engine.optim import RowSparseOptimizer
from fmkit.engine.strategy import LocalStrategy, Strategy
from fmkit.errors import ConfigError, DataError, DivergenceError
from fmkit.model.fm import FactorizationMachine
from fmkit.model.init import init_tensor
from fmkit.model.losses import loss_and_grad, scores
from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)
# SageMaker-format metric lines (#quality_metric ...), for existing metric scrapers
quality_logger = logging.getLogger("fmkit.quality")

EVAL_BATCH = 65536


class Callback(Protocol):
    """Called after every epoch; returning True asks the trainer to stop."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None: ...


@dataclass
class TrainResult:
    """What :func:`fit` returns."""

    artifact: Artifact
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "Completed"
    best_epoch: int | None = None
    stop_reason: str | None = None


def early_stopping_metric(predictor_type: str) -> str:
    """The validation metric early stopping watches (lower is better)."""
    return "rmse" if predictor_type == "regressor" else "binary_classification_cross_entropy"


def _feature_dim(config: FMConfig, channels: Sequence[Any]) -> int:
    if config.feature_dim is not None:
        return config.feature_dim
    dims = []
    for ch in channels:
        if ch is None:
            continue
        if isinstance(ch, SparseBatch):
            dims.append(ch.width)
        elif getattr(ch, "feature_dim", None) is not None:
            dims.append(int(ch.feature_dim))
    if not dims or max(dims) == 0:
        raise ConfigError(
            "feature_dim is not set and cannot be taken from the data (a streamed channel "
            "without a stated shape); set feature_dim."
        )
    return max(dims)


def _check_channel(batch: Any, name: str, config: FMConfig, feature_dim: int) -> None:
    if batch is None or not isinstance(batch, SparseBatch):
        return
    if batch.n_rows == 0:
        raise DataError(f"the {name} channel has no rows.")
    batch.validate(
        feature_dim=feature_dim,
        predictor_type=config.predictor_type,
        require_labels=True,
        source=f"{name} channel",
    )
    if batch.feature_dim is not None and batch.feature_dim != feature_dim:
        raise DataError(
            f"the {name} channel states feature_dim={batch.feature_dim} but the model has "
            f"feature_dim={feature_dim}."
        )


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
        gen = torch.Generator().manual_seed(config.seed)
        K = config.num_factors
        if init is not None:
            if init.feature_dim != feature_dim or init.num_factors != K:
                raise ConfigError(
                    f"--init-model has feature_dim={init.feature_dim}, num_factors="
                    f"{init.num_factors}; this job has feature_dim={feature_dim}, "
                    f"num_factors={K}."
                )
            wanted = "all" if user_block is None else "user_item"
            if init.interactions != wanted:
                raise ConfigError(
                    f"--init-model was trained with interactions={init.interactions!r}; this "
                    f"job trains interactions={wanted!r}; set --interactions "
                    f"{init.interactions} to continue it."
                )
            if user_block is not None and not np.array_equal(init.user_block, user_block):
                raise ConfigError("--init-model's user block differs from this job's: the "
                                  "data's vocabulary has other user fields.")
            w0 = torch.from_numpy(init.w0.mean(0, keepdims=True).copy())
            w = torch.from_numpy(init.w.mean(0).copy())
            V = torch.from_numpy(init.V.mean(0).copy())
        else:
            w0 = init_tensor(config, "bias", (1,), gen, label_mean=label_mean)
            w = init_tensor(config, "linear", (feature_dim,), gen)
            V = init_tensor(config, "factors", (feature_dim, K), gen)
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
        self.rng = np.random.default_rng(config.seed + 1000003 * self.strategy.rank)
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

    # --------------------------------------------------------------------- one step
    def step(self, batch: SparseBatch, rescale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
    def predict_scores(self, data: SparseBatch | BatchSource) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
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

    def snapshot(self) -> tuple[torch.Tensor, ...]:
        return tuple(t.detach().clone() for t in (self.model.w0, self.model.w, self.model.V))

    def restore(self, snap: tuple[torch.Tensor, ...]) -> None:
        for t, s in zip((self.model.w0, self.model.w, self.model.V), snap):
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


def fit(
    config: FMConfig,
    train: SparseBatch | BatchSource,
    *,
    test: SparseBatch | BatchSource | None = None,
    validation: SparseBatch | BatchSource | None = None,
    callbacks: Sequence[Callback] | None = None,
    vocabulary: Any = None,
    init: Artifact | None = None,
    max_run_seconds: float | None = None,
    progress: bool = False,
    strategy: Strategy | None = None,
    groups: np.ndarray | None = None,
    host: str = "algo-1",
    fused: bool | None = None,
) -> TrainResult:
    """Train an FM and return the artifact, history and SageMaker-named metrics.

    Parameters
    ----------
    config : FMConfig
        Validated hyperparameters; ``feature_dim`` None takes it from the data.
    train : SparseBatch or BatchSource
        Labelled rows, in memory or streamed (``iter_batches(batch_size)``).
    test, validation : same types, optional
        ``test`` is scored once after training; ``validation`` after every epoch (early
        stopping watches it when ``early_stopping_patience`` > 0).
    callbacks : sequence of Callback, optional
        ``on_epoch_end(epoch, logs)``; returning True stops training (status Stopped).
    vocabulary : Vocabulary or dict, optional
        Kept in the artifact; with user and item fields the training (user, item) pairs
        are kept too, for recommendations that exclude them.
    init : Artifact, optional
        Warm start from this model's parameters (sample mean for MCMC models).
    max_run_seconds : float, optional
        Stop after this much wall time, keeping the model reached (status Stopped).
    progress : bool
        Show a progress bar per epoch (rank 0).
    strategy : Strategy, optional
        Multi-process execution (``fmkit.distributed``); a single process by default.
    groups : int array (feature_dim,), optional
        Field of every key, for the Bayesian solver's priors.
    fused : bool, optional
        Whether to use a fused step (numba on the CPU, the fused CUDA step on uniform rows)
        where it applies; None lets the trainer decide, False forces the plain torch step.
    """
    feature_dim = _feature_dim(config, [train, test, validation])
    if strategy is not None and strategy.world_size > 1 and config.feature_dim is None:
        # shards may see different largest keys; every process needs the same shape
        (dims,) = strategy.gather_rows([np.array([feature_dim], np.int64)])
        feature_dim = int(dims.max())  # type: ignore[union-attr]
    config = config if config.feature_dim == feature_dim else config.replace(feature_dim=feature_dim)
    for name, ch in (("train", train), ("test", test), ("validation", validation)):
        _check_channel(ch, name, config, feature_dim)
    vocab = _as_vocabulary(vocabulary)
    if config.interactions == "auto" and init is not None:  # continue the model's kind
        config = config.replace(interactions=init.interactions)
    config, user_block = resolve_interactions(config, vocab, feature_dim)
    if config.solver != "sgd":
        return _fit_bayes(config, train, test=test, callbacks=callbacks,
                          vocab=vocab, groups=groups, user_block=user_block)
    strategy = strategy or LocalStrategy()
    label_mean = None
    if isinstance(train, SparseBatch) and train.labels is not None:
        label_mean = float(np.average(train.labels, weights=train.weights))
        if strategy.world_size > 1:  # the mean over every process's shard
            wsum = float(train.n_rows if train.weights is None else np.sum(train.weights))
            total = strategy.all_reduce_sum(
                torch.tensor([label_mean * wsum, wsum], dtype=torch.float64))
            label_mean = float(total[0] / total[1]) if float(total[1]) > 0 else label_mean
    trainer = Trainer(config, feature_dim, strategy=strategy, init=init, label_mean=label_mean,
                      fused=fused, user_block=user_block)
    main = strategy.is_main
    if main:
        logger.info("merged configuration: %s", config.to_dict())
    history: list[dict[str, float]] = []
    status, stop_reason = "Completed", None
    best: tuple[float, int, tuple[torch.Tensor, ...]] | None = None
    patience = config.early_stopping_patience if validation is not None else 0
    es_name = f"validation:{early_stopping_metric(config.predictor_type)}"
    n_rows = count_rows(train)
    started = time.perf_counter()
    rows_total = 0
    last_epoch = -1
    interval = config.batch_metrics_publish_interval
    from tqdm import tqdm
    try:  # Ctrl-C anywhere in the loop keeps the parameters reached (a consistent model)
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            ys, ts, ws = [], [], []
            bar = (tqdm(total=n_rows, desc=f"epoch {epoch + 1}/{config.epochs}", unit="rows",
                        leave=False, dynamic_ncols=True)
                   if progress and main else None)
            epoch_rows = 0
            try:
                sync = _StepSync(strategy, epoch, feature_dim)
                for b, (batch, global_rows) in enumerate(sync.batches(
                        epoch_batches(train, config.mini_batch_size, shuffle=config.shuffle,
                                      rng=trainer.rng),
                        stop=lambda: max_run_seconds is not None
                        and time.perf_counter() - started > max_run_seconds)):
                    y, loss = trainer.step(batch, rescale=1.0 / global_rows)
                    sync.check_finite(loss, b)
                    if batch.n_rows:
                        ys.append(y.cpu().numpy())
                        ts.append(batch.labels)
                        ws.append(batch.weights)
                    rows_total += global_rows
                    epoch_rows += global_rows
                    if bar is not None:
                        bar.update(batch.n_rows)
                    if main and batch.n_rows and (b == 0 or (interval and b % interval == 0)):
                        _log_batch(config, host, epoch, b, ys[-1], batch.labels)
                if sync.stopped:
                    status, stop_reason = "Stopped", f"max_run_seconds={max_run_seconds:g} reached"
            finally:
                if bar is not None:
                    bar.close()
            if epoch_rows == 0:
                break
            seconds = time.perf_counter() - t0
            y_all = np.concatenate(ys) if ys else np.zeros(0, np.float32)
            t_all = np.concatenate(ts) if ts else np.zeros(0, np.float32)
            w_all = None if any(w is None for w in ws) else (
                np.concatenate(ws) if ws else np.zeros(0, np.float32))
            y_all, t_all, w_all = strategy.gather_rows([y_all, t_all, w_all])
            s_all = _scores(config, y_all)
            logs: dict[str, float] = {"epoch": float(epoch)}
            logs.update(M.compute_metrics(config.predictor_type, t_all, s_all,
                                          weights=w_all, prefix="train"))
            rows = float(epoch_rows)
            logs["rows_per_s"] = rows / seconds if seconds > 0 else float("nan")
            logs["seconds"] = seconds
            if validation is not None:
                logs.update(trainer.evaluate(validation, "validation"))
            last_epoch = epoch
            history.append(logs)
            if main:
                _log_epoch(config, host, epoch, logs)
            if patience and es_name in logs:
                value = logs[es_name]
                if best is None or value < best[0]:
                    best = (value, epoch, trainer.snapshot())
                elif epoch - best[1] >= patience:
                    status, stop_reason = "Completed", f"early stopping at epoch {epoch}"
                    if main:
                        logger.info("early stopping: %s has not improved for %d epochs; keeping "
                                    "epoch %d", es_name, patience, best[1])
                    break
            stop = False
            for cb in callbacks or ():
                stop = bool(cb.on_epoch_end(epoch, dict(logs))) or stop
            if strategy.world_size > 1:  # every process must leave the loop at the same epoch
                stop = bool(strategy.all_reduce_sum(torch.tensor([float(stop)])).item() > 0)
            if status == "Stopped":
                break
            if stop:
                status, stop_reason = "Stopped", "stopped by a callback"
                break
    except KeyboardInterrupt:
        status, stop_reason = "Stopped", "interrupted (Ctrl-C)"
    if last_epoch < 0 and status == "Stopped":
        logger.warning("stopped before the first epoch finished; keeping the parameters reached")
    best_epoch = last_epoch
    if best is not None:
        trainer.restore(best[2])
        best_epoch = best[1]
    elapsed = time.perf_counter() - started
    final: dict[str, float] = {}
    if history:
        final.update({k: v for k, v in history[best_epoch if best is not None else -1].items()
                      if k.startswith(("train:", "validation:"))})
    if main and history:
        for line in M.quality_metric_lines(
                {k: v for k, v in final.items() if k.startswith("train:")}, host=host):
            quality_logger.info(line)
        quality_logger.info("#throughput_metric: host=%s, train throughput=%.2f records/second",
                    host, rows_total / elapsed if elapsed > 0 else float("nan"))
    if test is not None:
        test_metrics = trainer.evaluate(test, "test")
        final.update(test_metrics)
        if main:
            primary = "rmse" if config.predictor_type == "regressor" else \
                "binary_classification_accuracy"
            quality_logger.info("#test_score (%s) : ('%s', %r)", host, primary,
                                test_metrics[f"test:{primary}"])
            for line in M.quality_metric_lines(test_metrics, host=host):
                quality_logger.info(line)
    metadata = {
        "hyperparameters": config.to_dict(),
        "solver": "sgd",
        "epochs_run": last_epoch + 1,
        "best_epoch": best_epoch,
        "status": status,
        "history": history,
        "metrics": final,
    }
    artifact = trainer.to_artifact(metadata)
    _attach_vocabulary(artifact, vocab, train, strategy)
    return TrainResult(artifact, history, final, status, best_epoch, stop_reason)


def _as_vocabulary(vocabulary: Any) -> Any:
    """The ``vocabulary`` argument of :func:`fit` (a Vocabulary, its dict or None) as a
    Vocabulary or None."""
    from fmkit.features.vocabulary import Vocabulary

    if vocabulary is None or isinstance(vocabulary, Vocabulary):
        return vocabulary
    return Vocabulary.from_dict(vocabulary)


def resolve_interactions(config: FMConfig, vocab: Any, feature_dim: int
                         ) -> tuple[FMConfig, np.ndarray | None]:
    """Settle ``interactions`` for a job: return the config with ``'all'`` or ``'user_item'``
    and, for ``'user_item'``, the user block (F,) bool from the vocabulary's ``user`` fields.

    ``'auto'`` (fmkit's default) is ``'user_item'`` when the vocabulary splits the keys into
    user and item fields and either side has more than its one-hot id field (side features,
    implicit feedback), for the SGD solver and the CPU Gibbs sampler; otherwise ``'all'``.
    With only a user id and an item id per row the two models are the same, and ``'all'``
    keeps the fused steps and SageMaker export.
    """
    if config.interactions == "all":
        return config, None
    roles = [] if vocab is None else [f.role for f in vocab.fields]
    if config.interactions == "auto":
        solver_has_it = config.solver == "sgd" or (config.solver == "mcmc"
                                                   and config.device != "cuda")
        split = solver_has_it and set(roles) == {"user", "item"} and len(roles) > 2
        if not split:
            return config.replace(interactions="all"), None
    if vocab is None or "user" not in roles or not set(roles) - {"user"}:
        raise ConfigError("interactions='user_item' needs the user block: train on data "
                          "whose vocabulary (written by `fmkit prepare`) has fields with "
                          "role 'user' and 'item'.")
    user = vocab.role_mask("user")[:feature_dim]
    mask = np.zeros(feature_dim, bool)  # keys past the vocabulary's are in the item block
    mask[: user.shape[0]] = user
    return config.replace(interactions="user_item"), mask


def _attach_vocabulary(artifact: Artifact, vocab: Any, train: Any,
                       strategy: Strategy | None = None) -> None:
    """Keep the vocabulary (a Vocabulary, or None) and the training pairs in the model."""
    if vocab is None:
        return
    artifact.vocabulary = vocab.to_dict()
    if isinstance(train, SparseBatch):
        seen = vocab.seen_pairs(train.indices, train.offsets)
        if seen is not None and strategy is not None and strategy.world_size > 1:
            # each process saw its own shard: the model keeps the pairs of all of them
            import scipy.sparse as sp

            coo = seen.tocoo()
            users, items = strategy.gather_rows([coo.row.astype(np.int64),
                                                 coo.col.astype(np.int64)])
            assert users is not None and items is not None
            seen = sp.csr_matrix((np.ones(users.shape[0], np.float32), (users, items)),
                                 shape=seen.shape)
            seen.sum_duplicates()
            seen.data[:] = 1.0
        artifact.seen = seen


def _fit_bayes(config: FMConfig, train: Any, *, test: Any, callbacks: Any, vocab: Any,
               groups: np.ndarray | None, user_block: np.ndarray | None) -> TrainResult:
    """Run the MCMC or ALS solver (in-memory data only) and wrap its result."""
    if not isinstance(train, SparseBatch) or (test is not None and not isinstance(test, SparseBatch)):
        raise ConfigError(f"solver {config.solver!r} needs the data in memory; drop --stream.")
    from fmkit import bayes

    if groups is None and vocab is not None:
        groups = vocab.groups()

    def callback(epoch: int, logs: dict[str, float]) -> bool:
        stop = False
        for cb in callbacks or ():
            stop = bool(cb.on_epoch_end(epoch, dict(logs))) or stop
        return stop

    if config.solver == "mcmc":
        artifact, history = bayes.fit_mcmc(config, train, groups=groups, test=test,
                                           callback=callback, user_block=user_block)
    else:
        artifact, history = bayes.fit_als(config, train, test=test, callback=callback)
    from fmkit.inference.predictor import Predictor

    # the solvers report the metrics of the model they return (test: exactly as Predictor
    # scores it; MCMC train: the sampler's posterior mean), so the rows are not scored again
    # with every kept sample (S x nnz x K, a minute with implicit feedback)
    meta = artifact.metadata
    final = dict(meta.get("train_metrics") or M.compute_metrics(
        config.predictor_type, train.labels, Predictor(artifact).predict_scores(train),
        weights=train.weights, prefix="train"))
    if test is not None:
        final.update(meta.get("test_metrics") or M.compute_metrics(
            config.predictor_type, test.labels, Predictor(artifact).predict_scores(test),
            weights=test.weights))
        for line in M.quality_metric_lines({k: v for k, v in final.items()
                                            if k.startswith("test:")}):
            quality_logger.info(line)
    artifact.metadata.update({"hyperparameters": config.to_dict(), "history": history,
                              "metrics": final, "status": "Completed"})
    _attach_vocabulary(artifact, vocab, train)
    return TrainResult(artifact, history, final, "Completed", len(history) - 1)


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
        raise DivergenceError(
            f"loss became NaN or infinite at epoch {self.epoch}, batch {b}; lower the "
            "learning rates (factors_lr, linear_lr, bias_lr) or set clip_gradient."
        )


def _empty_batch(feature_dim: int) -> SparseBatch:
    return SparseBatch.from_arrays(np.zeros(0, np.int64), np.zeros(1, np.int64),
                                   np.zeros(0, np.float32), np.zeros(0, np.float32),
                                   feature_dim=feature_dim)


def _scores(config: FMConfig, y: np.ndarray) -> np.ndarray:
    """Scores of raw outputs: themselves for regressors, the predictor's overflow-free
    sigmoid for classifiers."""
    from fmkit.inference.predictor import apply_link

    return y if config.predictor_type == "regressor" else apply_link("logit", y)


def _log_batch(config: FMConfig, host: str, epoch: int, b: int, y: np.ndarray, t: np.ndarray) -> None:
    metrics = M.compute_metrics(config.predictor_type, t, _scores(config, y), prefix="train")
    metrics.pop("train:auc", None)
    for line in M.quality_metric_lines(metrics, host=host, epoch=epoch, batch=b):
        quality_logger.info(line)


def _log_epoch(config: FMConfig, host: str, epoch: int, logs: dict[str, float]) -> None:
    for line in M.quality_metric_lines(
            {k: v for k, v in logs.items() if k.startswith("train:")}, host=host, epoch=epoch):
        quality_logger.info(line)
    pct = 100.0 * (epoch + 1) / config.epochs
    quality_logger.info("#progress_metric: host=%s, completed %.1f %% of epochs", host, pct)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in logs.items()
                      if k.startswith(("train:", "validation:")) and not math.isnan(v))
    logger.info("epoch %d/%d: %s, %.0f rows/s", epoch + 1, config.epochs, shown,
                logs.get("rows_per_s", float("nan")))
