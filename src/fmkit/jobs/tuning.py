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
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fmkit.errors import ConfigError, FMError
from fmkit.jobs.channels import find_vocabulary, normalize_channels, open_channel
from fmkit.jobs.hyperparameters import check_defaults

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
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _registry(registry: Any) -> Any:
    if registry is not None:
        return registry
    from fmkit.registry import Registry

    return Registry()


def _tuner(request: TuningRequest, registry: Any) -> Any:
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


def run(request: TuningRequest, *, registry: Any = None) -> Any:
    """Run a tuning job here; return its final :class:`~fmkit.registry.TuningJob`.

    Raises
    ------
    FMError
        Any invalid setting, before a trial runs.
    """
    registry = _registry(registry)
    tuner = _tuner(request, registry)
    specs = normalize_channels(request.channels, content_type=request.content_type)
    batches = {name: open_channel(spec, name) for name, spec in specs.items()
               if name in ("train", "test", "validation")}
    vocab = find_vocabulary(request.vocabulary, specs["train"])
    result = tuner.fit(batches["train"], batches.get("test"),
                       validation=batches.get("validation"), vocabulary=vocab,
                       channels={k: v.uri for k, v in specs.items()})
    if request.trial_output_tarballs:
        _write_tarballs(result, request.trial_output_tarballs, registry)
    return registry.tuning.get(result.name)


def _write_tarballs(result: Any, prefix: str, registry: Any) -> None:
    from fmkit.jobs.saving import write_tarball
    from fmkit.model_store import load_model

    for trial in result.trials:
        if not trial.model_dir:
            continue
        target = f"{prefix.rstrip('/')}/{trial.training_job}/output/model.tar.gz"
        try:
            write_tarball(load_model(trial.model_dir), target)
        except FMError as exc:  # e.g. a model kind SageMaker's format cannot hold
            logger.warning("trial %s: no model.tar.gz: %s", trial.training_job, exc)
            continue
        registry.db.execute("UPDATE training_jobs SET output_tarball=? WHERE name=?",
                            (target, trial.training_job))


def _request_file(registry: Any, name: str) -> Any:
    return registry.job_dir(name) / "tuning-request.json"


def start(request: TuningRequest, *, registry: Any = None, wait_s: float = 60.0) -> Any:
    """Run a tuning job in a detached process; return its record once it exists.

    The record appears when the job has read its channels and checked them with the data
    (within ``wait_s``); a job that fails before that raises its error here.

    Raises
    ------
    ConfigError
        Invalid settings (checked here, before the process starts), or the process ended
        before recording the job.
    """
    from fmkit.registry.records import make_name

    registry = _registry(registry)
    name = request.name or f"tune-{make_name('x')[len('x-2026-'):]}"
    request = dataclasses.replace(request, name=name)
    _tuner(request, registry)
    if registry.tuning.exists(name):
        raise ConfigError(f"a tuning job named {name!r} already exists; choose another name.")
    path = _request_file(registry, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request.to_dict()))
    env = dict(os.environ)
    env["FMKIT_HOME"] = str(registry.home)
    with open(path.parent / "process.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fmkit.jobs.runner", "tuning", name],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if registry.tuning.exists(name):
            return registry.tuning.get(name)
        if proc.poll() is not None:
            tail = (path.parent / "process.log").read_text(errors="replace").strip()
            raise ConfigError(f"tuning job {name} ended before it started: "
                              f"{tail.splitlines()[-1] if tail else 'no output'}")
        time.sleep(0.1)
    raise ConfigError(f"tuning job {name} did not start within {wait_s:g} s; see "
                      f"{path.parent / 'process.log'}.")


def stop(name: str, *, registry: Any = None) -> Any:
    """Ask tuning job ``name`` to start no more trials and stop the running ones."""
    return _registry(registry).tuning.request_stop(name)


def run_recorded(name: str) -> int:
    """The detached process's body (:mod:`fmkit.jobs.runner`)."""
    from fmkit.registry import Registry

    registry = Registry()
    request = TuningRequest.from_dict(json.loads(_request_file(registry, name).read_text()))
    try:
        record = run(request, registry=registry)
    except FMError as exc:
        logger.error("error: %s: %s", type(exc).__name__, exc)
        return 2
    return 0 if record.status != "Failed" else 1
