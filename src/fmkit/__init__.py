"""fmkit: self-hosted factorization machines, compatible with SageMaker's FM algorithm.

``import fmkit`` is cheap: torch, the server and the tuner load only when used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "FMClassifier",
    "FMRegressor",
    "FMConfig",
    "Predictor",
    "SparseBatch",
    "load_model",
    "__version__",
]

_LAZY = {
    "FMClassifier": "fmkit.estimators",
    "FMRegressor": "fmkit.estimators",
    "load_model": "fmkit.estimators",
    "FMConfig": "fmkit.config",
    "Predictor": "fmkit.inference.predictor",
    "SparseBatch": "fmkit.sparse",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        import importlib

        try:
            return importlib.import_module(f"fmkit.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'fmkit' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module), name)
