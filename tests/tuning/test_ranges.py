"""SageMaker-shaped ranges: parsing, validation errors, scaling and Optuna sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from fmkit.errors import ConfigError
from fmkit.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    parse_ranges,
    read_ranges,
)
from fmkit.tuning.ranges import check_ranges, ranges_to_json, suggest

DOC = {
    "ContinuousParameterRanges": [
        {"Name": "factors_lr", "MinValue": "0.0001", "MaxValue": "0.1",
         "ScalingType": "Logarithmic"},
        {"Name": "factors_wd", "MinValue": 0, "MaxValue": 0.5, "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [
        {"Name": "num_factors", "MinValue": "8", "MaxValue": "128", "ScalingType": "Auto"},
    ],
    "CategoricalParameterRanges": [
        {"Name": "mini_batch_size", "Values": ["128", "256"]},
        {"Name": "use_linear", "Values": ["true", "false"]},
    ],
}


def test_parse_sagemaker_document() -> None:
    ranges = parse_ranges(DOC)
    assert ranges["factors_lr"] == ContinuousParameter(0.0001, 0.1, "Logarithmic")
    assert ranges["factors_wd"] == ContinuousParameter(0.0, 0.5, "Linear")
    assert ranges["num_factors"] == IntegerParameter(8, 128, "Auto")
    assert ranges["mini_batch_size"].parsed_values("mini_batch_size") == [128, 256]
    assert ranges["use_linear"].parsed_values("use_linear") == [True, False]
    assert parse_ranges({"ParameterRanges": DOC}) == ranges
    assert parse_ranges(ranges_to_json(ranges)) == ranges


def test_auto_scaling_rule() -> None:
    assert IntegerParameter(8, 128).scale() == "Linear"  # 16x: less than two decades
    assert IntegerParameter(1, 100).scale() == "Logarithmic"
    assert ContinuousParameter(0.0, 1.0).scale() == "Linear"  # includes 0
    assert ContinuousParameter(1e-4, 0.1).scale() == "Logarithmic"


def _err(doc: object) -> str:
    with pytest.raises(ConfigError) as info:
        parse_ranges(doc)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"IntegerParameterRanges": [{"Name": "num_factor", "MinValue": 1, "MaxValue": 2}]},
         "unknown hyperparameter 'num_factor'"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 64, "MaxValue": 8}]},
         "MinValue of 'num_factors' (64) is greater than its MaxValue (8)"),
        ({"ContinuousParameterRanges": [{"Name": "factors_lr", "MinValue": 0, "MaxValue": 0.1,
                                          "ScalingType": "Logarithmic"}]},
         "includes values <= 0"),
        ({"ContinuousParameterRanges": [{"Name": "factors_lr", "MinValue": 0.1, "MaxValue": 1,
                                          "ScalingType": "ReverseLogarithmic"}]},
         "0 <= MinValue <= MaxValue < 1"),
        ({"ContinuousParameterRanges": [{"Name": "num_factors", "MinValue": 1,
                                          "MaxValue": 9}]},
         "use IntegerParameterRanges"),
        ({"IntegerParameterRanges": [{"Name": "factors_lr", "MinValue": 1, "MaxValue": 9}]},
         "use ContinuousParameterRanges"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 1.5,
                                       "MaxValue": 9}]},
         "must be an integer"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 0, "MaxValue": 9}]},
         "num_factors must be an int >= 1"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 1}]},
         "MaxValue of 'num_factors' is missing"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": "x", "MaxValue": 2}]},
         "MinValue of 'num_factors' must be a number; got 'x'"),
        ({"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 1, "MaxValue": 2,
                                       "ScalingType": "ReverseLogarithmic"}]},
         "ScalingType of 'num_factors' must be one of Auto, Linear, Logarithmic"),
        ({"ContinuousParameterRanges": [{"Name": "factors_lr", "MinValue": 1, "MaxValue": 2,
                                          "Scaling": "Linear"}]},
         "unknown field 'Scaling'"),
        ({"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "lbfgs"]}]},
         "value 'lbfgs' of 'optimizer'"),
        ({"CategoricalParameterRanges": [{"Name": "predictor_type",
                                           "Values": ["regressor"]}]},
         "'predictor_type' cannot be tuned"),
        ({"ContinousParameterRanges": []}, "unknown key 'ContinousParameterRanges'"),
        ({"IntegerParameterRanges": {"Name": "num_factors"}}, "must be a list"),
        ([1, 2], "expected a JSON object"),
        ({}, "no hyperparameter ranges given"),
        ({"IntegerParameterRanges": [
            {"Name": "num_factors", "MinValue": 1, "MaxValue": 2},
            {"Name": "num_factors", "MinValue": 1, "MaxValue": 3}]}, "more than one range"),
    ],
)
def test_bad_ranges_name_what_and_where(doc: object, expected: str) -> None:
    assert expected in _err(doc)


def test_error_names_the_entry() -> None:
    doc = {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": 1, "MaxValue": 5},
                                      {"Name": "num_factors", "MinValue": 9, "MaxValue": 2}]}
    assert _err(doc).startswith("ranges, IntegerParameterRanges[1]:")


def test_read_ranges_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"IntegerParameterRanges": [\n  {"Name": "num_factors",}\n]}')
    with pytest.raises(ConfigError, match=r"r.json: not valid JSON at line 2, column 26"):
        read_ranges(bad)
    with pytest.raises(ConfigError, match="cannot read the ranges file"):
        read_ranges(tmp_path / "missing.json")
    good = tmp_path / "g.json"
    good.write_text(json.dumps(DOC))
    assert set(read_ranges(good)) == {"factors_lr", "factors_wd", "num_factors",
                                      "mini_batch_size", "use_linear"}


def test_python_objects_are_checked_like_json() -> None:
    with pytest.raises(ConfigError, match="greater than its MaxValue"):
        check_ranges({"factors_lr": ContinuousParameter(0.5, 0.1)})
    with pytest.raises(ConfigError, match="repeat a value"):
        check_ranges({"optimizer": CategoricalParameter(["adam", "adam"])})


def _samples(rng: object, name: str, n: int = 300) -> list[object]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(suggest(trial, name, rng))  # type: ignore[arg-type]
        study.tell(trial, 0.0)
    return out


def test_logarithmic_sampling_is_uniform_in_log_space() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    xs = np.array(_samples(ContinuousParameter(1e-4, 1.0, "Logarithmic"), "factors_lr"))
    assert xs.min() >= 1e-4 and xs.max() <= 1.0
    # log-uniform: the median sits near the geometric mean 1e-2, far below the mean 0.5
    assert 10 ** -2.5 < np.median(xs) < 10 ** -1.5
    lin = np.array(_samples(ContinuousParameter(1e-4, 1.0, "Linear"), "factors_lr"))
    assert 0.4 < np.median(lin) < 0.6


def test_reverse_logarithmic_is_dense_near_the_top() -> None:
    xs = np.array(_samples(ContinuousParameter(0.0, 0.999, "ReverseLogarithmic"), "factors_lr"))
    assert xs.min() >= 0.0 and xs.max() <= 0.999
    assert np.median(xs) > 0.9  # 1 - x is log-uniform in [0.001, 1]


def test_integer_and_categorical_values_have_the_hyperparameter_type() -> None:
    ints = _samples(IntegerParameter(2, 300, "Logarithmic"), "num_factors")
    assert all(isinstance(v, int) and 2 <= v <= 300 for v in ints)
    assert sum(v < 25 for v in ints) > len(ints) / 3  # log: about half below sqrt(600)
    cats = _samples(CategoricalParameter(["true", "false"]), "use_bias", 20)
    assert set(cats) == {True, False}
    assert all(not math.isnan(float(v)) for v in cats)
