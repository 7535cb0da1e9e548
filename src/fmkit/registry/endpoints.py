"""Endpoint records: which model a running server serves, where, and in which process.

``add`` (create or replace by name), ``get``, ``list`` and ``remove``; the processes
themselves are started and stopped by :mod:`fmkit.jobs.endpoints`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fmkit.errors import RegistryError
from fmkit.registry.db import Database, dumps
from fmkit.registry.records import Endpoint, check_name

ENDPOINT_STATUSES = ("Creating", "InService", "Updating", "Failed", "OutOfService")


class Endpoints:
    """The ``endpoints`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        name: str,
        model: str,
        *,
        url: str | None = None,
        host: str | None = None,
        port: int | None = None,
        pid: int | None = None,
        status: str = "InService",
        config: Mapping[str, Any] | None = None,
        failure_reason: str | None = None,
        model_name: str | None = None,
    ) -> Endpoint:
        """Create or replace the endpoint ``name`` (its creation time is kept on replace).

        ``model_name`` is the registered model it serves, when it was deployed by name.
        """
        check_name(name, what="endpoint")
        if status not in ENDPOINT_STATUSES:
            raise RegistryError(f"endpoint status must be one of {ENDPOINT_STATUSES}; "
                                f"got {status!r}.")
        now = time.time()
        self.db.execute(
            "INSERT INTO endpoints (name, model, url, host, port, pid, status, config, "
            "creation_time, last_modified_time, failure_reason, model_name) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET model=excluded.model, url=excluded.url, "
            "host=excluded.host, port=excluded.port, pid=excluded.pid, status=excluded.status, "
            "config=excluded.config, last_modified_time=excluded.last_modified_time, "
            "failure_reason=excluded.failure_reason, model_name=excluded.model_name",
            (name, model, url, host, port, pid, status, dumps(dict(config or {})), now, now,
             failure_reason, model_name),
        )
        return self.get(name)

    def set_status(self, name: str, status: str, failure_reason: str | None = None) -> None:
        """Change the endpoint's status (and reason) without touching the rest."""
        if status not in ENDPOINT_STATUSES:
            raise RegistryError(f"endpoint status must be one of {ENDPOINT_STATUSES}; "
                                f"got {status!r}.")
        self.db.execute("UPDATE endpoints SET status=?, failure_reason=?, last_modified_time=? "
                        "WHERE name=?", (status, failure_reason, time.time(), name))

    def get(self, name: str) -> Endpoint:
        rows = self.db.query("SELECT * FROM endpoints WHERE name=?", (name,))
        if not rows:
            raise RegistryError(f"no endpoint named {name!r}; `fmkit endpoints list` shows "
                                "the names.")
        return Endpoint.from_row(rows[0])

    def list(self) -> list[Endpoint]:
        """Return every endpoint, by name."""
        return [Endpoint.from_row(r)
                for r in self.db.query("SELECT * FROM endpoints ORDER BY name")]

    def remove(self, name: str) -> bool:
        """Delete the endpoint ``name``; return whether it existed."""
        return bool(self.db.execute("DELETE FROM endpoints WHERE name=?", (name,)))
