"""Hyperparameters: SageMaker's names, defaults and validation, plus fmkit's additions.

One table, :data:`HYPERPARAMETERS`, declares every hyperparameter once: its type, the
values it allows, SageMaker's default and fmkit's recommended default. :class:`FMConfig`
is the frozen, validated result of overlaying user values (Python values or SageMaker's
all-string ``hyperparameters.json``) on one of the two default sets.

- ``defaults="sagemaker"``: SageMaker FM's documented defaults; ``num_factors`` and
  ``predictor_type`` are required. Used whenever a SageMaker hyperparameters.json is given
  and inside the training container.
- ``defaults="fmkit"``: fmkit's recommended settings, tuned on MovieLens 100K (ua split);
  only ``predictor_type`` is required. Some differ by predictor type (squared and logistic
  losses have gradients of different scale): those defaults are ``{type: value}`` maps.

``feature_dim`` may be left out in both: the trainer then takes it from the data.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fmkit.errors import ConfigError

logger = logging.getLogger(__name__)

DefaultsName = Literal["fmkit", "sagemaker"]
PREDICTOR_TYPES = ("binary_classifier", "regressor")
INIT_METHODS = ("normal", "uniform", "constant", "mean")
OPTIMIZERS = ("adam", "adagrad", "sgd")
SOLVERS = ("sgd", "mcmc", "als")
INTERACTIONS = ("all", "user_item")  # what a model has; "auto" picks one at fit time
DEVICES = ("auto", "cpu", "cuda")
# default epochs of the Bayesian solvers, used when epochs is not given: 200 Gibbs sweeps
# (the libFM/myFM benchmarks' budget), 15 ALS passes
SOLVER_EPOCHS = {"mcmc": 200, "als": 15}
GROUPS = ("bias", "linear", "factors")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: type, rule and the two defaults (``None`` = unset)."""

    name: str
    kind: type
    rule: str  # human text of what is allowed, used in error messages
    check: Callable[[Any], bool]
    sagemaker: Any = None
    fmkit: Any = None  # a value, or {predictor_type: value} where the best default differs
    required: bool = False  # required under SageMaker defaults
    sagemaker_native: bool = True  # False for fmkit's own additions


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _any(v: Any) -> bool:
    return True


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: v in choices


def _p(name: str, kind: type, rule: str, check: Callable[[Any], bool], **kw: Any) -> Param:
    return Param(name, kind, rule, check, **kw)


_PARAMS: list[Param] = [
    _p("feature_dim", int, "an int >= 1", _positive, required=True),
    _p("num_factors", int, "an int >= 1", _positive, required=True,
       fmkit={"binary_classifier": 32, "regressor": 64}),
    _p("predictor_type", str, "'binary_classifier' or 'regressor'",
       _one_of(*PREDICTOR_TYPES), required=True),
    _p("epochs", int, "an int >= 1", _positive, sagemaker=1,
       fmkit={"binary_classifier": 25, "regressor": 22}),
    _p("mini_batch_size", int, "an int >= 1", _positive, sagemaker=1000, fmkit=256),
    _p("bias_lr", float, "a float >= 0", _non_negative, sagemaker=0.1,
       fmkit={"binary_classifier": 0.05, "regressor": 0.1}),
    _p("linear_lr", float, "a float >= 0", _non_negative, sagemaker=0.001,
       fmkit={"binary_classifier": 0.05, "regressor": 0.1}),
    _p("factors_lr", float, "a float >= 0", _non_negative, sagemaker=0.0001,
       fmkit={"binary_classifier": 0.05, "regressor": 0.1}),
    _p("bias_wd", float, "a float >= 0", _non_negative, sagemaker=0.01, fmkit=0.0),
    _p("linear_wd", float, "a float >= 0", _non_negative, sagemaker=0.001,
       fmkit={"binary_classifier": 0.0003, "regressor": 0.0005}),
    _p("factors_wd", float, "a float >= 0", _non_negative, sagemaker=0.00001,
       fmkit={"binary_classifier": 0.0003, "regressor": 0.0006}),
    *[
        q
        for g, sigma in (("bias", 0.01), ("linear", 0.01), ("factors", 0.001))
        for q in (
            _p(f"{g}_init_method", str,
               "'normal', 'uniform' or 'constant'" + (" (or fmkit's 'mean')" if g == "bias" else ""),
               _one_of(*(INIT_METHODS if g == "bias" else INIT_METHODS[:3])),
               sagemaker="normal", fmkit="normal"),
            _p(f"{g}_init_sigma", float, "a float >= 0", _non_negative,
               sagemaker=sigma, fmkit=sigma if g != "factors" else 0.05),
            _p(f"{g}_init_scale", float, "a float >= 0", _non_negative),
            _p(f"{g}_init_value", float, "a finite float", math.isfinite),
        )
    ],
    _p("clip_gradient", float, "a finite float", math.isfinite),
    _p("eps", float, "a finite float", math.isfinite),
    _p("rescale_grad", float, "a finite float", math.isfinite),
    _p("use_bias", bool, "'true' or 'false'", _any, sagemaker=True, fmkit=True),
    _p("use_linear", bool, "'true' or 'false'", _any, sagemaker=True, fmkit=True),
    _p("batch_metrics_publish_interval", int, "an int >= 1", _positive,
       sagemaker=500, fmkit=500),
    # fmkit's own additions
    _p("seed", int, "an int >= 0", _non_negative, sagemaker=0, fmkit=0,
       sagemaker_native=False),
    _p("device", str, "'auto', 'cpu' or 'cuda'", _one_of(*DEVICES), sagemaker="auto",
       fmkit="auto", sagemaker_native=False),
    _p("shuffle", bool, "'true' or 'false'", _any, sagemaker=False, fmkit=True,
       sagemaker_native=False),
    _p("early_stopping_patience", int, "an int >= 0 (0 turns it off)", _non_negative,
       sagemaker=0, fmkit=0, sagemaker_native=False),
    _p("optimizer", str, "'adam', 'adagrad' or 'sgd'", _one_of(*OPTIMIZERS),
       sagemaker="adam", fmkit="adagrad", sagemaker_native=False),
    _p("solver", str, "'sgd', 'mcmc' or 'als'", _one_of(*SOLVERS), sagemaker="sgd",
       fmkit="sgd", sagemaker_native=False),
    _p("burn_in", int, "an int >= 0", _non_negative, sagemaker=None, fmkit=None,
       sagemaker_native=False),
    _p("keep_samples", int, "an int >= 1", _positive, sagemaker=None, fmkit=None,
       sagemaker_native=False),
    _p("interactions", str, "'all', 'user_item' or 'auto'", _one_of(*INTERACTIONS, "auto"),
       sagemaker="all", fmkit="auto", sagemaker_native=False),
]

HYPERPARAMETERS: dict[str, Param] = {p.name: p for p in _PARAMS}
"""Every hyperparameter fmkit accepts, by SageMaker name."""


def _parse(param: Param, value: Any) -> Any:
    """Turn a Python value or a SageMaker string into ``param.kind``; raise ConfigError."""
    bad = ConfigError(f"{param.name} must be {param.rule}; got {value!r}.")
    if value is None:
        return None
    kind = param.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad
    if kind is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(f) or f != int(f):
            raise bad
        return int(f)
    if kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if not isinstance(value, str):
        raise bad
    return value.strip()


@dataclass(frozen=True)
class FMConfig:
    """The merged, validated hyperparameters of one training job.

    Build it with :meth:`from_values`; the field names are SageMaker's.
    """

    predictor_type: str
    num_factors: int
    feature_dim: int | None = None
    epochs: int = 1
    mini_batch_size: int = 1000
    bias_lr: float = 0.1
    linear_lr: float = 0.001
    factors_lr: float = 0.0001
    bias_wd: float = 0.01
    linear_wd: float = 0.001
    factors_wd: float = 0.00001
    bias_init_method: str = "normal"
    bias_init_sigma: float = 0.01
    bias_init_scale: float | None = None
    bias_init_value: float | None = None
    linear_init_method: str = "normal"
    linear_init_sigma: float = 0.01
    linear_init_scale: float | None = None
    linear_init_value: float | None = None
    factors_init_method: str = "normal"
    factors_init_sigma: float = 0.001
    factors_init_scale: float | None = None
    factors_init_value: float | None = None
    clip_gradient: float | None = None
    eps: float | None = None
    rescale_grad: float | None = None
    use_bias: bool = True
    use_linear: bool = True
    batch_metrics_publish_interval: int = 500
    seed: int = 0
    device: str = "auto"
    shuffle: bool = False
    early_stopping_patience: int = 0
    optimizer: str = "adam"
    solver: str = "sgd"
    burn_in: int | None = None
    keep_samples: int | None = None
    interactions: str = "all"

    @classmethod
    def from_values(
        cls,
        values: Mapping[str, Any] | None = None,
        *,
        defaults: DefaultsName = "fmkit",
        strict: bool = True,
    ) -> FMConfig:
        """Overlay ``values`` on a default set and validate the result.

        Parameters
        ----------
        values : mapping of str to value, optional
            Hyperparameters by SageMaker name; values may be Python values or strings
            (``"64"``, ``"64.0"``, ``"1e-05"``, ``"true"``). ``None`` means unset. Keys
            starting with ``_`` (``_tuning_objective_metric``) are ignored with a log line.
        defaults : {'fmkit', 'sagemaker'}, default='fmkit'
            Which default set fills what ``values`` leaves out.
        strict : bool, default=True
            Raise on unknown keys; otherwise ignore them with a log line.

        Raises
        ------
        ConfigError
            One line naming the parameter, the value and what is allowed.
        """
        if defaults not in ("fmkit", "sagemaker"):
            raise ConfigError(f"defaults must be 'fmkit' or 'sagemaker'; got {defaults!r}.")
        merged: dict[str, Any] = {}
        given_type = (values or {}).get("predictor_type")
        predictor_type = given_type.strip() if isinstance(given_type, str) else given_type
        for name, param in HYPERPARAMETERS.items():
            default = param.sagemaker if defaults == "sagemaker" else param.fmkit
            if isinstance(default, dict):
                default = default.get(predictor_type, default["regressor"])
            merged[name] = default
        for key, value in (values or {}).items():
            if key.startswith("_"):
                logger.info("ignoring hyperparameter %s=%r", key, value)
                continue
            param = HYPERPARAMETERS.get(key)
            if param is None:
                if strict:
                    known = ", ".join(sorted(HYPERPARAMETERS))
                    raise ConfigError(f"unknown hyperparameter {key!r}; known: {known}.")
                logger.warning("ignoring unknown hyperparameter %s=%r", key, value)
                continue
            parsed = _parse(param, value)
            if parsed is not None:
                merged[key] = parsed
        if "epochs" not in (values or {}) and merged["solver"] in SOLVER_EPOCHS:
            # epochs count Gibbs sweeps (mcmc) or ALS passes: their defaults differ from SGD's
            merged["epochs"] = SOLVER_EPOCHS[merged["solver"]]
        missing = [
            n
            for n, p in HYPERPARAMETERS.items()
            if p.required and merged[n] is None and n != "feature_dim"
        ]
        if missing:
            names = ", ".join(repr(n) for n in missing)
            raise ConfigError(
                f"No value(s) were specified for {names} which are required hyperparameter(s)."
            )
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every value against its rule and the cross-field rules; raise ConfigError."""
        for name, param in HYPERPARAMETERS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if param.kind is bool:
                ok = isinstance(value, bool)
            elif param.kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif param.kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = ok and not math.isnan(value)
            else:
                ok = isinstance(value, str)
            if not ok or not param.check(value):
                raise ConfigError(f"{name} must be {param.rule}; got {value!r}.")
        for group in GROUPS:
            method = getattr(self, f"{group}_init_method")
            needed = {"uniform": "scale", "constant": "value"}.get(method)
            if needed and getattr(self, f"{group}_init_{needed}") is None:
                raise ConfigError(
                    f"{group}_init_method is {method!r} but {group}_init_{needed} is not set; "
                    f"set {group}_init_{needed} or use {group}_init_method='normal'."
                )
        if self.solver == "als" and self.predictor_type != "regressor":
            raise ConfigError(
                "solver 'als' supports only predictor_type='regressor'; got "
                f"{self.predictor_type!r}. Use solver='mcmc' or 'sgd' for binary_classifier."
            )
        if self.interactions == "user_item" and self.solver == "als":
            raise ConfigError(
                "interactions='user_item' needs solver='sgd' or 'mcmc'; got solver='als'."
            )

    def replace(self, **changes: Any) -> FMConfig:
        """Return a validated copy with ``changes`` applied (values parsed like user input)."""
        parsed = {k: _parse(HYPERPARAMETERS[k], v) if k in HYPERPARAMETERS else v
                  for k, v in changes.items()}
        unknown = [k for k in parsed if k not in HYPERPARAMETERS]
        if unknown:
            raise ConfigError(f"unknown hyperparameter {unknown[0]!r}.")
        config = dataclasses.replace(self, **parsed)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """Return every hyperparameter as a plain JSON-able dict (unset ones as None)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_sagemaker_strings(self) -> dict[str, str]:
        """Return the SageMaker-native hyperparameters that are set, as strings."""
        out: dict[str, str] = {}
        for name, param in HYPERPARAMETERS.items():
            value = getattr(self, name)
            if value is None or not param.sagemaker_native:
                continue
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


def defaults_markdown() -> str:
    """Return the Markdown table of every hyperparameter (docs/hyperparameters.md is this)."""

    def show(value: Any) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {show(v)}" for k, v in value.items())
        if value is None:
            return "—"
        return str(value).lower() if isinstance(value, bool) else str(value)

    lines = ["| name | allowed | SageMaker default | fmkit default | flag |",
             "|---|---|---|---|---|"]
    for p in HYPERPARAMETERS.values():
        name = p.name if p.sagemaker_native else f"{p.name} (fmkit)"
        sm = "required" if p.required and p.sagemaker is None else show(p.sagemaker)
        fk = "from the data" if p.name == "feature_dim" else (
            "required" if p.required and p.fmkit is None else show(p.fmkit))
        lines.append(f"| {name} | {p.rule} | {sm} | {fk} | --{p.name.replace('_', '-')} |")
    return "\n".join(lines) + "\n"
