"""Tuning-job records; their trials are training jobs with ``tuning_job`` set."""

from __future__ import annotations

import builtins
import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from fmkit.errors import ConfigError, RegistryError
from fmkit.registry.db import Database, dumps
from fmkit.registry.jobs import process_alive
from fmkit.registry.records import (
    FINAL_STATUSES,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    TrainingJob,
    TuningJob,
    check_tuning_job_name,
    make_tuning_job_name,
)


class TuningJobs:
    """The ``tuning_jobs`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str | None = None,
        *,
        objective_metric: str,
        direction: str,
        strategy: str,
        ranges: Mapping[str, Any],
        static_hyperparameters: Mapping[str, Any] | None = None,
        channels: Mapping[str, Any] | None = None,
        max_jobs: int,
        max_parallel_jobs: int,
        pid: int | None = None,
    ) -> TuningJob:
        """Insert an ``InProgress`` tuning job; ``name`` defaults to a timestamped one.

        Tuning-job names are at most 32 characters, as in SageMaker, so that trial names
        ``<name>-<NNN>`` stay valid job names.
        """
        chosen = check_tuning_job_name(name) if name is not None else make_tuning_job_name()

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO tuning_jobs (name, status, objective_metric, direction, "
                    "strategy, ranges, static_hyperparameters, channels, max_jobs, "
                    "max_parallel_jobs, start_time, pid, host) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (chosen, IN_PROGRESS, objective_metric, direction, strategy,
                     dumps(dict(ranges)), dumps(dict(static_hyperparameters or {})),
                     dumps(dict(channels or {})), max_jobs, max_parallel_jobs, time.time(),
                     os.getpid() if pid is None else pid, socket.gethostname()),
                )
            except sqlite3.IntegrityError:
                raise ConfigError(f"a tuning job named {chosen!r} already exists; choose "
                                  "another name.") from None

        self.db.write(insert)
        return self.get(chosen)

    def get(self, name: str) -> TuningJob:
        rows = self.db.query("SELECT * FROM tuning_jobs WHERE name=?", (name,))
        if not rows:
            raise RegistryError(
                f"no tuning job named {name!r}; `fmkit tuning list` shows the names."
            )
        return TuningJob.from_row(rows[0])

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM tuning_jobs WHERE name=?", (name,)))

    def list(self) -> list[TuningJob]:
        """Return every tuning job, newest first."""
        rows = self.db.query("SELECT * FROM tuning_jobs ORDER BY start_time DESC, name")
        return [TuningJob.from_row(r) for r in rows]

    def trials(self, name: str) -> builtins.list[TrainingJob]:
        """Return the trials (training jobs) of tuning job ``name``, in trial order."""
        rows = self.db.query(
            "SELECT * FROM training_jobs WHERE tuning_job=? ORDER BY trial_number, start_time",
            (name,),
        )
        return [TrainingJob.from_row(r) for r in rows]

    def set_channels(self, name: str, channels: Mapping[str, Any]) -> None:
        """Replace the recorded channels (e.g. with a held-out validation set added)."""
        self.db.execute("UPDATE tuning_jobs SET channels=? WHERE name=?",
                        (dumps(dict(channels)), name))

    def set_process(self, name: str, pid: int) -> None:
        """Record the process that runs the tuning job (a background job's runner)."""
        self.db.execute("UPDATE tuning_jobs SET pid=?, host=? WHERE name=?",
                        (pid, socket.gethostname(), name))

    def set_best(self, name: str, training_job: str, value: float) -> None:
        self.db.execute(
            "UPDATE tuning_jobs SET best_training_job=?, best_objective_value=? WHERE name=?",
            (training_job, value, name),
        )

    def finish(self, name: str, *, status: str, failure_reason: str | None = None) -> TuningJob:
        if status not in FINAL_STATUSES:
            raise ConfigError(f"status must be one of {FINAL_STATUSES}; got {status!r}.")
        self.db.execute(
            "UPDATE tuning_jobs SET status=?, failure_reason=?, end_time=? WHERE name=?",
            (status, failure_reason, time.time(), name),
        )
        return self.get(name)

    def request_stop(self, name: str) -> TuningJob:
        """Ask a running tuning job to start no more trials and stop the running ones."""
        job = self.get(name)
        if job.status in FINAL_STATUSES:
            return job
        if process_alive(job.pid, job.host) is False:
            if self.get(name).status in FINAL_STATUSES:  # it ended just before its process
                return self.get(name)
            return self.finish(name, status=STOPPED, failure_reason="stopped by user; its "
                               f"process {job.pid} was no longer running")
        self.db.execute(
            "UPDATE tuning_jobs SET stop_requested=1, status=? WHERE name=?", (STOPPING, name)
        )
        self.db.execute(
            "UPDATE training_jobs SET stop_requested=1, status=? WHERE tuning_job=? AND "
            "status=?", (STOPPING, name, IN_PROGRESS),
        )
        return self.get(name)

    def stop_requested(self, name: str) -> bool:
        rows = self.db.query("SELECT stop_requested FROM tuning_jobs WHERE name=?", (name,))
        return bool(rows and rows[0]["stop_requested"])
