"""The scikit-learn facade: estimator checks, fit/predict, save -> load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit import FMClassifier, FMRegressor, load_model
from fmkit.datasets.synthetic import make_planted_fm

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402


@pytest.mark.parametrize("estimator", [
    FMRegressor(num_factors=2, epochs=30, mini_batch_size=16, linear_lr=0.05, bias_lr=0.05,
                linear_wd=0.0, factors_wd=0.0, random_state=0),
    FMClassifier(num_factors=2, epochs=10, mini_batch_size=16, random_state=0),
])
def test_scikit_learn_estimator_checks(estimator):
    # mini-batch training sees repeated rows in other batches than a weight would put them,
    # so a weight is equivalent to repetition only in expectation, not to 1e-7
    why = "mini-batch SGD: weights equal repetition in expectation only"
    check_estimator(estimator, expected_failed_checks={
        "check_sample_weight_equivalence_on_dense_data": why,
        "check_sample_weight_equivalence_on_sparse_data": why,
    })


def test_classifier_on_sparse_input_with_eval_set_and_proba():
    data = make_planted_fm(3000, 40, 4, task="binary_classifier", seed=1)
    X = data.batch.to_csr()
    y = np.where(data.batch.labels > 0, "click", "none")
    model = FMClassifier(num_factors=4, epochs=5, random_state=0)
    model.fit(X[:2500], y[:2500], eval_set=(X[2500:], y[2500:]))
    assert list(model.classes_) == ["click", "none"]
    assert len(model.history_) == 5
    assert "validation:auc" in model.history_[-1]
    proba = model.predict_proba(X[2500:])
    assert proba.shape == (500, 2) and np.allclose(proba.sum(1), 1)
    assert set(model.predict(X[2500:])) <= {"click", "none"}
    assert model.score(X[2500:], y[2500:]) > 0.6


def test_save_load_gives_identical_predictions(tmp_path):
    data = make_planted_fm(1000, 30, 3, seed=2)
    X, y = data.batch.to_csr(), data.batch.labels
    model = FMRegressor(num_factors=3, epochs=3, random_state=0).fit(X, y)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert isinstance(again, FMRegressor)
    np.testing.assert_array_equal(model.predict(X), again.predict(X))
    np.testing.assert_allclose(model.predict(X.toarray()), model.predict(X), rtol=1e-5, atol=1e-6)
    assert again.get_params()["num_factors"] == 3


def test_sagemaker_defaults_and_set_params():
    model = FMRegressor(num_factors=2, defaults="sagemaker")
    X = sp.random(200, 10, density=0.3, format="csr", random_state=0)
    model.set_params(epochs=2).fit(X, np.ones(200))
    assert model.config_.epochs == 2 and model.config_.factors_lr == 0.0001
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(nope=1)
