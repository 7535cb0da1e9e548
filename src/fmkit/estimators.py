"""FMClassifier and FMRegressor: the scikit-learn-style facade over the trainer.

Every hyperparameter of :mod:`fmkit.config` is a keyword argument (``num_factors``,
``factors_lr``, ...); ``random_state`` is an alias of ``seed`` and ``defaults`` picks the
default set ('fmkit' or 'sagemaker') for what is left unset. The constructor only stores;
``fit`` validates. X may be scipy.sparse or a dense array.

>>> import numpy as np
>>> from fmkit import FMRegressor
>>> X = np.eye(4, dtype=np.float32); y = np.arange(4, dtype=np.float32)
>>> model = FMRegressor(num_factors=2, epochs=200, mini_batch_size=4, linear_lr=0.05,
...                     bias_lr=0.05, linear_wd=0.0).fit(X, y)
>>> np.round(model.predict(X), 1).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

import numpy as np

from fmkit.config import HYPERPARAMETERS, FMConfig
from fmkit.errors import DataError, FMWarning, NotFittedError
from fmkit.sparse import SparseBatch

try:  # scikit-learn is optional: with it, the estimators get its mixins and tags
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClassifierMixin as _ClassifierMixin
    from sklearn.base import RegressorMixin as _RegressorMixin
    from sklearn.exceptions import DataConversionWarning as _ColumnWarning
    from sklearn.exceptions import NotFittedError as _SklearnNotFitted

    class EstimatorNotFittedError(NotFittedError, _SklearnNotFitted):
        """Raised by predict before fit; also scikit-learn's NotFittedError."""

except ImportError:  # without scikit-learn (tests/test_estimators.py runs this in a subprocess)
    _Base = object  # type: ignore[assignment,misc]

    class _ClassifierMixin:  # type: ignore[no-redef]
        """Stands in for scikit-learn's ClassifierMixin: the estimator type only."""

        _estimator_type = "classifier"

    class _RegressorMixin:  # type: ignore[no-redef]
        """Stands in for scikit-learn's RegressorMixin: the estimator type only."""

        _estimator_type = "regressor"

    EstimatorNotFittedError = NotFittedError  # type: ignore[misc]
    _ColumnWarning = FMWarning  # type: ignore[misc,assignment]

# constructor arguments besides the hyperparameters
_EXTRA = ("defaults", "random_state")
_SKIPPED = ("predictor_type", "seed")  # fixed by the class / aliased by random_state


def _as_batch(X: Any, y: Any = None, sample_weight: Any = None) -> SparseBatch:
    if isinstance(X, SparseBatch):
        batch = X
        if y is not None:
            batch = batch.with_labels(y)
    else:
        batch = SparseBatch.from_matrix(X, labels=None if y is None else np.asarray(y))
    if sample_weight is not None:
        batch = batch.with_weights(sample_weight)
    return batch


class _FMBase(_Base):  # type: ignore[misc,valid-type]
    _predictor_type = "regressor"

    def __init__(self, *, defaults: str = "fmkit", random_state: int | None = None,
                 **hyperparameters: Any) -> None:
        unknown = [k for k in hyperparameters if k not in HYPERPARAMETERS or k in _SKIPPED]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{unknown[0]!r}")
        self.defaults = defaults
        self.random_state = random_state
        for name in HYPERPARAMETERS:
            if name not in _SKIPPED:
                setattr(self, name, hyperparameters.get(name))

    # scikit-learn protocol --------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in HYPERPARAMETERS if name not in _SKIPPED}
        params["defaults"] = self.defaults
        params["random_state"] = self.random_state
        return params

    def set_params(self, **params: Any) -> _FMBase:
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        set_ = {k: v for k, v in self.get_params().items() if v is not None and k != "defaults"}
        inner = ", ".join(f"{k}={v!r}" for k, v in set_.items())
        return f"{type(self).__name__}({inner})"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.sparse = True
        return tags

    def _config(self, feature_dim: int) -> FMConfig:
        values = {k: v for k, v in self.get_params().items() if k not in _EXTRA and v is not None}
        values["predictor_type"] = self._predictor_type
        values.setdefault("feature_dim", feature_dim)
        if self.random_state is not None:
            values["seed"] = int(self.random_state)
        return FMConfig.from_values(values, defaults=self.defaults)  # type: ignore[arg-type]

    def fit(self, X: Any, y: Any, *, sample_weight: Any = None,
            eval_set: tuple[Any, Any] | None = None, callbacks: Any = None,
            vocabulary: Any = None, init_model: str | os.PathLike[str] | None = None) -> Any:
        """Train on X (N, F) and labels y (N,); return self.

        ``eval_set=(X_val, y_val)`` is scored after every epoch (``history_`` holds it under
        ``validation:<metric>``) and drives early stopping when early_stopping_patience > 0.
        """
        from fmkit.engine.trainer import fit as train_fit

        batch = self._check_input(X, y, sample_weight)
        config = self._config(batch.width)
        validation = None
        if eval_set is not None:
            Xv, yv = eval_set
            validation = _as_batch(Xv, yv).with_feature_dim(config.feature_dim)
        init = None
        if init_model is not None:
            from fmkit.model_store import load_model as load

            init = load(init_model)
        result = train_fit(config, batch.with_feature_dim(config.feature_dim),
                           validation=validation, callbacks=callbacks, vocabulary=vocabulary,
                           init=init)
        self._adopt(result.artifact, result.history, result.metrics)
        self.best_epoch_ = result.best_epoch
        self.config_ = config
        return self

    def _adopt(self, artifact: Any, history: list[dict[str, Any]],
               metrics: dict[str, float]) -> None:
        """Set the fitted state that ``fit`` and :func:`load_model` share."""
        from fmkit.inference.predictor import Predictor

        self.artifact_ = artifact
        self.history_ = history
        self.metrics_ = metrics
        self.n_features_in_ = artifact.feature_dim
        self.predictor_ = Predictor(artifact)

    def _check_input(self, X: Any, y: Any, sample_weight: Any) -> SparseBatch:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y "
                             "is None")
        y = np.asarray(y)
        data = X.data if hasattr(X, "data") and not isinstance(X, np.ndarray) else X
        if np.iscomplexobj(y) or np.iscomplexobj(data):
            raise ValueError("Complex data not supported.")
        if y.ndim != 1:
            if y.ndim == 2 and y.shape[1] == 1:
                warnings.warn("A column-vector y was passed when a 1d array was expected; "
                              "using y.ravel().", _ColumnWarning, stacklevel=3)
                y = y.ravel()
            if y.ndim != 1:
                raise ValueError(f"y must be 1-D; got shape {y.shape}.")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y must be numeric; got dtype {y.dtype}. Unknown label type.")
        batch = _as_batch(X, y.astype(np.float32), sample_weight)
        if batch.n_rows == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape=(0, {batch.width})) while a "
                             "minimum of 1 is required.")
        if batch.width == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape=({batch.n_rows}, 0)) while a "
                             "minimum of 1 is required.")
        if batch.nnz and not batch.values_finite:
            raise ValueError("Input X contains NaN or infinity.")
        return batch

    def _get_predictor(self) -> Any:
        if not hasattr(self, "artifact_"):
            raise EstimatorNotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
        return self.predictor_

    def _scores(self, X: Any) -> np.ndarray:
        predictor = self._get_predictor()
        batch = _as_batch(X)
        if batch.nnz and not np.all(np.isfinite(batch.values)):
            raise ValueError("Input X contains NaN or infinity.")
        if batch.width != self.n_features_in_ and batch.feature_dim is not None:
            raise ValueError(
                f"X has {batch.width} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return predictor.predict_scores(batch.with_feature_dim(self.n_features_in_))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted model to the folder ``path`` (data only; loadable without torch)."""
        from fmkit.artifact import save

        self._get_predictor()
        save(self.artifact_, path)


# scikit-learn reads constructor parameters from the signature: spell them all out
_FMBase.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
       for n in HYPERPARAMETERS if n not in _SKIPPED]
    + [inspect.Parameter("defaults", inspect.Parameter.KEYWORD_ONLY, default="fmkit"),
       inspect.Parameter("random_state", inspect.Parameter.KEYWORD_ONLY, default=None)]
)


class FMRegressor(_RegressorMixin, _FMBase):  # type: ignore[misc,valid-type]
    """Factorization machine regressor (squared loss); see the module docstring."""

    _predictor_type = "regressor"

    def predict(self, X: Any) -> np.ndarray:
        """Return predictions (N,) float32."""
        return self._scores(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Return R^2 of the predictions (scikit-learn's r2_score; no scikit-learn needed)."""
        return _r2_score(y, self.predict(X), sample_weight)


def _r2_score(y: Any, pred: np.ndarray, sample_weight: Any = None) -> float:
    """R^2 as scikit-learn's r2_score computes it (constant target: 1.0 if hit exactly, else 0)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, np.float64)
    residual = float(np.sum(w * (y - pred) ** 2))
    total = float(np.sum(w * (y - np.average(y, weights=w)) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


class FMClassifier(_ClassifierMixin, _FMBase):  # type: ignore[misc,valid-type]
    """Factorization machine binary classifier (logistic loss); labels may be any 2 values."""

    _predictor_type = "binary_classifier"

    def fit(self, X: Any, y: Any, **kw: Any) -> FMClassifier:  # type: ignore[override]
        if y is None:
            raise ValueError("FMClassifier requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; "
                          "using y.ravel().", _ColumnWarning, stacklevel=2)
            y = y.ravel()
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous. FMClassifier needs two classes; "
                             "use FMRegressor for a continuous target.")
        classes = np.unique(y)
        if classes.shape[0] > 2:
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is multiclass ({classes.shape[0]} classes).")
        if classes.shape[0] < 2:
            raise ValueError("FMClassifier needs samples of 2 classes in y; got 1 class.")
        self.classes_ = classes
        eval_set = kw.pop("eval_set", None)
        if eval_set is not None:
            eval_set = (eval_set[0], (np.asarray(eval_set[1]) == classes[1]).astype(np.float32))
        return super().fit(X, (y == classes[1]).astype(np.float32), eval_set=eval_set, **kw)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def predict_proba(self, X: Any) -> np.ndarray:
        """Return (N, 2) probabilities of ``classes_[0]`` and ``classes_[1]``."""
        p = self._scores(X).astype(np.float64)
        return np.column_stack([1 - p, p])

    def decision_function(self, X: Any) -> np.ndarray:
        p = np.clip(self._scores(X).astype(np.float64), 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    def predict(self, X: Any) -> np.ndarray:
        """Return the predicted class of every row (threshold 0.5)."""
        self._get_predictor()
        return self.classes_[(self._scores(X) >= 0.5).astype(int)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Return the mean accuracy."""
        hit = (self.predict(X) == np.asarray(y)).astype(np.float64)
        return float(np.average(hit, weights=sample_weight))


def load_model(path: str | os.PathLike[str]) -> FMClassifier | FMRegressor:
    """Load a saved model (fmkit folder or SageMaker model.tar.gz) as a fitted estimator."""
    from fmkit.model_store import load_model as load

    artifact = load(path)
    hp = dict(artifact.metadata.get("hyperparameters") or {})
    cls = FMClassifier if artifact.predictor_type == "binary_classifier" else FMRegressor
    kwargs = {k: v for k, v in hp.items() if k in HYPERPARAMETERS and k not in _SKIPPED}
    try:
        est = cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise DataError(f"{path}: cannot rebuild estimator: {exc}") from None
    est._adopt(artifact, artifact.metadata.get("history", []),
               artifact.metadata.get("metrics", {}))
    if cls is FMClassifier:
        est.classes_ = np.asarray([0.0, 1.0])
    return est
