"""The :class:`Registry`: one SQLite file under FMKIT_HOME with jobs, models and endpoints."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fmkit.registry.db import Database
from fmkit.registry.endpoints import Endpoints
from fmkit.registry.home import fmkit_home, jobs_dir, registry_path
from fmkit.registry.jobs import JobTracker, TrainingJobs, track
from fmkit.registry.models import Models
from fmkit.registry.records import Model
from fmkit.registry.transform_jobs import TransformJobs
from fmkit.registry.tuning_jobs import TuningJobs


class Registry:
    """Records of training jobs, tuning jobs, models and endpoints.

    Parameters
    ----------
    home : path-like, optional
        fmkit's home folder; default ``$FMKIT_HOME`` or ``~/.fmkit``. The database is
        ``<home>/registry.db`` and job folders go under ``<home>/jobs``.
    timeout_s : float, default=30.0
        How long an operation waits while other processes write.

    Attributes
    ----------
    jobs : TrainingJobs
    tuning : TuningJobs
    models : Models
    endpoints : Endpoints
    transforms : TransformJobs

    Examples
    --------
    >>> import tempfile
    >>> reg = Registry(tempfile.mkdtemp())   # default: $FMKIT_HOME or ~/.fmkit
    >>> with reg.track_training_job(hyperparameters={"num_factors": 8}) as job:
    ...     job.log_epoch(0, {"train:rmse": 1.2})
    ...     _ = job.complete(metrics={"test:rmse": 1.1}, artifact="runs/fm8")
    >>> reg.jobs.get(job.name).status
    'Completed'
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *,
                 timeout_s: float = 30.0) -> None:
        self.home = Path(home).expanduser() if home is not None else fmkit_home()
        self.db = Database(registry_path(self.home), timeout_s=timeout_s)
        self.jobs = TrainingJobs(self.db)
        self.tuning = TuningJobs(self.db)
        self.models = Models(self.db)
        self.endpoints = Endpoints(self.db)
        self.transforms = TransformJobs(self.db)

    @property
    def path(self) -> Path:
        return self.db.path

    def job_dir(self, name: str) -> Path:
        """Return the folder for job ``name``'s files, ``<home>/jobs/<name>`` (not created)."""
        return jobs_dir(self.home) / name

    @contextmanager
    def track_training_job(
        self,
        name: str | None = None,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        channels: Mapping[str, Any] | None = None,
        model_dir: str | None = None,
        log_file: str | None = None,
        tuning_job: str | None = None,
        trial_number: int | None = None,
        **extra: Any,
    ) -> Iterator[JobTracker]:
        """Record a training job for the duration of a ``with`` block.

        The job is ``InProgress`` inside the block. Leaving it by an exception records
        ``Failed`` with the reason, by ``KeyboardInterrupt`` ``Stopped`` (both re-raised);
        call ``job.complete(metrics=..., artifact=..., status=...)`` to record the result.
        ``extra`` takes the other fields of :meth:`TrainingJobs.create` (``source``,
        ``tags``, ``secondary_status``...).
        """
        with track(self.jobs, name, hyperparameters=hyperparameters, channels=channels,
                   model_dir=model_dir, log_file=log_file, tuning_job=tuning_job,
                   trial_number=trial_number, **extra) as job:
            yield job

    def register_model(
        self,
        name: str,
        artifact_path: str | os.PathLike[str],
        *,
        job_name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        predictor_type: str | None = None,
        replace: bool = False,
    ) -> Model:
        """Register a model folder under ``name``; see :meth:`Models.register`."""
        return self.models.register(name, str(artifact_path), training_job=job_name,
                                    metrics=metrics, predictor_type=predictor_type,
                                    replace=replace)


def open_registry(registry: Registry | None = None) -> Registry:
    """Return ``registry``, or the registry under ``$FMKIT_HOME`` when it is None (the
    default every service takes)."""
    return registry if registry is not None else Registry()
