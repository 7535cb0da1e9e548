"""How the Bayesian solvers read the SGD-oriented hyperparameters they share.

``linear_wd``, ``factors_wd`` and ``factors_init_sigma`` have defaults tuned for SGD
(SageMaker's and fmkit's, possibly per predictor_type). A value equal to one of those
generic defaults means "not set by the user", and the solvers use their own defaults;
any other value is taken as given.
"""

from __future__ import annotations

from typing import Any

from fmkit.config import HYPERPARAMETERS, FMConfig

INIT_SIGMA = 0.1  # initial factors ~ N(0, 0.1^2), libFM's and myFM's default
ALS_LINEAR_REG = 1.0
ALS_FACTORS_REG = 1.2


def generic_defaults(name: str) -> set[Any]:
    """Return every default the config table gives ``name`` (SageMaker's and fmkit's)."""
    param = HYPERPARAMETERS[name]
    values = {param.sagemaker}
    values.update(param.fmkit.values() if isinstance(param.fmkit, dict) else [param.fmkit])
    values.discard(None)
    return values


def is_generic(config: FMConfig, name: str) -> bool:
    """Return True when ``config.<name>`` equals one of its generic defaults."""
    return getattr(config, name) in generic_defaults(name)


def init_sigma(config: FMConfig) -> float:
    """Return the initial factor std: ``factors_init_sigma`` unless generic, else 0.1."""
    if is_generic(config, "factors_init_sigma"):
        return INIT_SIGMA
    return float(config.factors_init_sigma)


def als_regularisation(config: FMConfig) -> tuple[float, float]:
    """Return ALS's ``(reg_w, reg_v)``: the config's values, or (1, 1.2) when both generic."""
    if is_generic(config, "linear_wd") and is_generic(config, "factors_wd"):
        return ALS_LINEAR_REG, ALS_FACTORS_REG
    return float(config.linear_wd), float(config.factors_wd)
