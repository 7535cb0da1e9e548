"""What the SageMaker API keeps that the registry has no table for.

The registry holds the jobs, models and endpoints themselves (so ``fmkit jobs list`` and the
API see the same ones); this file, ``FMKIT_HOME/sagemaker-api/state.db``, holds SageMaker's
own view of them: the original Create* request of each training, tuning and transform job
(to describe it back field for field), model definitions (image, ModelDataUrl,
environment), endpoint configurations, which configuration an endpoint runs, and tags.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

KINDS = ("training-job", "tuning-job", "transform-job", "model", "endpoint-config",
         "endpoint")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, creation_time REAL NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
"""


class ApiState:
    """Records by (kind, name) and tags by ARN, in one SQLite file; thread-safe."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.db"
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def add(self, kind: str, name: str, body: dict[str, Any]) -> bool:
        """Record ``body``; return False (and change nothing) if ``name`` exists."""
        try:
            self._conn().execute("INSERT INTO records VALUES (?, ?, ?, ?)",
                                 (kind, name, json.dumps(body), time.time()))
        except sqlite3.IntegrityError:
            return False
        return True

    def put(self, kind: str, name: str, body: dict[str, Any]) -> None:
        """Create or replace a record (its creation time is kept)."""
        self._conn().execute(
            "INSERT INTO records VALUES (?, ?, ?, ?) ON CONFLICT(kind, name) DO UPDATE SET "
            "body=excluded.body", (kind, name, json.dumps(body), time.time()))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """Return the record's body with ``_creation_time`` added, or None."""
        row = self._conn().execute("SELECT body, creation_time FROM records WHERE kind=? AND "
                                   "name=?", (kind, name)).fetchone()
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row["body"])
        body["_creation_time"] = row["creation_time"]
        return body

    def names(self, kind: str) -> list[str]:
        return [r["name"] for r in self._conn().execute(
            "SELECT name FROM records WHERE kind=? ORDER BY creation_time", (kind,))]

    def remove(self, kind: str, name: str) -> bool:
        cur = self._conn().execute("DELETE FROM records WHERE kind=? AND name=?", (kind, name))
        return cur.rowcount > 0

    # ------------------------------------------------------------------ tags
    def add_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        self._conn().executemany(
            "INSERT OR REPLACE INTO tags VALUES (?, ?, ?)",
            [(arn, str(t.get("Key", "")), str(t.get("Value", ""))) for t in tags or []])

    def tags(self, arn: str) -> list[dict[str, str]]:
        return [{"Key": r["key"], "Value": r["value"]} for r in self._conn().execute(
            "SELECT key, value FROM tags WHERE arn=? ORDER BY key", (arn,))]

    def delete_tags(self, arn: str, keys: list[str] | None = None) -> None:
        if keys is None:
            self._conn().execute("DELETE FROM tags WHERE arn=?", (arn,))
        else:
            self._conn().executemany("DELETE FROM tags WHERE arn=? AND key=?",
                                     [(arn, k) for k in keys])
