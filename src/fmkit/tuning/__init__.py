"""Hyperparameter tuning jobs over Optuna, with SageMaker-shaped ranges.

>>> from fmkit.tuning import Tuner, ContinuousParameter, IntegerParameter
>>> ranges = {"num_factors": IntegerParameter(8, 128, "Logarithmic"),
...           "factors_lr": ContinuousParameter(1e-4, 0.1, "Logarithmic")}
"""

from __future__ import annotations

from fmkit.tuning.presets import fm_preset_ranges
from fmkit.tuning.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    parse_ranges,
    read_ranges,
)
from fmkit.tuning.tuner import Trial, Tuner, TuningResult

__all__ = [
    "CategoricalParameter", "ContinuousParameter", "IntegerParameter", "Trial", "Tuner",
    "TuningResult", "fm_preset_ranges", "parse_ranges", "read_ranges",
]
