"""Batch transform job records: a model scoring the files of an input into an output."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from fmkit.errors import ConfigError, RegistryError
from fmkit.registry.db import Database, dumps
from fmkit.registry.records import (
    FINAL_STATUSES,
    IN_PROGRESS,
    TransformJob,
    check_name,
    make_name,
)


class TransformJobs:
    """The ``transform_jobs`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str | None = None, *, model_dir: str, input: str, output: str,
               request: Mapping[str, Any] | None = None, source: str | None = None,
               pid: int | None = None) -> TransformJob:
        """Insert an ``InProgress`` transform job; ``name`` defaults to a timestamped one.

        Raises
        ------
        ConfigError
            ``name`` is invalid or already used.
        """
        chosen = check_name(name, what="transform job") if name is not None \
            else make_name("fmkit-transform")

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO transform_jobs (name, status, model_dir, input, output, "
                    "request, start_time, pid, host, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (chosen, IN_PROGRESS, model_dir, input, output, dumps(dict(request or {})),
                     time.time(), os.getpid() if pid is None else pid, socket.gethostname(),
                     source))
            except sqlite3.IntegrityError:
                raise ConfigError(f"a transform job named {chosen!r} already exists; choose "
                                  "another name.") from None

        self.db.write(insert)
        return self.get(chosen)

    def get(self, name: str) -> TransformJob:
        rows = self.db.query("SELECT * FROM transform_jobs WHERE name=?", (name,))
        if not rows:
            raise RegistryError(f"no transform job named {name!r}.")
        return TransformJob.from_row(rows[0])

    def list(self) -> list[TransformJob]:
        """Return every transform job, newest first."""
        rows = self.db.query("SELECT * FROM transform_jobs ORDER BY start_time DESC, name")
        return [TransformJob.from_row(r) for r in rows]

    def set_process(self, name: str, pid: int) -> None:
        self.db.execute("UPDATE transform_jobs SET pid=?, host=? WHERE name=?",
                        (pid, socket.gethostname(), name))

    def finish(self, name: str, *, status: str, summary: Mapping[str, Any] | None = None,
               failure_reason: str | None = None, unless_ended: bool = False
               ) -> TransformJob:
        """Set the final status (Completed, Failed or Stopped) and the summary; with
        ``unless_ended`` a job that has meanwhile recorded its own end keeps it."""
        if status not in FINAL_STATUSES:
            raise ConfigError(f"status must be one of {FINAL_STATUSES}; got {status!r}.")
        where = "name=?" + (" AND status NOT IN (?, ?, ?)" if unless_ended else "")
        self.db.execute("UPDATE transform_jobs SET status=?, summary=?, failure_reason=?, "
                        f"end_time=? WHERE {where}",
                        (status, dumps(dict(summary or {})), failure_reason, time.time(), name,
                         *(FINAL_STATUSES if unless_ended else ())))
        return self.get(name)
