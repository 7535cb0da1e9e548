"""Hyperparameter tuning jobs: the service behind ``fmkit tune`` and the local SageMaker
API's CreateHyperParameterTuningJob.

A tuning job reads its channels once (:mod:`fmkit.jobs.channels`), runs its trials with
:class:`fmkit.tuning.Tuner` (each trial a training job in the registry, with
``tuning_job`` set), registers the best trial's model under the tuning job's name and,
with ``trial_output_tarballs``, writes each kept trial's SageMaker ``model.tar.gz`` to
``<prefix>/<trial>/output/model.tar.gz``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmkit.errors import ConfigError, FMError
from fmkit.jobs.channels import CHANNELS, find_vocabulary, normalize_channels, open_channel
from fmkit.jobs.hyperparameters import check_defaults
from fmkit.registry.store import open_registry

if TYPE_CHECKING:
    from fmkit.registry import Registry, TuningJob
    from fmkit.tuning import Tuner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuningRequest:
    """Everything one tuning job needs (SageMaker's HyperParameterTuningJobConfig and
    TrainingJobDefinition, in fmkit's terms)."""

    channels: Mapping[str, Any]
    static_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, Any] | None = None
    objective: str | None = None
    direction: str | None = None
    strategy: str = "bayesian"
    max_jobs: int = 20
    max_parallel_jobs: int = 1
    early_stopping: str = "Off"
    name: str | None = None
    max_run_seconds: float | None = None
    seed: int = 0
    keep_models: str = "best"
    include_defaults: bool = False
    defaults: str = "fmkit"
    validation_fraction: float = 0.1  # held out of train when pruning needs it
    content_type: str | None = None
    vocabulary: str | None = None
    trial_output_tarballs: str | None = None
    source: str = "python"

    def parsed_ranges(self) -> Any:
        """The ranges as Parameter objects (None: the FM preset space)."""
        from fmkit.tuning import parse_ranges

        if self.ranges is None:
            return None
        values = list(self.ranges.values())
        if values and not isinstance(values[0], (list, dict)):
            return dict(self.ranges)  # already Parameter objects
        return parse_ranges(self.ranges)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (:meth:`from_dict` reads it back); ranges as SageMaker's JSON."""
        out = dataclasses.asdict(self)
        out["channels"] = {k: v.to_dict() for k, v in normalize_channels(
            self.channels, content_type=self.content_type).items()}
        if self.ranges is not None and not isinstance(next(iter(self.ranges.values()), []),
                                                      (list, dict)):
            from fmkit.tuning.ranges import ranges_to_json

            out["ranges"] = ranges_to_json(self.ranges)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningRequest:
        """Read :meth:`to_dict`'s form back (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _tuner(request: TuningRequest, registry: Registry | None) -> Tuner:
    from fmkit.tuning import Tuner

    check_defaults(request.defaults)
    specs = normalize_channels(request.channels, content_type=request.content_type)
    tuner = Tuner(dict(request.static_hyperparameters), request.parsed_ranges(),
                  objective_metric_name=request.objective, direction=request.direction,
                  strategy=request.strategy, max_jobs=request.max_jobs,
                  max_parallel_jobs=request.max_parallel_jobs, name=request.name,
                  max_run_seconds=request.max_run_seconds, seed=request.seed,
                  keep_models=request.keep_models, early_stopping=request.early_stopping,
                  defaults=request.defaults, include_defaults=request.include_defaults,
                  validation_fraction=request.validation_fraction,
                  use_processes=True, registry=registry)
    # settings are checked before any data is read, and again with the data in fit()
    tuner.check(has_test="test" in specs, has_validation="validation" in specs)
    return tuner


def validate(request: TuningRequest) -> None:
    """Check a request without reading data.

    Raises
    ------
    ConfigError
        The first invalid setting (ranges, objective, counts, name...).
    """
    _tuner(request, registry=None)


def run(request: TuningRequest, *, registry: Registry | None = None,
        recorded: bool = False) -> TuningJob:
    """Run a tuning job here; return its final :class:`~fmkit.registry.TuningJob`.

    ``recorded``: the job's record was made by :func:`start` (the detached process fills
    it in); otherwise the run creates it.

    Raises
    ------
    FMError
        Any invalid setting, before a trial runs.
    """
    registry = open_registry(registry)
    tuner = _tuner(request, registry)
    tuner.adopt_record = recorded  # start() made the record; this run fills it in
    specs = normalize_channels(request.channels, content_type=request.content_type)
    batches = {name: open_channel(spec, name) for name, spec in specs.items()
               if name in CHANNELS}
    vocab = find_vocabulary(request.vocabulary, specs["train"])
    if request.trial_output_tarballs:
        prefix = request.trial_output_tarballs
        tuner.on_trial_end = lambda trial: _write_tarball(trial, prefix, registry)
    result = tuner.fit(batches["train"], batches.get("test"),
                       validation=batches.get("validation"), vocabulary=vocab,
                       channels={k: v.uri for k, v in specs.items()})
    return registry.tuning.get(result.name)


def _write_tarball(trial: Any, prefix: str, registry: Registry) -> None:
    """Write a finished trial's SageMaker model.tar.gz to ``<prefix>/<trial>/output/``."""
    from fmkit.jobs.saving import write_tarball
    from fmkit.model_store import load_model

    target = f"{prefix.rstrip('/')}/{trial.training_job}/output/model.tar.gz"
    try:
        write_tarball(load_model(trial.model_dir), target)
    except FMError as exc:  # e.g. a model kind SageMaker's format cannot hold
        logger.warning("trial %s: no model.tar.gz: %s", trial.training_job, exc)
        return
    registry.jobs.set_output_tarball(trial.training_job, target)


def _request_file(registry: Registry, name: str) -> Path:
    return registry.job_dir(name) / "tuning-request.json"


def start(request: TuningRequest, *, registry: Registry | None = None) -> TuningJob:
    """Record a tuning job and run it in a detached process; return the record at once.

    The settings are checked here; the channels are read by the detached process (a job
    whose data turns out bad ends ``Failed`` with the reason).

    Raises
    ------
    ConfigError
        Invalid settings, or the name is taken (nothing is recorded).
    """
    from fmkit.jobs.processes import start_runner
    from fmkit.registry.records import make_tuning_job_name
    from fmkit.tuning.ranges import ranges_to_json

    registry = open_registry(registry)
    name = request.name or make_tuning_job_name()
    request = dataclasses.replace(request, name=name)
    plan = _tuner(request, registry).check(
        has_test="test" in request.channels and request.channels["test"] is not None,
        has_validation=request.channels.get("validation") is not None)
    if registry.tuning.exists(name):
        raise ConfigError(f"a tuning job named {name!r} already exists; choose another name.")
    specs = normalize_channels(request.channels, content_type=request.content_type)
    registry.tuning.create(
        name, objective_metric=plan["objective"], direction=plan["direction"],
        strategy=plan["strategy"], ranges=ranges_to_json(plan["ranges"]),
        static_hyperparameters=plan["fixed"], channels={k: v.uri for k, v in specs.items()},
        max_jobs=request.max_jobs, max_parallel_jobs=request.max_parallel_jobs, pid=0)
    path = _request_file(registry, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request.to_dict()))
    proc = start_runner("tuning", name, registry,
                        on_failure=lambda reason: registry.tuning.finish(
                            name, status="Failed", failure_reason=reason))
    registry.tuning.set_process(name, proc.pid)
    return registry.tuning.get(name)


def stop(name: str, *, registry: Registry | None = None) -> TuningJob:
    """Ask tuning job ``name`` to start no more trials and stop the running ones."""
    return open_registry(registry).tuning.request_stop(name)


def run_recorded(name: str) -> int:
    """The detached process's body (:mod:`fmkit.jobs.runner`)."""
    import os

    from fmkit.registry import Registry

    registry = Registry()
    registry.tuning.set_process(name, os.getpid())  # this process runs it now
    request = TuningRequest.from_dict(json.loads(_request_file(registry, name).read_text()))
    try:
        record = run(request, registry=registry, recorded=True)
    except (FMError, KeyboardInterrupt) as exc:
        logger.error("error: %s: %s", type(exc).__name__, exc)
        if registry.tuning.get(name).status in ("InProgress", "Stopping"):
            status = "Stopped" if isinstance(exc, KeyboardInterrupt) else "Failed"
            registry.tuning.finish(name, status=status,
                                   failure_reason=f"{type(exc).__name__}: {exc}")
        return 2
    return 0 if record.status != "Failed" else 1
