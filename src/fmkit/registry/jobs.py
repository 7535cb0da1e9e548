"""Training-job records: create, log epochs, finish, stop; and the tracker used while training.

A job moves ``InProgress`` -> ``Completed`` | ``Failed`` | ``Stopped``. ``fmkit jobs stop``
(any process) sets ``stop_requested`` and the status ``Stopping``; the training process sees
it through :meth:`JobTracker.stop_requested` or :class:`RegistryCallback`, ends after the
current epoch and records ``Stopped`` with its last good model.
"""

from __future__ import annotations

import builtins
import logging
import os
import socket
import sqlite3
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from fmkit.errors import ConfigError, RegistryError
from fmkit.registry.db import Database, KeptReader, dumps, loads
from fmkit.registry.records import (
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    LogEvent,
    TrainingJob,
    check_name,
    make_name,
)

logger = logging.getLogger(__name__)

# SageMaker's wording of the secondary statuses a local job goes through
_STATUS_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Reading the input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopped": "Training job stopped",
}


def process_alive(pid: int | None, host: str | None) -> bool | None:
    """Return whether process ``pid`` runs, if ``host`` is this machine; else ``None``."""
    if pid is None or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of this process (a background job it started) is a zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:  # a zombie of another parent is gone too
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


class TrainingJobs:
    """The ``training_jobs`` and ``epoch_metrics`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str | None = None,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        channels: Mapping[str, Any] | None = None,
        model_dir: str | None = None,
        log_file: str | None = None,
        tuning_job: str | None = None,
        trial_number: int | None = None,
        prefix: str = "fmkit-train",
        secondary_status: str | None = None,
        source: str | None = None,
        tags: Mapping[str, str] | None = None,
        request: Mapping[str, Any] | None = None,
        output_tarball: str | None = None,
        pid: int | None = None,
    ) -> TrainingJob:
        """Insert an ``InProgress`` job and return it; ``name`` defaults to a timestamped one.

        ``secondary_status`` starts the job's list of status transitions (SageMaker's
        SecondaryStatusTransitions); ``request`` is the job's request as a dict (what a
        background process runs); ``pid`` defaults to this process.

        Raises
        ------
        ConfigError
            ``name`` is invalid or already used.
        """
        chosen = check_name(name) if name is not None else make_name(prefix)

        def insert(conn: sqlite3.Connection) -> str:
            final = chosen
            if name is None:  # make the generated name unique
                n = 1
                while conn.execute("SELECT 1 FROM training_jobs WHERE name=?",
                                   (final,)).fetchone():
                    n += 1
                    final = f"{chosen}-{n}"
            now = time.time()
            transitions = ([{"Status": secondary_status, "StartTime": now,
                             "StatusMessage": _STATUS_MESSAGES.get(secondary_status, "")}]
                           if secondary_status else [])
            try:
                conn.execute(
                    "INSERT INTO training_jobs (name, status, hyperparameters, channels, "
                    "model_dir, log_file, start_time, pid, host, tuning_job, trial_number, "
                    "secondary_status, transitions, source, tags, request, output_tarball) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (final, IN_PROGRESS, dumps(dict(hyperparameters or {})),
                     dumps(dict(channels or {})), model_dir, log_file, now,
                     os.getpid() if pid is None else pid, socket.gethostname(), tuning_job,
                     trial_number, secondary_status, dumps(transitions), source,
                     dumps(dict(tags or {})), None if request is None else dumps(dict(request)),
                     output_tarball),
                )
            except sqlite3.IntegrityError:
                raise ConfigError(
                    f"a training job named {final!r} already exists; choose another name "
                    "(job names are unique, as in SageMaker)."
                ) from None
            return final

        return self.get(self.db.write(insert))

    def get(self, name: str) -> TrainingJob:
        """Return the job called ``name``; raise RegistryError if there is none."""
        rows = self.db.query("SELECT * FROM training_jobs WHERE name=?", (name,))
        if not rows:
            raise RegistryError(
                f"no training job named {name!r}; `fmkit jobs list` shows the names."
            )
        return TrainingJob.from_row(rows[0])

    def exists(self, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM training_jobs WHERE name=?", (name,)))

    def list(
        self,
        *,
        status: str | None = None,
        tuning_job: str | None = None,
        include_trials: bool = True,
        limit: int | None = None,
    ) -> list[TrainingJob]:
        """Return jobs, newest first (trials of a tuning job in trial order)."""
        where, params = [], []
        if status is not None:
            where.append("status=?")
            params.append(status)
        if tuning_job is not None:
            where.append("tuning_job=?")
            params.append(tuning_job)
        elif not include_trials:
            where.append("tuning_job IS NULL")
        sql = "SELECT * FROM training_jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += (" ORDER BY trial_number" if tuning_job is not None
                else " ORDER BY start_time DESC, name")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [TrainingJob.from_row(r) for r in self.db.query(sql, params)]

    def set_secondary_status(self, name: str, status: str, message: str | None = None) -> None:
        """Move the job to secondary status ``status``, closing the previous transition."""

        def update(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT secondary_status, transitions FROM training_jobs "
                               "WHERE name=?", (name,)).fetchone()
            if row is None:
                raise RegistryError(f"no training job named {name!r}.")
            if row["secondary_status"] == status:
                return
            now = time.time()
            transitions = loads(row["transitions"]) or []
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append({"Status": status, "StartTime": now,
                                "StatusMessage": message or _STATUS_MESSAGES.get(status, "")})
            conn.execute("UPDATE training_jobs SET secondary_status=?, transitions=? "
                         "WHERE name=?", (status, dumps(transitions), name))

        self.db.write(update)

    def set_process(self, name: str, pid: int) -> None:
        """Record the process that runs the job (a background job's runner)."""
        self.db.execute("UPDATE training_jobs SET pid=?, host=? WHERE name=?",
                        (pid, socket.gethostname(), name))

    def update(self, name: str, *, log_file: str | None = None,
               request: Mapping[str, Any] | None = None) -> None:
        """Set the job's log file and/or stored request (those given)."""
        if log_file is not None:
            self.db.execute("UPDATE training_jobs SET log_file=? WHERE name=?", (log_file, name))
        if request is not None:
            self.db.execute("UPDATE training_jobs SET request=? WHERE name=?",
                            (dumps(dict(request)), name))

    def set_output_tarball(self, name: str, uri: str) -> None:
        """Record where the job's SageMaker model.tar.gz was written."""
        self.db.execute("UPDATE training_jobs SET output_tarball=? WHERE name=?", (uri, name))

    def set_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Replace the job's tags."""
        self.db.execute("UPDATE training_jobs SET tags=? WHERE name=?",
                        (dumps(dict(tags)), name))

    def append_log(self, name: str, messages: builtins.list[tuple[float, str]]) -> None:
        """Append ``(unix time, line)`` pairs to the job's log."""
        if messages:
            self.db.write(lambda c: c.executemany(
                "INSERT INTO log_events (job_name, time, message) VALUES (?, ?, ?)",
                [(name, t, m) for t, m in messages]))

    def log_events(self, name: str, *, start: int = 0, limit: int = 1000
                   ) -> tuple[builtins.list[LogEvent], int]:
        """Return the job's log lines with ``seq >= start`` (at most ``limit``) and the
        token to read on from (``start`` itself when there is nothing new)."""
        rows = self.db.query(
            "SELECT id, time, message FROM log_events WHERE job_name=? AND id>=? "
            "ORDER BY id LIMIT ?", (name, int(start), int(limit)))
        events = [LogEvent(r["id"], r["time"], r["message"]) for r in rows]
        return events, (events[-1].seq + 1 if events else int(start))

    def log_epoch(self, name: str, epoch: int, logs: Mapping[str, Any]) -> None:
        """Record (or replace) the metrics of one epoch."""
        self.log_epochs(name, [(epoch, logs)])

    def log_epochs(self, name: str, epochs: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Record (or replace) the metrics of several epochs in one transaction."""
        now = time.time()
        rows = [(name, int(e), dumps(dict(logs)), now) for e, logs in epochs]
        if rows:
            self.db.write(lambda c: c.executemany(
                "INSERT OR REPLACE INTO epoch_metrics (job_name, epoch, metrics, time) "
                "VALUES (?, ?, ?, ?)", rows))

    def epochs(self, name: str) -> builtins.list[dict[str, Any]]:
        """Return the per-epoch metric dicts in epoch order, each with its ``epoch``."""
        rows = self.db.query(
            "SELECT epoch, metrics FROM epoch_metrics WHERE job_name=? ORDER BY epoch", (name,)
        )
        return [{**(loads(r["metrics"]) or {}), "epoch": r["epoch"]} for r in rows]

    def finish(
        self,
        name: str,
        *,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        artifact: str | None = None,
        failure_reason: str | None = None,
        best_epoch: int | None = None,
        objective_value: float | None = None,
        unless_ended: bool = False,
    ) -> TrainingJob:
        """Set a final status (Completed, Failed or Stopped), metrics and artifact.

        With ``unless_ended`` a job that has meanwhile recorded its own end keeps it (a
        watcher that found the job's process gone must not overwrite what the job wrote
        just before it exited).
        """
        if status not in FINAL_STATUSES:
            raise ConfigError(f"status must be one of {FINAL_STATUSES}; got {status!r}.")
        where = "name=?" + (" AND status NOT IN (?, ?, ?)" if unless_ended else "")
        changed = self.db.execute(
            "UPDATE training_jobs SET status=?, final_metrics=?, artifact=COALESCE(?, artifact),"
            f" failure_reason=?, best_epoch=?, objective_value=?, end_time=? WHERE {where}",
            (status, dumps(dict(metrics or {})), artifact, failure_reason, best_epoch,
             objective_value, time.time(), name, *(FINAL_STATUSES if unless_ended else ())),
        )
        if not changed:
            if unless_ended and self.exists(name):
                return self.get(name)
            raise RegistryError(f"no training job named {name!r}.")
        self.set_secondary_status(name, status, failure_reason)
        return self.get(name)

    def clear_artifact(self, name: str) -> None:
        """Forget the job's model (deleted, e.g. a tuning trial that was not the best)."""
        self.db.execute("UPDATE training_jobs SET artifact=NULL WHERE name=?", (name,))

    def request_stop(self, name: str) -> TrainingJob:
        """Ask a running job to stop; return the job as it now stands.

        A job whose process no longer runs on this machine is marked ``Stopped`` at once.
        A job that already ended is returned unchanged.
        """
        job = self.get(name)
        if job.status in FINAL_STATUSES:
            return job
        if process_alive(job.pid, job.host) is False:
            return self.finish(
                name, status=STOPPED, metrics=job.final_metrics,
                failure_reason=f"stopped by user; its process {job.pid} was no longer running",
                unless_ended=True,
            )
        self.db.execute(
            "UPDATE training_jobs SET stop_requested=1, status=? WHERE name=? AND status IN (?, ?)",
            (STOPPING, name, IN_PROGRESS, STOPPING),
        )
        return self.get(name)

    def stop_requested(self, name: str, *, reader: KeptReader | None = None) -> bool:
        """Whether ``fmkit jobs stop`` was asked for the job (``reader``: a kept connection,
        for a job that asks every epoch)."""
        rows = (reader or self.db).query(
            "SELECT stop_requested FROM training_jobs WHERE name=?", (name,))
        return bool(rows and rows[0]["stop_requested"])

    def delete(self, name: str) -> None:
        """Remove a finished job and its epoch metrics (not its files)."""
        job = self.get(name)
        if job.status not in FINAL_STATUSES:
            raise RegistryError(f"training job {name!r} is {job.status}; stop it first.")
        self.db.write(lambda c: (
            c.execute("DELETE FROM epoch_metrics WHERE job_name=?", (name,)),
            c.execute("DELETE FROM log_events WHERE job_name=?", (name,)),
            c.execute("DELETE FROM training_jobs WHERE name=?", (name,)),
        ))


class JobTracker:
    """Records one running training job; yielded by :meth:`Registry.track_training_job`.

    Call :meth:`log_epoch` after each epoch, check :meth:`stop_requested`, and end with
    :meth:`complete`. Leaving the ``with`` block without :meth:`complete` records:
    ``Failed`` with the exception's message on an exception, ``Stopped`` on
    ``KeyboardInterrupt`` (both re-raised), ``Completed`` otherwise.
    """

    def __init__(self, jobs: TrainingJobs, name: str) -> None:
        self.jobs = jobs
        self.name = name
        self.finished: TrainingJob | None = None
        self._reader: KeptReader | None = None

    @property
    def record(self) -> TrainingJob:
        """The job as the registry holds it now."""
        return self.jobs.get(self.name)

    def log_epoch(self, epoch: int, logs: Mapping[str, Any]) -> None:
        self.jobs.log_epoch(self.name, epoch, logs)

    def log_epochs(self, epochs: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        self.jobs.log_epochs(self.name, epochs)

    def stop_requested(self) -> bool:
        if self._reader is None:
            self._reader = self.jobs.db.reader()
        return self.jobs.stop_requested(self.name, reader=self._reader)

    def release(self) -> None:
        """Close the kept connection :meth:`stop_requested` reads on (reopened if asked)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def complete(
        self,
        *,
        metrics: Mapping[str, Any] | None = None,
        artifact: str | None = None,
        status: str = COMPLETED,
        best_epoch: int | None = None,
        failure_reason: str | None = None,
        objective_value: float | None = None,
    ) -> TrainingJob:
        """Record the final status, metrics and artifact path."""
        if status == COMPLETED and self.stop_requested():
            status = STOPPED
        if status == STOPPED and failure_reason is None and self.stop_requested():
            failure_reason = "stopped by user"
        self.release()
        self.finished = self.jobs.finish(
            self.name, status=status, metrics=metrics, artifact=artifact,
            failure_reason=failure_reason, best_epoch=best_epoch,
            objective_value=objective_value,
        )
        return self.finished

    def __enter__(self) -> JobTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Record how the block ended, unless :meth:`complete` did; ``exc`` propagates."""
        if self.finished is not None:
            return
        if exc is None:
            self.complete(status=COMPLETED)
        elif isinstance(exc, KeyboardInterrupt):
            self.complete(status=STOPPED, failure_reason="interrupted (KeyboardInterrupt)")
        else:
            where = ""
            frames = traceback.extract_tb(tb) if tb is not None else []
            if frames:
                where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
            reason = f"{type(exc).__name__}: {exc}{where}"
            self.complete(status=FAILED, failure_reason=reason[:2000])


@contextmanager
def track(jobs: TrainingJobs, name: str | None = None, **create: Any) -> Iterator[JobTracker]:
    """Create a job, yield its :class:`JobTracker`, and record how the block ended."""
    job = jobs.create(name, **create)
    with JobTracker(jobs, job.name) as tracker:
        yield tracker


@contextmanager
def attach(jobs: TrainingJobs, name: str) -> Iterator[JobTracker]:
    """Yield a :class:`JobTracker` for the existing job ``name`` (created earlier, e.g. by a
    process that started it in the background) and record how the block ended."""
    with JobTracker(jobs, jobs.get(name).name) as tracker:
        yield tracker


class RegistryCallback:
    """A trainer callback logging each epoch to a job and stopping when a stop was asked.

    ``on_epoch_end`` returns ``True`` (stop training, keep the last good model) once
    ``fmkit jobs stop NAME`` has been run for the job.
    """

    def __init__(self, job: JobTracker, *, every_s: float = 0.5) -> None:
        self.job = job
        # epochs reach the registry in one transaction at least this often (one a sweep
        # cost an MCMC job 0.5 s); the stop request is read every epoch
        self.every_s = every_s
        self._pending: list[tuple[int, dict[str, float]]] = []
        self._last = float("-inf")

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        self._pending.append((epoch, dict(logs)))
        stop = self.job.stop_requested()
        now = time.monotonic()
        if stop or now - self._last >= self.every_s:
            self._last = now
            self.flush()
        return stop

    def flush(self) -> None:
        """Write the epochs not yet recorded (the job calls it once training ends)."""
        pending, self._pending = self._pending, []
        self.job.log_epochs(pending)

    def close(self) -> None:
        """Write the epochs held back and release the job's kept connection."""
        self.flush()
        self.job.release()


__all__ = ["JobTracker", "RegistryCallback", "TrainingJobs", "attach", "process_alive", "track"]
