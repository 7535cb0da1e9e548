"""Hyperparameter tuning jobs: trials of FM training against an objective metric, over Optuna.

A :class:`Tuner` runs up to ``max_jobs`` trials, ``max_parallel_jobs`` at a time. Each trial
is a training job in the registry (``<tuning-job>-<NNN>``) whose hyperparameters are the
fixed ones overlaid with values drawn from the ranges:

- ``strategy='bayesian'``: Optuna's TPE sampler;
- ``strategy='random'``: uniform sampling (in each range's scale);
- ``strategy='hyperband'``: TPE plus Optuna's Hyperband pruner on the per-epoch objective
  (computed on the validation channel, or, without one, on a ``validation_fraction`` of the
  train rows held out of training; never on the test channel); pruned trials end
  ``Stopped`` with the reason.

Everything is validated before the first trial: ranges, the fixed hyperparameters (and
every range bound combined with them), the objective (the predictor type must emit it and its
channel must be given), the direction and the name. A trial that fails is recorded
``Failed`` and the job goes on. The best trial's model is kept (the others are deleted unless
``keep_models='all'``) and registered as a model named after the tuning job.

The parts live beside this module: :mod:`~fmkit.tuning.objective` (objective and direction),
:mod:`~fmkit.tuning.study` (sampler and pruner), :mod:`~fmkit.tuning.holdout` (validation
held out of train), :mod:`~fmkit.tuning.runner` (scheduling and recording trials) and
:mod:`~fmkit.tuning.results`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from fmkit.config import HYPERPARAMETERS, FMConfig
from fmkit.errors import ConfigError, DataError
from fmkit.registry.records import FAILED, STOPPED, check_tuning_job_name
from fmkit.sparse import SparseBatch
from fmkit.tuning.holdout import check_fraction, hold_out
from fmkit.tuning.objective import (
    CHANNELS,
    default_objective,
    parse_objective,
    resolve_direction,
)
from fmkit.tuning.presets import fm_preset_ranges
from fmkit.tuning.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    check_ranges,
    ranges_to_json,
)
from fmkit.tuning.results import Trial, TuningResult
from fmkit.tuning.runner import TuningRun
from fmkit.tuning.study import STRATEGIES, create_study, default_point, needs_per_epoch_values
from fmkit.tuning.worker import TrialData

logger = logging.getLogger(__name__)


def _base_values(base: Any, defaults: str) -> tuple[dict[str, Any], str]:
    """Return (fixed hyperparameters, defaults name) from a dict, FMConfig or estimator."""
    if base is None:
        return {}, defaults
    if isinstance(base, FMConfig):
        values = {k: v for k, v in base.to_dict().items() if v is not None}
        return values, "fmkit"
    if hasattr(base, "get_params") and hasattr(base, "_predictor_type"):
        params = base.get_params()
        values = {k: v for k, v in params.items()
                  if k in HYPERPARAMETERS and v is not None}
        values["predictor_type"] = base._predictor_type
        if params.get("random_state") is not None:
            values["seed"] = int(params["random_state"])
        return values, str(params.get("defaults", "fmkit"))
    if isinstance(base, Mapping):
        return dict(base), defaults
    raise ConfigError("the Tuner's base must be a dict of hyperparameters, an FMConfig or an "
                      f"FMClassifier/FMRegressor; got {type(base).__name__}.")


def _range_points(rng: Parameter) -> list[Any]:
    if isinstance(rng, CategoricalParameter):
        return list(rng.values)
    if isinstance(rng, IntegerParameter):
        return [int(rng.min_value), int(rng.max_value)]
    return [float(rng.min_value), float(rng.max_value)]


class Tuner:
    """Tune FM hyperparameters against an objective metric.

    Parameters
    ----------
    base : dict, FMConfig, FMClassifier or FMRegressor, optional
        The fixed hyperparameters (``predictor_type`` required); SageMaker names, values
        as Python values or strings.
    ranges : mapping of str to ContinuousParameter | IntegerParameter | CategoricalParameter
        What to tune; ``None`` uses :func:`~fmkit.tuning.presets.fm_preset_ranges` minus
        the fixed hyperparameters the caller set explicitly.
    objective_metric_name : str, optional
        ``test:<metric>`` (SageMaker's), ``validation:<metric>`` or ``train:<metric>``;
        default ``test:rmse`` for regressors, ``test:binary_classification_accuracy`` for
        binary classifiers.
    direction : {'minimize', 'maximize'}, optional
        Default: the metric's (rmse, losses minimise; accuracy, F1, AUC maximise).
    strategy : {'bayesian', 'random', 'hyperband'}, default='bayesian'
    max_jobs : int, default=20
        Trials to run.
    max_parallel_jobs : int, default=1
        Trials at once, each in its own worker process (``use_processes``).
    name : str, optional
        Tuning job name (<= 32 characters); default ``tune-MM-DD-HH-MM-SS-mmm``.
    registry : Registry, optional
        Default: ``Registry()`` under FMKIT_HOME.
    max_run_seconds : float, optional
        Wall-time budget of the whole tuning job: running trials stop (keeping their
        models), no new ones start, and the job ends ``Stopped``.
    seed : int, default=0
        Seed of the sampler (trials keep the fixed ``seed`` hyperparameter).
    keep_models : {'best', 'all'}, default='best'
    use_processes : bool, optional
        Run trials in child processes; default: when ``max_parallel_jobs > 1``.
    early_stopping : {'Off', 'Auto'}, default='Off'
        SageMaker's ``TrainingJobEarlyStoppingType``: 'Auto' prunes trials whose per-epoch
        objective falls below the median of earlier trials (bayesian and random).
    defaults : {'fmkit', 'sagemaker'}, default='fmkit'
        Which default set fills the hyperparameters neither fixed nor tuned (for a dict
        ``base``; an estimator brings its own).
    include_defaults : bool, default=False
        Make trial 1 the untuned configuration (the default value of every tuned
        hyperparameter that lies inside its range), so the result is never worse than it;
        that trial is never pruned.
    validation_fraction : float, default=0.1
        When pruning needs per-epoch values (``strategy='hyperband'`` or
        ``early_stopping='Auto'``) and no validation channel is given: the fraction of the
        train rows held out as validation (drawn with ``seed``, the same rows for every
        trial). Trials train on the other rows; ``validation:*`` metrics are computed on the
        held-out rows; ``test:*`` ones only ever on the test channel. Recorded on the tuning
        job (its ``validation`` channel) and on :class:`TuningResult`.

    Examples
    --------
    >>> from fmkit.tuning import Tuner, IntegerParameter
    >>> tuner = Tuner({"predictor_type": "regressor", "epochs": 3},
    ...               {"num_factors": IntegerParameter(2, 16)}, max_jobs=4)
    >>> # result = tuner.fit(train, test); result.best_hyperparameters
    """

    def __init__(
        self,
        base: Any = None,
        ranges: Mapping[str, Parameter] | None = None,
        *,
        objective_metric_name: str | None = None,
        direction: str | None = None,
        strategy: str = "bayesian",
        max_jobs: int = 20,
        max_parallel_jobs: int = 1,
        name: str | None = None,
        registry: Any = None,
        max_run_seconds: float | None = None,
        seed: int = 0,
        keep_models: str = "best",
        use_processes: bool | None = None,
        early_stopping: str = "Off",
        defaults: str = "fmkit",
        include_defaults: bool = False,
        validation_fraction: float = 0.1,
    ) -> None:
        self.base = base
        self.ranges = ranges
        self.objective_metric_name = objective_metric_name
        self.direction = direction
        self.strategy = strategy
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.name = name
        self.registry = registry
        self.max_run_seconds = max_run_seconds
        self.seed = seed
        self.keep_models = keep_models
        self.use_processes = use_processes
        self.early_stopping = early_stopping
        self.defaults = defaults
        self.include_defaults = include_defaults
        #: called with each finished trial that kept a model (a Trial), before the next
        #: one is scheduled; fmkit.jobs.tuning writes SageMaker's model.tar.gz there
        self.on_trial_end: Any = None
        #: the tuning job's record already exists (fmkit.jobs.tuning.start made it and a
        #: detached process runs the job): fit fills it in instead of creating one
        self.adopt_record = False
        self.validation_fraction = validation_fraction

    # ------------------------------------------------------------------ validation
    def check(self, *, has_test: bool = True, has_validation: bool = False) -> dict[str, Any]:
        """Validate every setting without data; return the resolved plan.

        Parameters
        ----------
        has_test, has_validation : bool
            Whether those channels will be given (the objective's channel must be).

        Raises
        ------
        ConfigError
            The first invalid setting: ranges, fixed hyperparameters, objective, direction,
            strategy, counts, budget or name.
        """
        if self.defaults not in ("fmkit", "sagemaker"):
            raise ConfigError(f"defaults must be 'fmkit' or 'sagemaker'; got {self.defaults!r}.")
        fixed, defaults = _base_values(self.base, self.defaults)
        if "predictor_type" not in fixed:
            raise ConfigError("predictor_type must be set among the fixed hyperparameters "
                              "('binary_classifier' or 'regressor').")
        ranges = dict(self.ranges) if self.ranges is not None else \
            fm_preset_ranges(exclude=fixed)
        check_ranges(ranges)
        both = sorted(set(ranges) & set(fixed))
        if both:
            raise ConfigError(f"hyperparameter {both[0]!r} is both fixed and given a range; "
                              "remove one of them.")
        # a tuned hyperparameter SageMaker requires (num_factors) has no default: then the
        # checks take each range's lower bound for it
        lows = {rname: _range_points(rng)[0] for rname, rng in ranges.items()}
        try:
            base_config = FMConfig.from_values(fixed, defaults=defaults)  # type: ignore[arg-type]
            lows = {}
        except ConfigError:
            base_config = FMConfig.from_values({**lows, **fixed},
                                               defaults=defaults)  # type: ignore[arg-type]
        predictor_type = base_config.predictor_type
        for rname, rng in ranges.items():  # every bound must make a valid job
            for point in _range_points(rng):
                try:
                    FMConfig.from_values({**lows, **fixed, rname: point},
                                         defaults=defaults)  # type: ignore[arg-type]
                except ConfigError as exc:
                    raise ConfigError(f"ranges: {rname}={point!r} with the fixed "
                                      f"hyperparameters is not a valid job: {exc}") from None
        objective = self.objective_metric_name or default_objective(predictor_type)
        channel, metric = parse_objective(objective, predictor_type)
        direction = resolve_direction(metric, self.direction)
        strategy = str(self.strategy).strip().lower()
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; "
                              f"got {self.strategy!r}.")
        early = str(self.early_stopping).strip().capitalize()
        if early not in ("Off", "Auto"):
            raise ConfigError(f"early_stopping must be 'Off' or 'Auto'; got "
                              f"{self.early_stopping!r}.")
        for label, value, low in (("max_jobs", self.max_jobs, 1),
                                  ("max_parallel_jobs", self.max_parallel_jobs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{label} must be an int >= {low}; got {value!r}.")
        if self.max_run_seconds is not None and not (
                isinstance(self.max_run_seconds, (int, float)) and self.max_run_seconds > 0):
            raise ConfigError(f"max_run_seconds must be a number > 0; got "
                              f"{self.max_run_seconds!r}.")
        if self.keep_models not in ("best", "all"):
            raise ConfigError(f"keep_models must be 'best' or 'all'; got {self.keep_models!r}.")
        check_fraction(self.validation_fraction)
        if channel == "test" and not has_test:
            raise ConfigError(f"objective {objective!r} needs a test channel; pass test data.")
        if channel == "validation" and not has_validation:
            raise ConfigError(f"objective {objective!r} needs a validation channel.")
        if self.name is not None:
            check_tuning_job_name(self.name)
        return {"fixed": fixed, "defaults": defaults, "ranges": ranges,
                "objective": objective, "channel": channel, "metric": metric,
                "direction": direction, "strategy": strategy, "early": early,
                "epochs": base_config.epochs, "predictor_type": predictor_type,
                "base_config": base_config}

    def _validated(self, train: Any, test: Any, validation: Any) -> dict[str, Any]:
        if not isinstance(train, SparseBatch):
            raise DataError(f"train must be a SparseBatch; got {type(train).__name__}.")
        for label, batch in (("test", test), ("validation", validation)):
            if batch is not None and not isinstance(batch, SparseBatch):
                raise DataError(f"{label} must be a SparseBatch; got {type(batch).__name__}.")
        return self.check(has_test=test is not None, has_validation=validation is not None)

    # ------------------------------------------------------------------ running
    def fit(
        self,
        train: SparseBatch,
        test: SparseBatch | None = None,
        *,
        validation: SparseBatch | None = None,
        vocabulary: Any = None,
        channels: Mapping[str, Any] | None = None,
    ) -> TuningResult:
        """Run the tuning job and return its trials and best trial.

        Parameters
        ----------
        train, test, validation : SparseBatch
            The channels every trial uses; ``test`` is scored after each trial (SageMaker's
            ``test:*`` objectives), ``validation`` after every epoch. Without ``validation``,
            pruning strategies hold ``validation_fraction`` of ``train`` out as validation.
        vocabulary : Vocabulary or dict, optional
            Stored with every trial's model.
        channels : mapping, optional
            How the channels were given (paths), recorded in the registry.

        Raises
        ------
        ConfigError, DataError
            Before any trial runs, for any invalid setting.
        """
        from fmkit.registry import Registry

        plan = self._validated(train, test, validation)
        registry = self.registry if self.registry is not None else Registry()
        adopt = self.adopt_record and self.name is not None \
            and registry.tuning.exists(self.name)
        if self.name is not None and registry.tuning.exists(self.name) and not adopt:
            raise ConfigError(f"a tuning job named {self.name!r} already exists; choose another "
                              "name.")
        if self.name is not None and self._model_exists(registry, self.name):
            raise ConfigError(f"a model named {self.name!r} already exists; choose another "
                              "tuning job name.")
        direction = plan["direction"]
        per_epoch = needs_per_epoch_values(plan["strategy"], plan["early"])
        recorded = dict(channels or {})
        held = None
        if per_epoch and validation is None:  # pruning on the test channel would select on it
            train, validation, held = hold_out(train, self.validation_fraction, self.seed)
            recorded["validation"] = held.describe()
            logger.info("validation for pruning: %s", held.describe())
        study = create_study(strategy=plan["strategy"], early_stopping=plan["early"],
                             direction=direction, seed=self.seed, max_jobs=self.max_jobs,
                             epochs=plan["epochs"])
        if self.include_defaults:
            first = default_point(plan["ranges"], plan["base_config"])
            if first:
                study.enqueue_trial(first)
        if adopt:  # recorded by fmkit.jobs.tuning.start: fill it in
            registry.tuning.set_channels(self.name, recorded)
            record = registry.tuning.get(self.name)
        else:
            record = registry.tuning.create(
                self.name, objective_metric=plan["objective"], direction=direction,
                strategy=plan["strategy"], ranges=ranges_to_json(plan["ranges"]),
                static_hyperparameters=plan["fixed"], channels=recorded,
                max_jobs=self.max_jobs, max_parallel_jobs=self.max_parallel_jobs,
            )
        name = record.name
        logger.info("tuning job %s: %d trials (%d at a time), %s %s, strategy %s", name,
                    self.max_jobs, self.max_parallel_jobs, direction, plan["objective"],
                    plan["strategy"])
        run = TuningRun(self, plan, registry, study, name, validation is not None,
                        record.channels,
                        validation_fraction=None if held is None else held.fraction)
        data = TrialData(train=train, test=test, validation=validation, vocabulary=vocabulary)
        processes = self.use_processes if self.use_processes is not None else \
            self.max_parallel_jobs > 1
        try:
            run.execute(data, processes=processes)
        except BaseException as exc:
            status = STOPPED if isinstance(exc, KeyboardInterrupt) else FAILED
            registry.tuning.finish(name, status=status, failure_reason=f"{type(exc).__name__}: "
                                   f"{exc}")
            raise
        return run.finish()

    @staticmethod
    def _model_exists(registry: Any, name: str) -> bool:
        from fmkit.errors import RegistryError

        try:
            registry.models.get(name)
        except RegistryError:
            return False
        return True


__all__ = [
    "CHANNELS",
    "STRATEGIES",
    "CategoricalParameter",
    "ContinuousParameter",
    "IntegerParameter",
    "Trial",
    "Tuner",
    "TuningResult",
    "default_point",
    "parse_objective",
    "resolve_direction",
]
