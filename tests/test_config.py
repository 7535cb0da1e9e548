"""Hyperparameters: parsing SageMaker strings, defaults, and one clear error per bad value."""

from __future__ import annotations

import pytest

from fmkit.config import HYPERPARAMETERS, FMConfig
from fmkit.errors import ConfigError

REQUIRED = {"predictor_type": "regressor", "num_factors": "8"}


def test_sagemaker_strings_are_parsed():
    cfg = FMConfig.from_values(
        {"feature_dim": "2625", "num_factors": "64.0", "predictor_type": "binary_classifier",
         "epochs": "100", "mini_batch_size": "1000", "factors_wd": "1e-05",
         "use_bias": "false", "_tuning_objective_metric": "test:rmse", "_kvstore": "auto"},
        defaults="sagemaker")
    assert cfg.num_factors == 64 and cfg.feature_dim == 2625 and cfg.epochs == 100
    assert cfg.factors_wd == 1e-5 and cfg.use_bias is False
    # everything else is SageMaker's documented default
    assert (cfg.bias_lr, cfg.linear_lr, cfg.factors_lr) == (0.1, 0.001, 0.0001)
    assert (cfg.bias_wd, cfg.linear_wd) == (0.01, 0.001)
    assert cfg.factors_init_sigma == 0.001 and cfg.shuffle is False


def test_two_default_sets_differ_and_are_documented():
    sm = FMConfig.from_values(REQUIRED, defaults="sagemaker")
    fk = FMConfig.from_values({"predictor_type": "regressor"}, defaults="fmkit")
    assert sm.epochs == 1 and fk.epochs > 1
    assert fk.num_factors == HYPERPARAMETERS["num_factors"].fmkit["regressor"]
    fb = FMConfig.from_values({"predictor_type": "binary_classifier"})
    assert fb.factors_wd == HYPERPARAMETERS["factors_wd"].fmkit["binary_classifier"]
    with pytest.raises(ConfigError, match="No value\\(s\\) were specified for 'num_factors'"):
        FMConfig.from_values({"predictor_type": "regressor"}, defaults="sagemaker")
    with pytest.raises(ConfigError, match="'predictor_type'"):
        FMConfig.from_values({}, defaults="fmkit")


def _bad_values(param):
    if param.kind is bool:
        return ["maybe", 2]
    if param.kind is int:
        bad = ["x", "1.5"]
        if param.check(0) is False:
            bad.append("0")
        if param.check(-1) is False:
            bad.append("-1")
        return bad
    if param.kind is float:
        bad = ["abc", "nan"] if param.check(1.0) else ["abc"]
        if param.check(-1.0) is False:
            bad.append("-1")
        return bad
    return ["not-a-choice"]


CASES = [(name, bad) for name, p in HYPERPARAMETERS.items() for bad in _bad_values(p)
         if not (p.kind is str and p.check("not-a-choice"))]


@pytest.mark.parametrize("name,bad", CASES)
def test_every_invalid_value_names_parameter_value_and_rule(name, bad):
    values = dict(REQUIRED, **{name: bad})
    with pytest.raises(ConfigError) as err:
        FMConfig.from_values(values)
    message = str(err.value)
    assert f"{name} must be" in message
    assert f"got {bad!r}" in message or f"got {bad}" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
def test_every_valid_value_round_trips(name):
    p = HYPERPARAMETERS[name]
    good = {bool: "true", int: "3", float: "0.5"}.get(p.kind)
    if p.kind is str:
        good = {"predictor_type": "regressor", "device": "cpu", "optimizer": "adagrad",
                "solver": "sgd", "interactions": "all"}.get(name, "normal")
    cfg = FMConfig.from_values(dict(REQUIRED, **{name: good}))
    assert str(getattr(cfg, name)).lower() == str(p.kind(good) if p.kind is not bool
                                                  else True).lower()


def test_init_method_needs_its_parameter():
    with pytest.raises(ConfigError, match="factors_init_scale is not set"):
        FMConfig.from_values(dict(REQUIRED, factors_init_method="uniform"))
    with pytest.raises(ConfigError, match="bias_init_value is not set"):
        FMConfig.from_values(dict(REQUIRED, bias_init_method="constant"))
    cfg = FMConfig.from_values(dict(REQUIRED, factors_init_method="uniform",
                                    factors_init_scale="0.2"))
    assert cfg.factors_init_scale == 0.2


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown hyperparameter 'num_factor'"):
        FMConfig.from_values(dict(REQUIRED, num_factor="3"))


def test_sagemaker_strings_export():
    cfg = FMConfig.from_values(dict(REQUIRED, feature_dim=10), defaults="sagemaker")
    out = cfg.to_sagemaker_strings()
    assert out["num_factors"] == "8" and out["use_bias"] == "true"
    assert "seed" not in out and all(isinstance(v, str) for v in out.values())
    assert FMConfig.from_values(out, defaults="sagemaker") == cfg


def test_docs_table_is_current():
    from pathlib import Path

    from fmkit.config import defaults_markdown

    doc = (Path(__file__).parents[1] / "docs" / "hyperparameters.md").read_text()
    assert defaults_markdown() in doc, "regenerate the table in docs/hyperparameters.md"


def test_bayesian_solvers_get_their_own_epoch_defaults():
    mcmc = FMConfig.from_values({"predictor_type": "regressor", "solver": "mcmc"})
    als = FMConfig.from_values({"predictor_type": "regressor", "solver": "als"})
    assert (mcmc.epochs, als.epochs) == (200, 15)
    given = FMConfig.from_values({"predictor_type": "regressor", "solver": "mcmc", "epochs": "50"})
    assert given.epochs == 50
