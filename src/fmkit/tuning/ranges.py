"""Hyperparameter ranges in SageMaker's shape, and their Optuna sampling.

SageMaker's ``ParameterRanges`` JSON (what ``fmkit tune --ranges`` reads)::

    {
      "ContinuousParameterRanges": [
        {"Name": "factors_lr", "MinValue": "0.0001", "MaxValue": "0.1",
         "ScalingType": "Logarithmic"}
      ],
      "IntegerParameterRanges": [
        {"Name": "num_factors", "MinValue": "8", "MaxValue": "128", "ScalingType": "Auto"}
      ],
      "CategoricalParameterRanges": [
        {"Name": "mini_batch_size", "Values": ["128", "256", "512"]}
      ]
    }

Values may be strings (as SageMaker writes them) or numbers. Scaling types:

- ``Linear``: uniform between the bounds.
- ``Logarithmic``: uniform in log space; needs ``MinValue > 0``.
- ``ReverseLogarithmic`` (continuous only): uniform in ``log(1 - x)``, dense near the upper
  bound; needs ``0 <= MinValue < MaxValue < 1``.
- ``Auto``: SageMaker picks the scale; fmkit picks ``Logarithmic`` when ``MinValue > 0`` and
  the range spans at least two decades (``MaxValue / MinValue >= 100``), else ``Linear``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmkit.config import HYPERPARAMETERS, _parse
from fmkit.errors import ConfigError

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
_KINDS = {
    "ContinuousParameterRanges": "continuous",
    "IntegerParameterRanges": "integer",
    "CategoricalParameterRanges": "categorical",
}
# hyperparameters a tuning job may not vary: they change what the model is, not how it fits
UNTUNABLE = ("predictor_type", "feature_dim", "device")


def _number(value: Any, *, name: str, field: str, kind: type, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {field} of {name!r} must be a number; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: {field} of {name!r} must be a number; got {value!r}."
        ) from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {field} of {name!r} must be finite; got {value!r}.")
    if kind is int and number != int(number):
        raise ConfigError(f"{where}: {field} of {name!r} must be an integer; got {value!r}.")
    return number


def _check_scaling(scaling_type: str, *, where: str, name: str, allowed: Sequence[str]) -> None:
    if scaling_type not in allowed:
        raise ConfigError(
            f"{where}: ScalingType of {name!r} must be one of {', '.join(allowed)}; "
            f"got {scaling_type!r}."
        )


@dataclass(frozen=True)
class ContinuousParameter:
    """A float hyperparameter between ``min_value`` and ``max_value`` (both included)."""

    min_value: float
    max_value: float
    scaling_type: str = "Auto"

    def check(self, name: str, *, where: str = "ranges") -> None:
        """Raise ConfigError naming ``name`` when the range is invalid for it."""
        _check_scaling(self.scaling_type, where=where, name=name, allowed=SCALING_TYPES)
        lo = _number(self.min_value, name=name, field="MinValue", kind=float, where=where)
        hi = _number(self.max_value, name=name, field="MaxValue", kind=float, where=where)
        _check_bounds(name, lo, hi, self.scaling_type, where=where)

    def scale(self) -> str:
        return _resolve_auto(self.scaling_type, float(self.min_value), float(self.max_value))

    def to_json(self, name: str) -> dict[str, str]:
        return {"Name": name, "MinValue": str(self.min_value), "MaxValue": str(self.max_value),
                "ScalingType": self.scaling_type}


@dataclass(frozen=True)
class IntegerParameter:
    """An int hyperparameter between ``min_value`` and ``max_value`` (both included)."""

    min_value: int
    max_value: int
    scaling_type: str = "Auto"

    def check(self, name: str, *, where: str = "ranges") -> None:
        _check_scaling(self.scaling_type, where=where, name=name,
                       allowed=("Auto", "Linear", "Logarithmic"))
        lo = _number(self.min_value, name=name, field="MinValue", kind=int, where=where)
        hi = _number(self.max_value, name=name, field="MaxValue", kind=int, where=where)
        _check_bounds(name, lo, hi, self.scaling_type, where=where)

    def scale(self) -> str:
        return _resolve_auto(self.scaling_type, float(self.min_value), float(self.max_value))

    def to_json(self, name: str) -> dict[str, str]:
        return {"Name": name, "MinValue": str(int(self.min_value)),
                "MaxValue": str(int(self.max_value)), "ScalingType": self.scaling_type}


@dataclass(frozen=True)
class CategoricalParameter:
    """A hyperparameter taking one of ``values`` (strings as SageMaker writes them, or values)."""

    values: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        if isinstance(values, (str, bytes)):
            values = [values]
        object.__setattr__(self, "values", tuple(values))

    def check(self, name: str, *, where: str = "ranges") -> None:
        if not self.values:
            raise ConfigError(f"{where}: Values of {name!r} must list at least one value.")
        labels = [str(v) for v in self.values]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}: Values of {name!r} repeat a value: {labels}.")
        param = HYPERPARAMETERS[name]
        for value in self.values:
            try:
                parsed = _parse(param, value)
            except ConfigError as exc:
                raise ConfigError(f"{where}: value {value!r} of {name!r}: {exc}") from None
            if parsed is None or not param.check(parsed):
                raise ConfigError(f"{where}: value {value!r} of {name!r}: {name} must be "
                                  f"{param.rule}.")

    def parsed_values(self, name: str) -> list[Any]:
        """Return the values as the hyperparameter's Python type."""
        return [_parse(HYPERPARAMETERS[name], v) for v in self.values]

    def to_json(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Values": [str(v).lower() if isinstance(v, bool) else str(v)
                                         for v in self.values]}


Parameter = ContinuousParameter | IntegerParameter | CategoricalParameter


def _resolve_auto(scaling_type: str, lo: float, hi: float) -> str:
    if scaling_type != "Auto":
        return scaling_type
    return "Logarithmic" if lo > 0 and hi / lo >= 100 else "Linear"


def _check_bounds(name: str, lo: float, hi: float, scaling_type: str, *, where: str) -> None:
    if lo > hi:
        raise ConfigError(f"{where}: MinValue of {name!r} ({lo:g}) is greater than its MaxValue "
                          f"({hi:g}); swap them.")
    param = HYPERPARAMETERS[name]
    for field, value in (("MinValue", lo), ("MaxValue", hi)):
        typed = int(value) if param.kind is int else value
        if not param.check(typed):
            raise ConfigError(f"{where}: {field} of {name!r} is {value:g} but {name} must be "
                              f"{param.rule}.")
    if scaling_type == "Logarithmic" and lo <= 0:
        raise ConfigError(
            f"{where}: {name!r} uses ScalingType Logarithmic but its range [{lo:g}, {hi:g}] "
            "includes values <= 0; raise MinValue above 0 or use Linear."
        )
    if scaling_type == "ReverseLogarithmic" and not (0 <= lo and hi < 1):
        raise ConfigError(
            f"{where}: {name!r} uses ScalingType ReverseLogarithmic, which needs "
            f"0 <= MinValue <= MaxValue < 1; got [{lo:g}, {hi:g}]."
        )


def check_ranges(ranges: Mapping[str, Parameter], *, where: str = "ranges") -> None:
    """Validate every range against the hyperparameter it names; raise ConfigError.

    Checks that the name is a known, tunable hyperparameter, that the range kind fits its
    type (continuous for floats, integer for ints, categorical for anything), and the bounds.
    """
    if not ranges:
        raise ConfigError(f"{where}: no hyperparameter ranges given; name at least one.")
    for name, rng in ranges.items():
        param = HYPERPARAMETERS.get(name)
        if param is None:
            known = ", ".join(sorted(HYPERPARAMETERS))
            raise ConfigError(f"{where}: unknown hyperparameter {name!r}; known: {known}.")
        if name in UNTUNABLE:
            raise ConfigError(f"{where}: {name!r} cannot be tuned; set it as a fixed "
                              "hyperparameter instead.")
        if isinstance(rng, ContinuousParameter) and param.kind is not float:
            use = "IntegerParameterRanges" if param.kind is int else \
                "CategoricalParameterRanges"
            raise ConfigError(
                f"{where}: {name!r} is {'an int' if param.kind is int else 'not a float'}; "
                f"use {use} for it, not ContinuousParameterRanges."
            )
        if isinstance(rng, IntegerParameter) and param.kind is not int:
            use = "ContinuousParameterRanges" if param.kind is float else \
                "CategoricalParameterRanges"
            raise ConfigError(
                f"{where}: {name!r} is not an int; use {use} for it, not "
                "IntegerParameterRanges."
            )
        if not isinstance(rng, (ContinuousParameter, IntegerParameter, CategoricalParameter)):
            raise ConfigError(f"{where}: the range of {name!r} must be a ContinuousParameter, "
                              f"IntegerParameter or CategoricalParameter; got {rng!r}.")
        rng.check(name, where=where)


def parse_ranges(document: Mapping[str, Any], *, where: str = "ranges") -> dict[str, Parameter]:
    """Turn SageMaker's ``ParameterRanges`` JSON object into ranges by name, validated.

    Also accepts the object wrapped as ``{"ParameterRanges": {...}}`` (as in a
    ``HyperParameterTuningJobConfig``).

    Raises
    ------
    ConfigError
        Naming ``where``, the range list, the entry number and what is wrong.
    """
    if isinstance(document, Mapping) and set(document) == {"ParameterRanges"}:
        document = document["ParameterRanges"]
    if not isinstance(document, Mapping):
        raise ConfigError(f"{where}: expected a JSON object with ContinuousParameterRanges, "
                          f"IntegerParameterRanges or CategoricalParameterRanges; got "
                          f"{type(document).__name__}.")
    unknown = [k for k in document if k not in _KINDS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected "
                          f"{', '.join(_KINDS)}.")
    ranges: dict[str, Parameter] = {}
    for key, kind in _KINDS.items():
        entries = document.get(key, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: {key} must be a list; got {type(entries).__name__}.")
        for i, entry in enumerate(entries):
            at = f"{where}, {key}[{i}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{at}: expected an object; got {entry!r}.")
            allowed = {"Name", "Values"} if kind == "categorical" else \
                {"Name", "MinValue", "MaxValue", "ScalingType"}
            extra = sorted(set(entry) - allowed)
            if extra:
                raise ConfigError(f"{at}: unknown field {extra[0]!r}; expected "
                                  f"{', '.join(sorted(allowed))}.")
            name = entry.get("Name")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{at}: Name is missing or not a string.")
            if name in ranges:
                raise ConfigError(f"{at}: {name!r} has more than one range.")
            rng: Parameter
            if kind == "categorical":
                values = entry.get("Values")
                if not isinstance(values, list):
                    raise ConfigError(f"{at}: Values of {name!r} must be a list.")
                rng = CategoricalParameter(values)
            else:
                for field in ("MinValue", "MaxValue"):
                    if field not in entry:
                        raise ConfigError(f"{at}: {field} of {name!r} is missing.")
                num = int if kind == "integer" else float
                lo = _number(entry["MinValue"], name=name, field="MinValue", kind=num, where=at)
                hi = _number(entry["MaxValue"], name=name, field="MaxValue", kind=num, where=at)
                scaling = entry.get("ScalingType", "Auto")
                if kind == "integer":
                    rng = IntegerParameter(int(lo), int(hi), scaling)
                else:
                    rng = ContinuousParameter(lo, hi, scaling)
            check_ranges({name: rng}, where=at)
            ranges[name] = rng
    if not ranges:  # each entry was checked above
        raise ConfigError(f"{where}: no hyperparameter ranges given; name at least one.")
    return ranges


def read_ranges(path: str | os.PathLike[str]) -> dict[str, Parameter]:
    """Read and validate a SageMaker ``ParameterRanges`` JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the ranges file {p}: {exc.strerror or exc}.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}.") from None
    return parse_ranges(document, where=str(p))


def ranges_to_json(ranges: Mapping[str, Parameter]) -> dict[str, list[dict[str, Any]]]:
    """Return ``ranges`` in SageMaker's ``ParameterRanges`` shape (inverse of parse_ranges)."""
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in _KINDS}
    for name, rng in ranges.items():
        key = ("ContinuousParameterRanges" if isinstance(rng, ContinuousParameter) else
               "IntegerParameterRanges" if isinstance(rng, IntegerParameter) else
               "CategoricalParameterRanges")
        out[key].append(rng.to_json(name))
    return {k: v for k, v in out.items() if v}


def suggest(trial: Any, name: str, rng: Parameter) -> Any:
    """Draw ``name``'s value from an Optuna trial, honouring the scaling type.

    ReverseLogarithmic draws ``u = 1 - x`` log-uniformly in ``[1 - max, 1 - min]`` under the
    Optuna name ``<name>__reverse_log``. Returns the hyperparameter's Python value.
    """
    if isinstance(rng, CategoricalParameter):
        labels = [str(v) for v in rng.values]
        choice = trial.suggest_categorical(name, labels)
        return rng.parsed_values(name)[labels.index(choice)]
    scale = rng.scale()
    lo, hi = rng.min_value, rng.max_value
    if isinstance(rng, IntegerParameter):
        return int(trial.suggest_int(name, int(lo), int(hi), log=scale == "Logarithmic"))
    if scale == "ReverseLogarithmic":
        u = trial.suggest_float(f"{name}__reverse_log", 1.0 - float(hi), 1.0 - float(lo),
                                log=True) if hi > lo else 1.0 - float(lo)
        return 1.0 - u
    return float(trial.suggest_float(name, float(lo), float(hi), log=scale == "Logarithmic"))
