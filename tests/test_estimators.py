"""The scikit-learn facade: estimator checks, fit/predict, save -> load, and the same API
without scikit-learn installed (a subprocess that blocks ``import sklearn``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit import FMClassifier, FMRegressor, load_model
from fmkit.datasets.synthetic import make_planted_fm

try:
    import sklearn  # noqa: F401

    HAS_SKLEARN = True
except ImportError:  # the checks below need it; the no-sklearn test does not
    HAS_SKLEARN = False

needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="needs scikit-learn")
SRC = Path(__file__).resolve().parents[1] / "src"


@needs_sklearn
@pytest.mark.parametrize("estimator", [
    FMRegressor(num_factors=2, epochs=30, mini_batch_size=16, linear_lr=0.05, bias_lr=0.05,
                linear_wd=0.0, factors_wd=0.0, random_state=0),
    FMClassifier(num_factors=2, epochs=10, mini_batch_size=16, random_state=0),
])
def test_scikit_learn_estimator_checks(estimator):
    from sklearn.utils.estimator_checks import check_estimator

    # the README names these two: mini-batch training sees repeated rows in other batches
    # than a weight would put them, so a weight is equivalent to repetition only in
    # expectation, not to 1e-7
    why = "mini-batch SGD: weights equal repetition in expectation only"
    check_estimator(estimator, expected_failed_checks={
        "check_sample_weight_equivalence_on_dense_data": why,
        "check_sample_weight_equivalence_on_sparse_data": why,
    })


@needs_sklearn
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


@needs_sklearn
def test_scikit_learn_clone_and_estimator_type():
    from sklearn.base import clone, is_classifier, is_regressor

    model = FMClassifier(num_factors=3, epochs=2, random_state=7)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert is_classifier(FMClassifier()) and is_regressor(FMRegressor())


# Runs in a fresh interpreter in which ``import sklearn`` fails, as in ``pip install fmkit[all]``.
NO_SKLEARN_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["sklearn"] = None  # every ``import sklearn...`` now raises ImportError
    import numpy as np
    import fmkit
    from fmkit import FMClassifier, FMRegressor, load_model
    from fmkit.datasets.synthetic import make_planted_fm
    from fmkit.errors import NotFittedError

    data = make_planted_fm(1500, 30, 3, task="binary_classifier", seed=3)
    X, y = data.batch.to_csr(), np.where(data.batch.labels > 0, "yes", "no")
    clf = FMClassifier(num_factors=3, epochs=4, random_state=0)
    try:
        clf.predict(X)
    except NotFittedError:
        pass
    else:
        raise SystemExit("predict before fit did not raise NotFittedError")
    assert clf.fit(X[:1200], y[:1200], eval_set=(X[1200:], y[1200:])) is clf
    assert list(clf.classes_) == ["no", "yes"]
    proba = clf.predict_proba(X[1200:])
    assert proba.shape == (300, 2) and np.allclose(proba.sum(1), 1.0)
    assert set(clf.predict(X[1200:])) <= {"no", "yes"}
    accuracy = clf.score(X[1200:], y[1200:])
    assert accuracy > 0.6, accuracy
    assert clf._estimator_type == "classifier"

    # clone-like: a new estimator from get_params has the same parameters, unfitted
    params = clf.get_params()
    twin = type(clf)(**params)
    assert twin.get_params() == params and not hasattr(twin, "artifact_")
    assert twin.set_params(epochs=2) is twin and twin.epochs == 2
    try:
        twin.set_params(nope=1)
    except ValueError as exc:
        assert "invalid parameter" in str(exc)
    else:
        raise SystemExit("set_params(nope=1) did not raise")
    assert repr(twin).startswith("FMClassifier(")

    reg_data = make_planted_fm(1000, 20, 2, seed=4)
    Xr, yr = reg_data.batch.to_csr(), reg_data.batch.labels
    reg = FMRegressor(num_factors=2, epochs=5, random_state=0).fit(Xr, yr)
    r2 = reg.score(Xr, yr)
    pred = reg.predict(Xr).astype(np.float64)
    expected = 1 - ((yr - pred) ** 2).sum() / ((yr - yr.mean()) ** 2).sum()
    assert abs(r2 - expected) < 1e-9 and r2 > 0, (r2, expected)
    assert reg._estimator_type == "regressor"
    reg.save(sys.argv[1])
    again = load_model(sys.argv[1])
    assert isinstance(again, FMRegressor)
    assert np.array_equal(again.predict(Xr), reg.predict(Xr))
    assert not [m for m in sys.modules if m.startswith("sklearn.")]
    print("ok")
""")


def test_estimators_work_without_scikit_learn(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(SRC)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    done = subprocess.run([sys.executable, "-c", NO_SKLEARN_SCRIPT, str(tmp_path / "m")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_r2_score_matches_its_definition():
    from fmkit.estimators import _r2_score

    y = np.array([1.0, 2.0, 4.0])
    pred = np.array([1.5, 2.0, 3.0])
    assert _r2_score(y, pred) == pytest.approx(1 - 1.25 / (14 / 3))
    w = np.array([1.0, 0.0, 2.0])
    mean = (1 + 8) / 3
    total = (1 - mean) ** 2 + 2 * (4 - mean) ** 2
    assert _r2_score(y, pred, w) == pytest.approx(1 - (0.25 + 2) / total)
    assert _r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert _r2_score([2.0, 2.0], [1.0, 2.0]) == 0.0
    if HAS_SKLEARN:
        from sklearn.metrics import r2_score

        assert _r2_score(y, pred, w) == pytest.approx(r2_score(y, pred, sample_weight=w))
