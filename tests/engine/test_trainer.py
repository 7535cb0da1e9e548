"""The training loop: planted-model recovery, early stopping, stops, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.engine.trainer import fit
from fmkit.errors import ConfigError, DataError, DivergenceError
from fmkit.inference.predictor import Predictor
from fmkit.sparse import SparseBatch


def _cfg(**kw):
    base = dict(predictor_type="regressor", num_factors=4, epochs=40, mini_batch_size=64,
                bias_lr=0.02, linear_lr=0.02, factors_lr=0.02, linear_wd=0.0, factors_wd=0.0,
                factors_init_sigma=0.1, device="cpu", optimizer="adam")
    base.update(kw)
    return FMConfig.from_values(base)


def test_planted_regressor_reaches_noise_floor():
    train = make_planted_fm(4000, 30, 4, noise=0.1, seed=1)
    test = make_planted_fm(1000, 30, 4, noise=0.1, seed=1)  # same parameters, fresh rows? no:
    # the generator draws parameters from the seed, so use the tail of a larger draw instead
    data = make_planted_fm(5000, 30, 4, noise=0.1, seed=1)
    train, test = data.batch.slice(0, 4000), data.batch.slice(4000, 5000)
    result = fit(_cfg(), train, test=test)
    # noise floor: rmse of the noise itself is 0.1; the signal std is much larger
    signal = float(np.std(data.logits))
    assert signal > 1.0
    assert result.metrics["test:rmse"] < 0.2
    # predictions are close to the planted noiseless scores
    pred = Predictor(result.artifact).predict_scores(test)
    assert np.sqrt(np.mean((pred - data.logits[4000:]) ** 2)) < 0.15


def test_planted_classifier_approaches_planted_auc():
    data = make_planted_fm(12000, 30, 4, task="binary_classifier", seed=2)
    train, test = data.batch.slice(0, 10000), data.batch.slice(10000, 12000)
    from fmkit.metrics import auc

    planted = auc(test.labels, 1 / (1 + np.exp(-data.logits[10000:])))
    result = fit(_cfg(predictor_type="binary_classifier", epochs=20, linear_wd=1e-4,
                      factors_wd=1e-4), train, test=test)
    assert result.metrics["test:auc"] > planted - 0.03
    assert 0 <= result.metrics["test:binary_classification_cross_entropy"] < 0.69


def test_same_seed_same_model_and_shuffle_changes_it():
    data = make_planted_fm(500, 20, 3, seed=3).batch
    a = fit(_cfg(epochs=2, shuffle=True, seed=7), data).artifact
    b = fit(_cfg(epochs=2, shuffle=True, seed=7), data).artifact
    c = fit(_cfg(epochs=2, shuffle=True, seed=8), data).artifact
    assert np.array_equal(a.V, b.V) and np.array_equal(a.w, b.w)
    assert not np.array_equal(a.V, c.V)


def test_early_stopping_keeps_best_epoch():
    data = make_planted_fm(600, 200, 4, nnz_per_row=3, noise=1.0, seed=4)
    train, val = data.batch.slice(0, 300), data.batch.slice(300, 600)
    # a large model on few noisy rows overfits quickly
    result = fit(_cfg(epochs=60, num_factors=16, factors_lr=0.05, linear_lr=0.05,
                      early_stopping_patience=3), train, validation=val)
    rmses = [h["validation:rmse"] for h in result.history]
    assert len(result.history) < 60
    assert result.best_epoch == int(np.argmin(rmses))
    pred = Predictor(result.artifact).predict_scores(val)
    best_rmse = float(np.sqrt(np.mean((pred - val.labels) ** 2)))
    assert best_rmse == pytest.approx(min(rmses), rel=1e-4)


def test_callback_and_time_limit_stop_with_status_stopped():
    data = make_planted_fm(500, 20, 3, seed=5).batch

    class StopAtTwo:
        def on_epoch_end(self, epoch, logs):
            assert "train:rmse" in logs
            return epoch == 1

    result = fit(_cfg(epochs=10), data, callbacks=[StopAtTwo()])
    assert result.status == "Stopped" and len(result.history) == 2
    # (100,000 epochs: the CPU trainer runs 1,000 epochs of these 500 rows in 0.12 s)
    result = fit(_cfg(epochs=100_000), data, max_run_seconds=0.2)
    assert result.status == "Stopped" and len(result.history) < 100_000


def test_divergence_is_reported():
    data = make_planted_fm(300, 20, 3, seed=6).batch
    with pytest.raises(DivergenceError, match="epoch 0"):
        fit(_cfg(factors_lr=1e30, linear_lr=1e30, bias_lr=1e30, optimizer="sgd"), data)


def test_feature_dim_from_data_and_bad_inputs(monkeypatch):
    data = make_planted_fm(100, 20, 3, seed=7).batch
    result = fit(_cfg(epochs=1), data.with_feature_dim(None))
    assert result.artifact.feature_dim == int(data.indices.max()) + 1
    with pytest.raises(DataError, match="out of range"):
        fit(_cfg(epochs=1, feature_dim=5), data)
    with pytest.raises(DataError, match="0 or 1"):
        fit(_cfg(epochs=1, predictor_type="binary_classifier"), data)
    nan = SparseBatch.from_arrays(data.indices, data.offsets,
                                  np.where(np.arange(data.nnz) == 7, np.nan, data.values),
                                  data.labels, feature_dim=20)
    with pytest.raises(DataError, match="row 1: feature value nan"):
        fit(_cfg(epochs=1), nan)
    with pytest.raises(DataError, match="no rows"):
        fit(_cfg(epochs=1), data.slice(0, 0))
    with pytest.raises(DataError, match="needs a label"):
        fit(_cfg(epochs=1), data.with_labels(None) if False else SparseBatch.from_arrays(
            data.indices, data.offsets, data.values, None, feature_dim=20))
    import torch

    # device='cuda' on a machine without CUDA: checked on every machine, CUDA or not
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device is 'cuda' but no CUDA device is available"):
        fit(_cfg(epochs=1, device="cuda"), data)


def test_warm_start_continues_from_model():
    data = make_planted_fm(1000, 20, 3, seed=8).batch
    first = fit(_cfg(epochs=5), data)
    again = fit(_cfg(epochs=1, factors_lr=0.0, linear_lr=0.0, bias_lr=0.0), data,
                init=first.artifact)
    assert np.array_equal(again.artifact.V, first.artifact.V)
    assert again.history[0]["train:rmse"] == pytest.approx(first.history[-1]["train:rmse"],
                                                           rel=0.2)
    # a user_item model's factors mean something else: refused, with the reason
    first.artifact.metadata.update(interactions="user_item", user_block=[[0, 10]])
    with pytest.raises(ConfigError, match="trained with interactions='user_item'; this job "
                                          "trains interactions='all'"):
        fit(_cfg(epochs=1, interactions="all"), data, init=first.artifact)


def test_sample_weights_change_the_fit():
    data = make_planted_fm(400, 20, 3, seed=9).batch
    zero_half = np.where(np.arange(400) < 200, 0.0, 1.0)
    a = fit(_cfg(epochs=3), data.with_weights(zero_half)).artifact
    b = fit(_cfg(epochs=3), data.slice(200, 400)).artifact
    # rows with weight 0 contribute no gradient, but still count in the batch mean, and
    # still touch their keys' optimizer state, so compare only the direction of the fit
    assert np.corrcoef(a.w[0], b.w[0])[0, 1] > 0.9


@pytest.mark.parametrize("solver,task", [("mcmc", "regressor"), ("mcmc", "binary_classifier"),
                                         ("als", "regressor")])
def test_bayesian_solvers_report_the_metrics_of_the_saved_model(solver, task):
    """fit() takes the solvers' own metrics; they equal scoring the returned model."""
    from fmkit.metrics import compute_metrics

    data = make_planted_fm(1200, 25, 3, noise=0.1, seed=4)
    batch = data.batch
    if task == "binary_classifier":
        batch = batch.with_labels((data.logits > np.median(data.logits)).astype(np.float32))
    train, test = batch.slice(0, 1000), batch.slice(1000, 1200)
    cfg = FMConfig.from_values({"predictor_type": task, "solver": solver, "num_factors": 3,
                                "epochs": 12, "seed": 0})
    result = fit(cfg, train, test=test)
    predictor = Predictor(result.artifact)
    expected = compute_metrics(task, test.labels, predictor.predict_scores(test))
    assert {k: v for k, v in result.metrics.items() if k.startswith("test:")} == expected
    train_ref = compute_metrics(task, train.labels, predictor.predict_scores(train),
                                prefix="train")
    for key, value in train_ref.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
