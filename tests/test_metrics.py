"""Metric functions against scikit-learn and SageMaker's log-line format."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit import metrics as M

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_binary_metrics_match_sklearn(rng):
    t = (rng.random(500) < 0.4).astype(np.float32)
    s = np.clip(0.3 * t + rng.random(500) * 0.7, 0, 1).astype(np.float32)
    s[:20] = 0.5  # ties at the threshold count as positive
    w = rng.random(500)
    got = M.compute_metrics("binary_classifier", t, s, weights=w)
    pred = (s >= 0.5).astype(int)
    assert got["test:binary_classification_accuracy"] == pytest.approx(
        sklearn_metrics.accuracy_score(t, pred, sample_weight=w))
    assert got["test:binary_f_beta"] == pytest.approx(sklearn_metrics.f1_score(t, pred, sample_weight=w))
    assert got["test:binary_classification_cross_entropy"] == pytest.approx(
        sklearn_metrics.log_loss(t, s, sample_weight=w), rel=1e-6)
    assert got["test:auc"] == pytest.approx(sklearn_metrics.roc_auc_score(t, s, sample_weight=w))


def test_regression_metrics(rng):
    t = rng.normal(size=100)
    s = t + rng.normal(size=100)
    got = M.compute_metrics("regressor", t, s, prefix="train")
    assert got["train:mse"] == pytest.approx(sklearn_metrics.mean_squared_error(t, s))
    assert got["train:rmse"] == pytest.approx(np.sqrt(got["train:mse"]))
    assert got["train:absolute_loss"] == pytest.approx(sklearn_metrics.mean_absolute_error(t, s))


def test_quality_metric_lines_use_sagemaker_names():
    lines = M.quality_metric_lines({"test:rmse": 1.0002629948968227,
                                    "train:binary_f_beta": 0.5}, host="algo-1")
    assert lines[0] == "#quality_metric: host=algo-1, test rmse <loss>=1.0002629948968227"
    assert lines[1] == "#quality_metric: host=algo-1, train binary_f_1.000 <score>=0.5"
    assert M.quality_metric_lines({"train:mse": 2.0}, epoch=3)[0] == \
        "#quality_metric: host=algo-1, epoch=3, train mse <loss>=2.0"
    assert M.quality_metric_lines({"train:mse": 2.0}, host="algo-2", epoch=3, batch=500)[0] \
        == "#quality_metric: host=algo-2, epoch=3, batch=500 train mse <loss>=2.0"


def test_auc_of_equal_weights_is_the_weighted_formula_bit_for_bit():
    rng = np.random.default_rng(5)
    for n in (2, 17, 5000):
        scores = (rng.random(n) * 20).round() / 20  # many ties
        labels = (rng.random(n) < 0.4).astype(np.float32)
        labels[:2] = [0.0, 1.0]
        for s in (scores, scores.astype(np.float32)):
            assert M.auc(labels, s) == M.auc(labels, s, np.ones(n))
    assert np.isnan(M.auc(np.ones(4), np.arange(4.0)))
