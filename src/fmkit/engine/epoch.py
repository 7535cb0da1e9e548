"""What both trainers share about an epoch: its output, its failure, its log lines.

:class:`EpochOutput` is what ``train_epoch`` of the CPU trainer
(:mod:`fmkit.engine.cpu_trainer`) and of the torch trainer
(:mod:`fmkit.engine.torch_trainer`) return; :func:`divergence_error` is the error either
raises when the loss stops being finite; :func:`log_batch` and :func:`log_epoch` write
SageMaker's ``#quality_metric`` lines. No torch here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmkit import metrics as M
from fmkit.config import FMConfig
from fmkit.errors import DivergenceError

logger = logging.getLogger("fmkit.engine.trainer")
# SageMaker-format metric lines (#quality_metric ...), for existing metric scrapers
quality_logger = logging.getLogger("fmkit.quality")

# rows scored per call when a channel is evaluated
EVAL_BATCH = 65536

# ``log_batch(epoch, b, logits, labels)``: the per-batch metric lines of batch ``b``
BatchLog = Callable[[int, int, np.ndarray, np.ndarray], None]


@dataclass
class EpochOutput:
    """One epoch's running predictions (this process's rows, in the order trained).

    ``logits`` (n,) float32, ``labels`` (n,), ``weights`` (n,) or None; ``rows``: rows
    trained over all processes; ``stopped``: a stop request (``max_run_seconds``) cut it.
    """

    logits: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None
    rows: int
    stopped: bool = False


def divergence_error(epoch: int, batch: int) -> DivergenceError:
    """The error for a loss that became NaN or infinite at ``batch`` of ``epoch``."""
    return DivergenceError(
        f"loss became NaN or infinite at epoch {epoch}, batch {batch}; lower the "
        "learning rates (factors_lr, linear_lr, bias_lr) or set clip_gradient."
    )


def scores_of(config: FMConfig, y: np.ndarray) -> np.ndarray:
    """Scores of raw outputs: themselves for regressors, the predictor's overflow-free
    sigmoid for classifiers."""
    from fmkit.inference.links import apply_link

    return y if config.predictor_type == "regressor" else apply_link("logit", y)


def log_batch(config: FMConfig, host: str, epoch: int, b: int, y: np.ndarray,
              t: np.ndarray) -> None:
    """Write the ``#quality_metric`` lines of one batch (``batch_metrics_publish_interval``)."""
    metrics = M.compute_metrics(config.predictor_type, t, scores_of(config, y), prefix="train")
    metrics.pop("train:auc", None)
    for line in M.quality_metric_lines(metrics, host=host, epoch=epoch, batch=b):
        quality_logger.info(line)


def log_epoch(config: FMConfig, host: str, epoch: int, logs: dict[str, float]) -> None:
    """Write an epoch's ``#quality_metric`` and ``#progress_metric`` lines and its summary."""
    for line in M.quality_metric_lines(
            {k: v for k, v in logs.items() if k.startswith("train:")}, host=host, epoch=epoch):
        quality_logger.info(line)
    pct = 100.0 * (epoch + 1) / config.epochs
    quality_logger.info("#progress_metric: host=%s, completed %.1f %% of epochs", host, pct)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in logs.items()
                      if k.startswith(("train:", "validation:")) and not math.isnan(v))
    logger.info("epoch %d/%d: %s, %.0f rows/s", epoch + 1, config.epochs, shown,
                logs.get("rows_per_s", float("nan")))
