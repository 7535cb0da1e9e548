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

Two trainers do the steps: :class:`~fmkit.engine.cpu_trainer.CpuTrainer` (numpy and the
fused numba step; CPU, one process, numba installed) and
:class:`~fmkit.engine.torch_trainer.Trainer` (torch: CUDA, several processes, or
``fused=False``). This module imports neither torch nor numba until a job needs them, so
the Bayesian solvers and the CPU trainer run without torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fmkit import metrics as M
from fmkit.artifact import Artifact
from fmkit.config import FMConfig
from fmkit.engine.epoch import EVAL_BATCH, log_batch, log_epoch, quality_logger, scores_of
from fmkit.engine.loader import BatchSource, count_rows, device_kind
from fmkit.errors import ConfigError, DataError
from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

# (``Trainer``, the torch trainer, is also importable from here: see __getattr__)
__all__ = ["EVAL_BATCH", "Callback", "TrainResult", "early_stopping_metric", "fit",
           "resolve_interactions"]


def __getattr__(name: str) -> Any:
    # the torch trainer, imported (with torch) only when asked for
    if name == "Trainer":
        from fmkit.engine.torch_trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    strategy: Any = None,
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
        Its ``local_batch_size(mini_batch_size)``, when it has one, sets this process's
        rows per step (:class:`~fmkit.distributed.strategy.DistributedStrategy`: its share
        of a global batch of ``mini_batch_size``).
    groups : int array (feature_dim,), optional
        Field of every key, for the Bayesian solver's priors.
    fused : bool, optional
        Whether to use a fused step (numba on the CPU, the fused CUDA step on uniform rows)
        where it applies; None lets the trainer decide, False forces the plain torch step.
    """
    feature_dim = _feature_dim(config, [train, test, validation])
    world = 1 if strategy is None else strategy.world_size
    if world > 1 and config.feature_dim is None:
        # shards may see different largest keys; every process needs the same shape
        (dims,) = strategy.gather_rows([np.array([feature_dim], np.int64)])
        feature_dim = int(dims.max())
    if config.feature_dim != feature_dim:
        config = config.replace(feature_dim=feature_dim)
    for name, ch in (("train", train), ("test", test), ("validation", validation)):
        _check_channel(ch, name, config, feature_dim)
    vocab = _as_vocabulary(vocabulary)
    if config.interactions == "auto" and init is not None:  # continue the model's kind
        config = config.replace(interactions=init.interactions)
    config, user_block = resolve_interactions(config, vocab, feature_dim)
    if config.solver != "sgd":
        return _fit_bayes(config, train, test=test, callbacks=callbacks,
                          vocab=vocab, groups=groups, user_block=user_block)
    trainer = _make_trainer(config, feature_dim, train, strategy=strategy, init=init,
                            fused=fused, user_block=user_block)
    main = trainer.rank == 0
    if main:
        logger.info("merged configuration: %s", config.to_dict())
    started = time.perf_counter()
    run = _run_epochs(trainer, config, train, validation=validation, callbacks=callbacks,
                      max_run_seconds=max_run_seconds, progress=progress and main, host=host,
                      started=started)
    final = _final_metrics(trainer, config, run, test=test, host=host, main=main,
                           elapsed=time.perf_counter() - started)
    metadata = {
        "hyperparameters": config.to_dict(),
        "solver": "sgd",
        "epochs_run": run.last_epoch + 1,
        "best_epoch": run.best_epoch,
        "status": run.status,
        "history": run.history,
        "metrics": final,
    }
    artifact = trainer.to_artifact(metadata)
    _attach_vocabulary(artifact, vocab, train, getattr(trainer, "strategy", None))
    return TrainResult(artifact, run.history, final, run.status, run.best_epoch,
                       run.stop_reason)


def _make_trainer(config: FMConfig, feature_dim: int, train: Any, *, strategy: Any,
                  init: Artifact | None, fused: bool | None, user_block: np.ndarray | None
                  ) -> Any:
    """The CPU trainer (numpy + numba, no torch) where it applies, else the torch one.

    The CPU trainer takes CPU jobs of one process when numba is installed and ``fused`` is
    not False; everything else (CUDA, several processes, the plain torch step) goes to
    :class:`~fmkit.engine.torch_trainer.Trainer`.
    """
    world = 1 if strategy is None else strategy.world_size
    label_mean = _label_mean(train, strategy)
    if world == 1 and fused is not False and device_kind(config.device) == "cpu":
        from fmkit.engine.cpu_trainer import CpuTrainer

        if CpuTrainer.applies(config):
            return CpuTrainer(config, feature_dim, init=init, label_mean=label_mean,
                              user_block=user_block)
    from fmkit.engine.strategy import LocalStrategy
    from fmkit.engine.torch_trainer import Trainer

    return Trainer(config, feature_dim, strategy=strategy or LocalStrategy(), init=init,
                   label_mean=label_mean, fused=fused, user_block=user_block)


def _label_mean(train: Any, strategy: Any) -> float | None:
    """The training labels' (weighted) mean, over every process's shard; None for a
    stream (the ``mean`` bias init then starts at 0)."""
    if not isinstance(train, SparseBatch) or train.labels is None:
        return None
    label_mean = float(np.average(train.labels, weights=train.weights))
    if strategy is not None and strategy.world_size > 1:
        import torch

        wsum = float(train.n_rows if train.weights is None else np.sum(train.weights))
        total = strategy.all_reduce_sum(
            torch.tensor([label_mean * wsum, wsum], dtype=torch.float64))
        label_mean = float(total[0] / total[1]) if float(total[1]) > 0 else label_mean
    return label_mean


@dataclass
class _Run:
    """Where the epoch loop ended: the history and how it stopped."""

    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "Completed"
    stop_reason: str | None = None
    last_epoch: int = -1
    best_epoch: int = -1
    rows_total: int = 0
    kept_best: bool = False  # early stopping restored an earlier epoch


def _local_batch_size(config: FMConfig, strategy: Any) -> int:
    """Rows per step of this process: the strategy's share of mini_batch_size, if any."""
    share = getattr(strategy, "local_batch_size", None)
    return config.mini_batch_size if share is None else int(share(config.mini_batch_size))


def _run_epochs(trainer: Any, config: FMConfig, train: Any, *, validation: Any,
                callbacks: Sequence[Callback] | None, max_run_seconds: float | None,
                progress: bool, host: str, started: float) -> _Run:
    """Train epoch after epoch: metrics, validation, early stopping, callbacks, stops.

    Leaves the trainer at the best epoch's parameters when early stopping kept one.
    """
    run = _Run()
    strategy = getattr(trainer, "strategy", None)
    world = trainer.world_size if strategy is None else strategy.world_size
    main = trainer.rank == 0
    patience = config.early_stopping_patience if validation is not None else 0
    es_name = f"validation:{early_stopping_metric(config.predictor_type)}"
    best: tuple[float, int, Any] | None = None
    n_rows = count_rows(train)
    batch_size = _local_batch_size(config, strategy)

    def out_of_time() -> bool:
        return max_run_seconds is not None and time.perf_counter() - started > max_run_seconds

    def batch_lines(epoch: int, b: int, y: np.ndarray, t: np.ndarray) -> None:
        log_batch(config, host, epoch, b, y, t)

    try:  # Ctrl-C anywhere in the loop keeps the parameters reached (a consistent model)
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            bar = _progress_bar(n_rows, epoch, config.epochs) if progress else None
            try:
                out = trainer.train_epoch(
                    train, epoch, batch_size=batch_size, stop=out_of_time,
                    on_rows=None if bar is None else bar.update,
                    log_batch=batch_lines if main else None,
                    log_every=config.batch_metrics_publish_interval)
            finally:
                if bar is not None:
                    bar.close()
            if out.stopped:
                run.status = "Stopped"
                run.stop_reason = f"max_run_seconds={max_run_seconds:g} reached"
            if out.rows == 0:
                break
            run.rows_total += out.rows
            logs = _epoch_logs(trainer, config, epoch, out, time.perf_counter() - t0,
                               validation)
            run.last_epoch = epoch
            run.history.append(logs)
            if main:
                log_epoch(config, host, epoch, logs)
            if patience and es_name in logs:
                value = logs[es_name]
                if best is None or value < best[0]:
                    best = (value, epoch, trainer.snapshot())
                elif epoch - best[1] >= patience:
                    run.status, run.stop_reason = "Completed", f"early stopping at epoch {epoch}"
                    if main:
                        logger.info("early stopping: %s has not improved for %d epochs; keeping "
                                    "epoch %d", es_name, patience, best[1])
                    break
            stop = False
            for cb in callbacks or ():
                stop = bool(cb.on_epoch_end(epoch, dict(logs))) or stop
            if world > 1:  # every process must leave the loop at the same epoch
                import torch

                stop = bool(strategy.all_reduce_sum(torch.tensor([float(stop)])).item() > 0)
            if run.status == "Stopped":
                break
            if stop:
                run.status, run.stop_reason = "Stopped", "stopped by a callback"
                break
    except KeyboardInterrupt:
        run.status, run.stop_reason = "Stopped", "interrupted (Ctrl-C)"
    if run.last_epoch < 0 and run.status == "Stopped":
        logger.warning("stopped before the first epoch finished; keeping the parameters reached")
    run.best_epoch = run.last_epoch
    if best is not None:
        trainer.restore(best[2])
        run.best_epoch = best[1]
        run.kept_best = True
    return run


def _progress_bar(n_rows: int | None, epoch: int, epochs: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=n_rows, desc=f"epoch {epoch + 1}/{epochs}", unit="rows", leave=False,
                dynamic_ncols=True)


def _epoch_logs(trainer: Any, config: FMConfig, epoch: int, out: Any, seconds: float,
                validation: Any) -> dict[str, float]:
    """One epoch's history entry: running train metrics (over all processes), rows/s,
    seconds, and the validation channel's metrics."""
    strategy = getattr(trainer, "strategy", None)
    y_all, t_all, w_all = out.logits, out.labels, out.weights
    if strategy is not None:
        y_all, t_all, w_all = strategy.gather_rows([y_all, t_all, w_all])
    logs: dict[str, float] = {"epoch": float(epoch)}
    logs.update(M.compute_metrics(config.predictor_type, t_all, scores_of(config, y_all),
                                  weights=w_all, prefix="train"))
    logs["rows_per_s"] = float(out.rows) / seconds if seconds > 0 else float("nan")
    logs["seconds"] = seconds
    if validation is not None:
        logs.update(trainer.evaluate(validation, "validation"))
    return logs


def _final_metrics(trainer: Any, config: FMConfig, run: _Run, *, test: Any, host: str,
                   main: bool, elapsed: float) -> dict[str, float]:
    """The job's metrics: the kept epoch's train/validation ones, then the test channel
    scored with the final model; rank 0 writes SageMaker's closing log lines."""
    final: dict[str, float] = {}
    if run.history:
        kept = run.history[run.best_epoch if run.kept_best else -1]
        final.update({k: v for k, v in kept.items() if k.startswith(("train:", "validation:"))})
    if main and run.history:
        for line in M.quality_metric_lines(
                {k: v for k, v in final.items() if k.startswith("train:")}, host=host):
            quality_logger.info(line)
        quality_logger.info("#throughput_metric: host=%s, train throughput=%.2f records/second",
                            host, run.rows_total / elapsed if elapsed > 0 else float("nan"))
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
    return final


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
                       strategy: Any = None) -> None:
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
    if not isinstance(train, SparseBatch) or (test is not None
                                              and not isinstance(test, SparseBatch)):
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
