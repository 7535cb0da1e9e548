"""Hyperparameter tuning jobs: trials of FM training against an objective metric, over Optuna.

A :class:`Tuner` runs up to ``max_jobs`` trials, ``max_parallel_jobs`` at a time. Each trial
is a training job in the registry (``<tuning-job>-<NNN>``) whose hyperparameters are the
fixed ones overlaid with values drawn from the ranges:

- ``strategy='bayesian'``: Optuna's TPE sampler;
- ``strategy='random'``: uniform sampling (in each range's scale);
- ``strategy='hyperband'``: TPE plus Optuna's Hyperband pruner on the per-epoch objective
  (computed on the validation channel, or on the test channel when there is none); pruned
  trials end ``Stopped`` with the reason.

Everything is validated before the first trial: ranges, the fixed hyperparameters (and
every range bound combined with them), the objective (the predictor type must emit it and its
channel must be given), the direction and the name. A trial that fails is recorded
``Failed`` and the job goes on. The best trial's model is kept (the others are deleted unless
``keep_models='all'``) and registered as a model named after the tuning job.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fmkit.config import HYPERPARAMETERS, FMConfig
from fmkit.errors import ConfigError, DataError
from fmkit.metrics import DIRECTIONS, metric_names
from fmkit.registry.records import COMPLETED, FAILED, STOPPED, check_tuning_job_name
from fmkit.sparse import SparseBatch
from fmkit.tuning.presets import fm_preset_ranges
from fmkit.tuning.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Parameter,
    check_ranges,
    ranges_to_json,
    suggest,
)
from fmkit.tuning.worker import (
    CONTINUE,
    PRUNE,
    STOP,
    InlineWorker,
    ProcessWorker,
    TrialData,
    TrialOutcome,
    TrialSpec,
)

logger = logging.getLogger(__name__)

STRATEGIES = ("bayesian", "random", "hyperband")
CHANNELS = ("test", "validation", "train")


@dataclass(frozen=True)
class Trial:
    """One finished trial."""

    number: int
    training_job: str
    status: str  # Completed | Stopped | Failed
    hyperparameters: dict[str, Any]  # the tuned values only
    objective_value: float | None
    metrics: dict[str, float]
    seconds: float
    failure_reason: str | None = None
    model_dir: str | None = None


@dataclass
class TuningResult:
    """What :meth:`Tuner.fit` returns."""

    name: str
    objective_metric: str
    direction: str
    status: str
    trials: list[Trial] = field(default_factory=list)
    best_trial: Trial | None = None
    model_name: str | None = None

    @property
    def best_hyperparameters(self) -> dict[str, Any]:
        """The tuned values of the best trial (empty when no trial produced a value)."""
        return dict(self.best_trial.hyperparameters) if self.best_trial else {}

    @property
    def best_value(self) -> float | None:
        return self.best_trial.objective_value if self.best_trial else None

    @property
    def best_model_dir(self) -> str | None:
        return self.best_trial.model_dir if self.best_trial else None


def parse_objective(objective: str, predictor_type: str) -> tuple[str, str]:
    """Split ``'test:rmse'`` into (channel, metric) and check the predictor type emits it."""
    channel, sep, metric = str(objective).partition(":")
    emitted = metric_names(predictor_type)
    allowed = ", ".join(f"test:{m}" for m in emitted)
    if not sep or channel not in CHANNELS:
        raise ConfigError(
            f"objective metric {objective!r} is not '<channel>:<metric>' with channel test, "
            f"validation or train; for predictor_type={predictor_type!r} use one of {allowed}."
        )
    if metric not in DIRECTIONS:
        raise ConfigError(f"unknown objective metric {objective!r}; for predictor_type="
                          f"{predictor_type!r} use one of {allowed}.")
    if metric not in emitted:
        raise ConfigError(f"objective metric {objective!r} is not emitted by predictor_type="
                          f"{predictor_type!r}; it emits {allowed}.")
    return channel, metric


def resolve_direction(metric: str, direction: str | None) -> str:
    """Return 'minimize' or 'maximize': ``direction`` checked, or the metric's own."""
    if direction is None:
        return DIRECTIONS[metric]
    d = str(direction).strip().lower()
    if d not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize'; got {direction!r}.")
    return d


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
        base_config = FMConfig.from_values(fixed, defaults=defaults)  # type: ignore[arg-type]
        predictor_type = base_config.predictor_type
        ranges = dict(self.ranges) if self.ranges is not None else \
            fm_preset_ranges(exclude=fixed)
        check_ranges(ranges)
        both = sorted(set(ranges) & set(fixed))
        if both:
            raise ConfigError(f"hyperparameter {both[0]!r} is both fixed and given a range; "
                              "remove one of them.")
        for rname, rng in ranges.items():  # every bound must make a valid job
            for point in _range_points(rng):
                try:
                    FMConfig.from_values({**fixed, rname: point},
                                         defaults=defaults)  # type: ignore[arg-type]
                except ConfigError as exc:
                    raise ConfigError(f"ranges: {rname}={point!r} with the fixed "
                                      f"hyperparameters is not a valid job: {exc}") from None
        objective = self.objective_metric_name or (
            "test:rmse" if predictor_type == "regressor"
            else "test:binary_classification_accuracy")
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
            ``test:*`` objectives), ``validation`` after every epoch.
        vocabulary : Vocabulary or dict, optional
            Stored with every trial's model.
        channels : mapping, optional
            How the channels were given (paths), recorded in the registry.

        Raises
        ------
        ConfigError, DataError
            Before any trial runs, for any invalid setting.
        """
        import optuna

        from fmkit.registry import Registry

        plan = self._validated(train, test, validation)
        registry = self.registry if self.registry is not None else Registry()
        if self.name is not None and registry.tuning.exists(self.name):
            raise ConfigError(f"a tuning job named {self.name!r} already exists; choose another "
                              "name.")
        if self.name is not None and self._model_exists(registry, self.name):
            raise ConfigError(f"a model named {self.name!r} already exists; choose another "
                              "tuning job name.")
        direction = plan["direction"]
        pruning = plan["strategy"] == "hyperband" or plan["early"] == "Auto"
        per_epoch = validation if validation is not None else (test if pruning else None)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if plan["strategy"] == "random":
            sampler: Any = optuna.samplers.RandomSampler(seed=self.seed)
        else:
            with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna
                warnings.simplefilter("ignore")
                sampler = optuna.samplers.TPESampler(
                    seed=self.seed, n_startup_trials=min(10, max(2, self.max_jobs // 3)),
                    multivariate=True)
        if plan["strategy"] == "hyperband":
            pruner: Any = optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=max(1, plan["epochs"]), reduction_factor=3)
        elif plan["early"] == "Auto":
            pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        else:
            pruner = optuna.pruners.NopPruner()
        study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
        if self.include_defaults:
            first = default_point(plan["ranges"], plan["base_config"])
            if first:
                study.enqueue_trial(first)
        record = registry.tuning.create(
            self.name, objective_metric=plan["objective"], direction=direction,
            strategy=plan["strategy"], ranges=ranges_to_json(plan["ranges"]),
            static_hyperparameters=plan["fixed"], channels=dict(channels or {}),
            max_jobs=self.max_jobs, max_parallel_jobs=self.max_parallel_jobs,
        )
        name = record.name
        logger.info("tuning job %s: %d trials (%d at a time), %s %s, strategy %s", name,
                    self.max_jobs, self.max_parallel_jobs, direction, plan["objective"],
                    plan["strategy"])
        run = _Run(self, plan, registry, study, name, per_epoch, record.channels)
        data = TrialData(train=train, test=test, validation=per_epoch, vocabulary=vocabulary)
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


class _Run:
    """The state of one running tuning job, shared by its worker threads."""

    def __init__(self, tuner: Tuner, plan: dict[str, Any], registry: Any, study: Any,
                 name: str, per_epoch: Any, channels: dict[str, Any]) -> None:
        self.tuner = tuner
        self.plan = plan
        self.registry = registry
        self.study = study
        self.name = name
        self.channels = channels  # the tuning job's, recorded on every trial
        self.per_epoch_metric = (f"validation:{plan['metric']}"
                                 if per_epoch is not None else None)
        self.lock = threading.Lock()
        self.next_number = 0
        self.trials: list[Trial] = []
        self.best: Trial | None = None
        self.started = time.monotonic()
        self.deadline = (self.started + tuner.max_run_seconds
                         if tuner.max_run_seconds is not None else None)
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None

    # --------------------------------------------------------------- scheduling
    def execute(self, data: TrialData, *, processes: bool) -> None:
        n = self.tuner.max_parallel_jobs
        threads = max(1, (os.cpu_count() or 1) // n)
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="fmkit-tune") as pool:
            futures = [pool.submit(self._slot, data, processes, threads) for _ in range(n)]
            try:
                while not all(f.done() for f in futures):
                    time.sleep(0.2)
                    self._check_stop()
            except KeyboardInterrupt:
                # running trials stop after their current epoch and keep their models
                self._request_stop("interrupted (Ctrl-C)")
            for f in futures:
                f.result()

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            return
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self._request_stop(f"max_run_seconds={self.tuner.max_run_seconds:g} reached")
        elif self.registry.tuning.stop_requested(self.name):
            self._request_stop("stopped by user")

    def _request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()
            logger.info("tuning job %s stopping: %s", self.name, reason)

    def _slot(self, data: TrialData, processes: bool, threads: int) -> None:
        worker: Any = None
        if not processes:  # trials in this thread: its numba CPU steps get its share
            from fmkit.engine.cpu_kernel import limit_threads

            limit_threads(threads)
        try:
            while True:
                self._check_stop()
                with self.lock:
                    if self.stop_event.is_set() or self.next_number >= self.tuner.max_jobs:
                        return
                    number = self.next_number
                    self.next_number += 1
                    trial = self.study.ask()
                    values = {k: suggest(trial, k, r) for k, r in self.plan["ranges"].items()}
                if worker is None or not worker.alive:
                    if worker is not None:
                        worker.close()
                    worker = ProcessWorker(data, torch_threads=threads) if processes \
                        else InlineWorker(data)
                self._run_trial(worker, trial, number, values)
        finally:
            if worker is not None:
                worker.close()

    # --------------------------------------------------------------- one trial
    def _run_trial(self, worker: Any, trial: Any, number: int, values: dict[str, Any]) -> None:
        registry = self.registry
        job_name = f"{self.name}-{number + 1:03d}"
        job_dir = registry.job_dir(job_name)
        job_dir.mkdir(parents=True, exist_ok=True)
        model_dir = str(job_dir / "model")
        log_file = str(job_dir / "train.log") if isinstance(worker, ProcessWorker) else None
        hyperparameters = {**self.plan["fixed"], **values}
        registry.jobs.create(job_name, hyperparameters=hyperparameters,
                             channels=self.channels,
                             model_dir=model_dir, log_file=log_file, tuning_job=self.name,
                             trial_number=number + 1)
        remaining = None
        if self.deadline is not None:
            remaining = max(0.01, self.deadline - time.monotonic())
        spec = TrialSpec(number=number + 1, job_name=job_name, hyperparameters=hyperparameters,
                         model_dir=model_dir, log_file=log_file, max_run_seconds=remaining,
                         defaults=self.plan["defaults"])
        baseline = self.tuner.include_defaults and number == 0
        pretty = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        logger.info("trial %s: %s", job_name, pretty)

        def on_epoch(epoch: int, logs: dict[str, float]) -> str:
            registry.jobs.log_epoch(job_name, epoch, logs)
            if self.per_epoch_metric is not None and self.per_epoch_metric in logs:
                value = logs[self.per_epoch_metric]
                if math.isfinite(value):
                    with self.lock:
                        trial.report(value, epoch)
                        # the baseline trial (include_defaults) always runs in full
                        if not baseline and trial.should_prune():
                            return PRUNE
            if self.stop_event.is_set() or registry.jobs.stop_requested(job_name):
                return STOP
            return CONTINUE

        outcome = worker.run(spec, on_epoch)
        self._record(trial, number, job_name, values, outcome, model_dir)

    def _record(self, trial: Any, number: int, job_name: str, values: dict[str, Any],
                outcome: TrialOutcome, model_dir: str) -> None:
        import optuna

        objective = self.plan["objective"]
        value = outcome.metrics.get(objective)
        reason = outcome.reason
        status = {"Completed": COMPLETED, "Stopped": STOPPED, "Pruned": STOPPED}.get(
            outcome.status, FAILED)
        if status != FAILED and outcome.status != "Pruned" and (
                value is None or not math.isfinite(value)):
            status, reason = FAILED, (f"the objective {objective} was not produced "
                                      f"(got {value!r})")
            value = None
        if outcome.status == "Pruned":
            value = None
        if status == STOPPED and outcome.status != "Pruned" and (
                not reason or reason == "stopped by a callback"):
            reason = ("stopped by user" if self.registry.jobs.stop_requested(job_name)
                      else self.stop_reason or reason)
        self.registry.jobs.finish(
            job_name, status=status, metrics=outcome.metrics,
            artifact=outcome.artifact if status != FAILED else None, failure_reason=reason,
            best_epoch=outcome.best_epoch, objective_value=value)
        result = Trial(number=number + 1, training_job=job_name, status=status,
                       hyperparameters=dict(values), objective_value=value,
                       metrics=dict(outcome.metrics), seconds=outcome.seconds,
                       failure_reason=reason,
                       model_dir=outcome.artifact if status != FAILED else None)
        with self.lock:
            if status == COMPLETED:
                self.study.tell(trial, value)
            elif outcome.status == "Pruned" or status == STOPPED:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.trials.append(result)
            drop = None
            if value is not None and result.model_dir is not None and self._better(result):
                drop, self.best = self.best, result
                self.registry.tuning.set_best(self.name, job_name, value)
            elif result.model_dir is not None:
                drop = result
            if drop is not None and drop.model_dir and self.tuner.keep_models == "best":
                shutil.rmtree(drop.model_dir, ignore_errors=True)
                self.registry.jobs.clear_artifact(drop.training_job)
        shown = "-" if value is None else f"{value:.6g}"
        logger.info("trial %s %s: %s=%s (%.1f s)%s", job_name, status, objective, shown,
                    outcome.seconds, f" [{reason}]" if reason else "")

    def _better(self, trial: Trial) -> bool:
        if self.best is None or self.best.objective_value is None:
            return True
        assert trial.objective_value is not None
        if self.plan["direction"] == "maximize":
            return trial.objective_value > self.best.objective_value
        return trial.objective_value < self.best.objective_value

    # --------------------------------------------------------------- end
    def finish(self) -> TuningResult:
        registry = self.registry
        self.trials.sort(key=lambda t: t.number)
        status = STOPPED if self.stop_event.is_set() else COMPLETED
        reason = self.stop_reason
        model_name = None
        if self.best is None:
            if status == COMPLETED:
                status = FAILED
                reason = "no trial produced the objective metric; see the trials' failure reasons"
        else:
            model = registry.register_model(
                self.name, self.best.model_dir or "", job_name=self.best.training_job,
                metrics=self.best.metrics, predictor_type=self.plan["predictor_type"])
            model_name = model.name
        registry.tuning.finish(self.name, status=status, failure_reason=reason)
        logger.info("tuning job %s %s; best: %s", self.name, status,
                    "none" if self.best is None else
                    f"{self.best.training_job} {self.plan['objective']}="
                    f"{self.best.objective_value:.6g}")
        return TuningResult(name=self.name, objective_metric=self.plan["objective"],
                            direction=self.plan["direction"], status=status,
                            trials=list(self.trials), best_trial=self.best,
                            model_name=model_name)


def default_point(ranges: Mapping[str, Parameter], config: FMConfig) -> dict[str, Any]:
    """Return Optuna parameters placing each range at ``config``'s value, where it fits."""
    point: dict[str, Any] = {}
    for name, rng in ranges.items():
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(rng, CategoricalParameter):
            labels = [str(v) for v in rng.values]
            parsed = rng.parsed_values(name)
            if value in parsed:
                point[name] = labels[parsed.index(value)]
            continue
        if not rng.min_value <= value <= rng.max_value:
            continue
        if isinstance(rng, ContinuousParameter) and rng.scale() == "ReverseLogarithmic":
            point[f"{name}__reverse_log"] = 1.0 - float(value)
        else:
            point[name] = value
    return point


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


__all__ = [
    "STRATEGIES",
    "CategoricalParameter",
    "ContinuousParameter",
    "IntegerParameter",
    "Trial",
    "Tuner",
    "TuningResult",
    "parse_objective",
    "resolve_direction",
]
