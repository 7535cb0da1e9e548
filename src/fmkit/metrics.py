"""Metric functions, reported under SageMaker FM's names.

Regressors: ``rmse``, ``mse``, ``absolute_loss``. Binary classifiers:
``binary_classification_accuracy`` (threshold 0.5), ``binary_f_beta`` (F1 of the positive
class), ``binary_classification_cross_entropy`` (mean log loss of the score) and fmkit's
``auc``. :func:`compute_metrics` prefixes them with the channel (``test:rmse``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fmkit.threads import MIN_PART, concurrently

REGRESSOR_METRICS = ("rmse", "mse", "absolute_loss")
BINARY_METRICS = (
    "binary_classification_accuracy",
    "binary_f_beta",
    "binary_classification_cross_entropy",
    "auc",
)
# SageMaker's log-line names (the ones its scrapers read); binary_f_beta is logged as binary_f_1.000
LOG_NAMES = {"binary_f_beta": "binary_f_1.000"}
METRIC_KINDS = {
    "rmse": "loss", "mse": "loss", "absolute_loss": "loss",
    "binary_classification_accuracy": "score", "binary_f_beta": "score",
    "binary_classification_cross_entropy": "loss", "auc": "score",
}
# objective metric -> direction, for tuning (SageMaker's table plus fmkit's)
DIRECTIONS = {name: "minimize" if kind == "loss" else "maximize"
              for name, kind in METRIC_KINDS.items()}

Array = npt.NDArray[Any]


def _weights(weights: Array | None, n: int) -> npt.NDArray[np.float64] | None:
    """Weights as float64, or None for equal weights (no array of ones is built)."""
    return None if weights is None else np.asarray(weights, dtype=np.float64)


def _average(values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64] | None) -> float:
    """Weighted mean; NaN when there is nothing to average (no rows or all weights 0).

    Summed by numpy (pairwise), not BLAS's dot: on shared cores a BLAS call waits for its
    thread pool, and a train-metrics pass a MovieLens epoch took longer than the epoch.
    """
    if weights is None:
        return float(values.sum() / values.shape[0]) if values.shape[0] else float("nan")
    total = float(weights.sum())
    return float(np.sum(values * weights) / total) if total > 0 else float("nan")


def rmse(labels: Array, scores: Array, weights: Array | None = None) -> float:
    return float(np.sqrt(mse(labels, scores, weights)))


def mse(labels: Array, scores: Array, weights: Array | None = None) -> float:
    d = np.asarray(scores, np.float64) - np.asarray(labels, np.float64)
    return _average(d * d, _weights(weights, d.shape[0]))


def absolute_loss(labels: Array, scores: Array, weights: Array | None = None) -> float:
    d = np.abs(np.asarray(scores, np.float64) - np.asarray(labels, np.float64))
    return _average(d, _weights(weights, d.shape[0]))


def binary_classification_accuracy(
    labels: Array, scores: Array, weights: Array | None = None
) -> float:
    pred = np.asarray(scores) >= 0.5
    hit = (pred == (np.asarray(labels) >= 0.5)).astype(np.float64)
    return _average(hit, _weights(weights, hit.shape[0]))


def binary_f_beta(
    labels: Array, scores: Array, weights: Array | None = None, beta: float = 1.0
) -> float:
    w = _weights(weights, np.asarray(labels).shape[0])
    pred = np.asarray(scores) >= 0.5
    truth = np.asarray(labels) >= 0.5

    def total(mask: npt.NDArray[np.bool_]) -> float:
        return float(np.count_nonzero(mask)) if w is None else float(np.sum(w * mask))

    tp, fp, fn = total(pred & truth), total(pred & ~truth), total(~pred & truth)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / denom if denom > 0 else 0.0


def binary_classification_cross_entropy(
    labels: Array, scores: Array, weights: Array | None = None
) -> float:
    p = np.clip(np.asarray(scores, np.float64), 1e-12, 1 - 1e-12)
    t = np.asarray(labels, np.float64)
    loss = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    return _average(loss, _weights(weights, loss.shape[0]))


def auc(labels: Array, scores: Array, weights: Array | None = None) -> float:
    """Area under the ROC curve, ties counted half (NaN when one class is absent)."""
    t = np.asarray(labels) >= 0.5
    s = np.asarray(scores)
    if s.dtype != np.float32:  # float32 scores sort as they are (the same order)
        s = s.astype(np.float64)
    if weights is None:
        return _auc_counts(t, s)
    w = np.asarray(weights, dtype=np.float64)
    pos_w, neg_w = w[t].sum(), w[~t].sum()
    if pos_w == 0 or neg_w == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s, t, w = s[order], t[order], w[order]
    # group ties: for each distinct score, negatives below it and half the tied negatives
    start = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))  # s is sorted
    neg_in = np.add.reduceat(np.where(t, 0.0, w), start)
    pos_in = np.add.reduceat(np.where(t, w, 0.0), start)
    neg_below = np.concatenate([[0.0], np.cumsum(neg_in)[:-1]])
    return float(np.sum(pos_in * (neg_below + 0.5 * neg_in)) / (pos_w * neg_w))


def _auc_counts(t: npt.NDArray[np.bool_], s: Array) -> float:
    """AUC of equal-weight rows: for every positive, the negatives scored below it plus
    half those tied with it, over P x N. The counts are integers (exact), so this is the
    weighted formula's value bit for bit, at the cost of two sorts of values (no argsort);
    on a training epoch's rows the two sorts, then the two searches, run on two threads."""
    both = concurrently if s.shape[0] >= MIN_PART else _one_after_the_other
    pos, neg = both(lambda: np.sort(s[t]), lambda: np.sort(s[~t]))
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        return float("nan")

    def count(side: Any) -> int:
        return int(np.searchsorted(neg, pos, side).sum(dtype=np.int64))

    below, at_or_below = both(lambda: count("left"), lambda: count("right"))
    num = float(below) + 0.5 * float(at_or_below - below)
    return num / (float(pos.shape[0]) * float(neg.shape[0]))


def _one_after_the_other(*calls: Any) -> list[Any]:
    return [call() for call in calls]


_FUNCS = {
    "rmse": rmse,
    "mse": mse,
    "absolute_loss": absolute_loss,
    "binary_classification_accuracy": binary_classification_accuracy,
    "binary_f_beta": binary_f_beta,
    "binary_classification_cross_entropy": binary_classification_cross_entropy,
    "auc": auc,
}


def metric_names(predictor_type: str) -> tuple[str, ...]:
    """Return the metric names a predictor type emits (without channel prefix)."""
    return REGRESSOR_METRICS if predictor_type == "regressor" else BINARY_METRICS


def compute_metrics(
    predictor_type: str,
    labels: Array,
    scores: Array,
    *,
    weights: Array | None = None,
    prefix: str | None = "test",
) -> dict[str, float]:
    """Return ``{"<prefix>:<name>": value}`` for every metric of ``predictor_type``.

    ``scores`` are the model's outputs: raw predictions for regressors, probabilities for
    binary classifiers. With ``prefix=None`` the names are bare.
    """
    out: dict[str, float] = {}
    for name in metric_names(predictor_type):
        key = f"{prefix}:{name}" if prefix else name
        out[key] = _FUNCS[name](labels, scores, weights)
    return out


def quality_metric_lines(
    metrics: dict[str, float], *, host: str = "algo-1", epoch: int | None = None,
    batch: int | None = None,
) -> list[str]:
    """Render ``metrics`` as SageMaker ``#quality_metric`` log lines.

    ``{"test:rmse": v}`` -> ``#quality_metric: host=algo-1, test rmse <loss>=v``; with
    ``epoch`` the ``epoch=E, `` part is added (per-epoch train lines), with ``batch`` also
    ``batch=B `` with no comma, as SageMaker writes it (the per-batch lines of
    ``batch_metrics_publish_interval``).
    """
    lines = []
    where = "" if epoch is None else f"epoch={epoch}, "
    where += "" if batch is None else f"batch={batch} "
    for key, value in metrics.items():
        channel, _, name = key.partition(":")
        if name not in METRIC_KINDS:
            continue
        log_name = LOG_NAMES.get(name, name)
        lines.append(
            f"#quality_metric: host={host}, {where}{channel} {log_name} "
            f"<{METRIC_KINDS[name]}>={value!r}"
        )
    return lines
