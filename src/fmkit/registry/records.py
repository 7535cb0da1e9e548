"""Registry records: what a row of each table means, as frozen dataclasses.

Statuses follow SageMaker: ``InProgress``, ``Stopping``, ``Completed``, ``Failed``,
``Stopped``. A tuning trial is a training job whose ``tuning_job`` names its tuning job.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from fmkit.errors import ConfigError
from fmkit.registry.db import loads

IN_PROGRESS = "InProgress"
STOPPING = "Stopping"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPED = "Stopped"
STATUSES = (IN_PROGRESS, STOPPING, COMPLETED, FAILED, STOPPED)
FINAL_STATUSES = (COMPLETED, FAILED, STOPPED)

# SageMaker's job-name rule; names are also folder names, so this keeps them safe
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def valid_name(name: str) -> bool:
    """Whether ``name`` follows SageMaker's rule for job, model and endpoint names."""
    return isinstance(name, str) and _NAME.match(name) is not None


def check_name(name: str, *, what: str = "job") -> str:
    """Return ``name`` if it is a valid SageMaker-style name, else raise ConfigError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{what} name must be 1-63 letters, digits and hyphens, starting with a letter or "
            f"digit and not ending with a hyphen; got {name!r}."
        )
    return name


def check_tuning_job_name(name: str) -> str:
    """Return ``name`` if it is a valid tuning job name: a job name of at most 32
    characters, as in SageMaker, so that trial names ``<name>-<NNN>`` stay valid."""
    check_name(name, what="tuning job")
    if len(name) > 32:
        raise ConfigError(f"tuning job name must be at most 32 characters; got {name!r} "
                          f"({len(name)}).")
    return name


def make_name(prefix: str) -> str:
    """Return ``<prefix>-YYYY-MM-DD-HH-MM-SS-mmm`` (UTC), SageMaker's default job names."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now))
    return f"{prefix}-{stamp}-{int(now * 1000) % 1000:03d}"


def format_time(t: float | None) -> str:
    """Return ``t`` (Unix seconds) as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


@dataclass(frozen=True)
class TrainingJob:
    """One training job (or tuning trial)."""

    name: str
    status: str
    hyperparameters: dict[str, Any]
    channels: dict[str, Any]
    final_metrics: dict[str, float]
    model_dir: str | None
    artifact: str | None
    log_file: str | None
    start_time: float
    end_time: float | None
    failure_reason: str | None
    stop_requested: bool
    best_epoch: int | None
    pid: int | None
    host: str | None
    tuning_job: str | None = None
    trial_number: int | None = None
    objective_value: float | None = None
    secondary_status: str | None = None
    transitions: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    request: dict[str, Any] | None = None
    output_tarball: str | None = None

    @property
    def seconds(self) -> float:
        """Wall time so far (to now while in progress)."""
        return (self.end_time or time.time()) - self.start_time

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TrainingJob:
        return cls(
            name=row["name"], status=row["status"],
            hyperparameters=loads(row["hyperparameters"]) or {},
            channels=loads(row["channels"]) or {},
            final_metrics=loads(row["final_metrics"]) or {},
            model_dir=row["model_dir"], artifact=row["artifact"], log_file=row["log_file"],
            start_time=row["start_time"], end_time=row["end_time"],
            failure_reason=row["failure_reason"], stop_requested=bool(row["stop_requested"]),
            best_epoch=row["best_epoch"], pid=row["pid"], host=row["host"],
            tuning_job=row["tuning_job"], trial_number=row["trial_number"],
            objective_value=row["objective_value"],
            secondary_status=row["secondary_status"],
            transitions=loads(row["transitions"]) or [],
            source=row["source"], tags=loads(row["tags"]) or {},
            request=loads(row["request"]), output_tarball=row["output_tarball"],
        )


@dataclass(frozen=True)
class TuningJob:
    """One hyperparameter tuning job; its trials are training jobs."""

    name: str
    status: str
    objective_metric: str
    direction: str
    strategy: str
    ranges: dict[str, Any]
    static_hyperparameters: dict[str, Any]
    channels: dict[str, Any]
    max_jobs: int
    max_parallel_jobs: int
    best_training_job: str | None
    best_objective_value: float | None
    start_time: float
    end_time: float | None
    failure_reason: str | None
    stop_requested: bool
    pid: int | None = None
    host: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TuningJob:
        return cls(
            name=row["name"], status=row["status"], objective_metric=row["objective_metric"],
            direction=row["direction"], strategy=row["strategy"],
            ranges=loads(row["ranges"]) or {},
            static_hyperparameters=loads(row["static_hyperparameters"]) or {},
            channels=loads(row["channels"]) or {},
            max_jobs=row["max_jobs"], max_parallel_jobs=row["max_parallel_jobs"],
            best_training_job=row["best_training_job"],
            best_objective_value=row["best_objective_value"],
            start_time=row["start_time"], end_time=row["end_time"],
            failure_reason=row["failure_reason"], stop_requested=bool(row["stop_requested"]),
            pid=row["pid"], host=row["host"],
        )


@dataclass(frozen=True)
class Model:
    """A registered model: a name for an artifact folder."""

    name: str
    artifact: str
    training_job: str | None
    predictor_type: str | None
    metrics: dict[str, float]
    creation_time: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Model:
        return cls(
            name=row["name"], artifact=row["artifact"], training_job=row["training_job"],
            predictor_type=row["predictor_type"], metrics=loads(row["metrics"]) or {},
            creation_time=row["creation_time"],
        )


@dataclass(frozen=True)
class Endpoint:
    """A serving endpoint: which model a server at ``url`` serves."""

    name: str
    model: str
    url: str | None
    host: str | None
    port: int | None
    pid: int | None
    status: str
    config: dict[str, Any] = field(default_factory=dict)
    creation_time: float = 0.0
    last_modified_time: float = 0.0
    failure_reason: str | None = None
    model_name: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Endpoint:
        return cls(
            name=row["name"], model=row["model"], url=row["url"], host=row["host"],
            port=row["port"], pid=row["pid"], status=row["status"],
            config=loads(row["config"]) or {}, creation_time=row["creation_time"],
            last_modified_time=row["last_modified_time"],
            failure_reason=row["failure_reason"], model_name=row["model_name"],
        )


@dataclass(frozen=True)
class TransformJob:
    """One batch transform job: a model scoring every file of ``input`` into ``output``."""

    name: str
    status: str
    model_dir: str
    input: str
    output: str
    request: dict[str, Any]
    summary: dict[str, Any]
    start_time: float
    end_time: float | None
    failure_reason: str | None
    pid: int | None = None
    host: str | None = None
    source: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TransformJob:
        return cls(
            name=row["name"], status=row["status"], model_dir=row["model_dir"],
            input=row["input"], output=row["output"], request=loads(row["request"]) or {},
            summary=loads(row["summary"]) or {}, start_time=row["start_time"],
            end_time=row["end_time"], failure_reason=row["failure_reason"], pid=row["pid"],
            host=row["host"], source=row["source"],
        )


@dataclass(frozen=True)
class LogEvent:
    """One line a job logged: ``seq`` orders a job's lines (a token for reading on)."""

    seq: int
    time: float
    message: str
