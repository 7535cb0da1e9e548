"""fit_als: exact coordinate descent, deterministic, recovers a planted FM."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.artifact import save
from fmkit.bayes import fit_als
from fmkit.bayes.settings import (ALS_FACTORS_REG, ALS_LINEAR_REG, INIT_SIGMA,
                                  als_regularisation, init_sigma)
from fmkit.bayes.sampler import CoordinateSampler
from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.errors import ConfigError
from fmkit.inference.predictor import Predictor
from fmkit.metrics import compute_metrics, rmse


def _config(**kw):
    values = {"predictor_type": "regressor", "num_factors": 4, "epochs": 25, "seed": 0,
              "linear_wd": 0.1, "factors_wd": 0.1}
    values.update(kw)
    return FMConfig.from_values(values)


def test_planted_fm_is_recovered_and_saved_model_matches(tmp_path):
    data = make_planted_fm(3000, 40, 4, nnz_per_row=5, noise=0.1, seed=1)
    train, test = data.batch.slice(0, 2500), data.batch.slice(2500, 3000)
    art, history = fit_als(_config(), train, test=test)
    assert art.num_samples == 1 and art.link == "identity"
    assert art.metadata["solver"] == "als"
    truth = data.logits[2500:]
    assert history[-1]["test:rmse"] < 0.1 + 0.1 * float(np.std(truth))
    save(art, tmp_path / "als")
    scores = Predictor.load(tmp_path / "als").predict_scores(test)
    assert compute_metrics("regressor", test.labels, scores) == {
        k: v for k, v in history[-1].items() if k.startswith("test:")}
    assert rmse(truth, scores) < 0.1 * float(np.std(truth))


def test_objective_never_increases_and_runs_are_deterministic():
    data = make_planted_fm(600, 30, 3, nnz_per_row=4, noise=0.3, seed=2)
    X, y = data.batch.to_csr(), data.batch.labels.astype(np.float64)
    reg_w, reg_v = 0.5, 2.0
    runs = []
    for _ in range(2):
        s = CoordinateSampler(X, y, np.zeros(30, np.int64), 3, np.random.default_rng(5),
                              mode="als", reg=(0.0, reg_w, reg_v))
        objective = []
        for _ in range(15):
            s.sweep()
            e = y - s.predict_train()
            objective.append(e @ e + reg_w * s.w @ s.w + reg_v * np.sum(s.Vt ** 2))
        assert np.all(np.diff(objective) <= 1e-9 * objective[0])
        assert objective[-1] < 0.5 * objective[0]
        runs.append(s.parameters())
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_regularisation_defaults_and_explicit_values():
    generic = FMConfig.from_values({"predictor_type": "regressor"})
    assert als_regularisation(generic) == (ALS_LINEAR_REG, ALS_FACTORS_REG)
    sagemaker = FMConfig.from_values({"predictor_type": "regressor", "num_factors": 8},
                                     defaults="sagemaker")
    assert als_regularisation(sagemaker) == (ALS_LINEAR_REG, ALS_FACTORS_REG)
    assert als_regularisation(_config(linear_wd=2.0, factors_wd=3.0)) == (2.0, 3.0)
    assert init_sigma(generic) == init_sigma(sagemaker) == INIT_SIGMA
    assert init_sigma(_config(factors_init_sigma=0.3)) == 0.3


def test_binary_classifier_is_rejected():
    data = make_planted_fm(50, 10, 2, task="binary_classifier")
    cfg = FMConfig.from_values({"predictor_type": "binary_classifier", "num_factors": 2})
    with pytest.raises(ConfigError, match="supports only predictor_type='regressor'"):
        fit_als(cfg, data.batch)


def test_row_weight_two_equals_a_duplicated_row():
    data = make_planted_fm(300, 20, 3, nnz_per_row=4, noise=0.2, seed=3)
    batch = data.batch
    weights = np.ones(300, np.float32)
    weights[:40] = 2.0
    weighted = batch.__class__(batch.indices, batch.offsets, batch.values, batch.labels,
                               weights, batch.feature_dim)
    from fmkit.sparse import concat

    doubled = concat([batch, batch.slice(0, 40)])
    cfg = _config(epochs=5)
    a, _ = fit_als(cfg, weighted)
    b, _ = fit_als(cfg, doubled)
    np.testing.assert_allclose(a.V, b.V, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.w, b.w, rtol=1e-4, atol=1e-6)


def test_empty_rows_and_unused_keys_stay_finite():
    data = make_planted_fm(200, 30, 3, nnz_per_row=3, seed=4, empty_rows=20)
    cfg = _config(epochs=5, feature_dim=40)  # keys 30..39 never occur
    art, _ = fit_als(cfg, data.batch)
    assert art.feature_dim == 40
    assert np.all(np.isfinite(art.V)) and np.all(art.w[30:] == 0)
    art, _ = fit_als(cfg.replace(linear_wd=0.0, factors_wd=0.0), data.batch)  # no penalty
    assert np.all(np.isfinite(art.V)) and np.all(art.V[0, 30:] == 0)
