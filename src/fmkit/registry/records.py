"""Registry records: what a row of each table means, as frozen dataclasses.

Statuses follow SageMaker: ``InProgress``, ``Stopping``, ``Completed``, ``Failed``,
``Stopped``. A tuning trial is a training job whose ``tuning_job`` names its tuning job.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

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


def make_tuning_job_name() -> str:
    """Return ``tune-MM-DD-HH-MM-SS-mmm`` (UTC): a default tuning job name short enough
    (23 characters) for :func:`check_tuning_job_name`."""
    stamp = make_name("x")[len("x-YYYY-"):]  # drop the year: MM-DD-HH-MM-SS-mmm
    return f"tune-{stamp}"


def format_time(t: float | None) -> str:
    """Return ``t`` (Unix seconds) as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def format_number(value: Any) -> str:
    """Return a metric or hyperparameter value as front ends show it: floats with 6
    significant digits (``nan`` as such), ``None`` as ``-``, anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


_Record = TypeVar("_Record")


def _from_row(cls: type[_Record], row: sqlite3.Row, *,
              json: Mapping[str, Callable[[], Any] | None], flags: tuple[str, ...] = ()
              ) -> _Record:
    """Build record ``cls`` from a row whose columns are named as its fields.

    Columns named in ``json`` hold JSON text: decoded, and an empty value (NULL, ``{}``,
    ``[]``) replaced by the factory's result (a ``None`` factory keeps it). Columns named
    in ``flags`` are SQLite integers read as ``bool``.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = row[f.name]
        if f.name in json:
            value = loads(value)
            factory = json[f.name]
            if not value and factory is not None:
                value = factory()
        elif f.name in flags:
            value = bool(value)
        values[f.name] = value
    return cls(**values)


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
        return _from_row(cls, row, json={"hyperparameters": dict, "channels": dict,
                                         "final_metrics": dict, "transitions": list,
                                         "tags": dict, "request": None},
                         flags=("stop_requested",))


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
        return _from_row(cls, row, json={"ranges": dict, "static_hyperparameters": dict,
                                         "channels": dict},
                         flags=("stop_requested",))


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
        return _from_row(cls, row, json={"metrics": dict})


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
        return _from_row(cls, row, json={"config": dict})


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
        return _from_row(cls, row, json={"request": dict, "summary": dict})


@dataclass(frozen=True)
class LogEvent:
    """One line a job logged: ``seq`` orders a job's lines (a token for reading on)."""

    seq: int
    time: float
    message: str
