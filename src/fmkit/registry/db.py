"""The registry's SQLite database: schema, connections and retried transactions.

Several processes write at once (training jobs, a tuner and its trial workers, ``fmkit jobs
stop``), so the database runs in WAL mode (readers never block the writer), every connection
waits up to ``timeout_s`` for a lock (``busy_timeout``), and every write is one short
``BEGIN IMMEDIATE`` transaction that is retried with backoff while the database is locked.
Connections are opened per operation, so a :class:`Database` is safe to share between
threads and to use after ``fork``.

JSON columns hold dicts and lists (hyperparameters, channels, metrics); times are Unix
seconds (float).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fmkit.errors import RegistryError

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS training_jobs (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    channels TEXT NOT NULL DEFAULT '{}',
    final_metrics TEXT NOT NULL DEFAULT '{}',
    model_dir TEXT,
    artifact TEXT,
    log_file TEXT,
    start_time REAL NOT NULL,
    end_time REAL,
    failure_reason TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    best_epoch INTEGER,
    pid INTEGER,
    host TEXT,
    tuning_job TEXT,
    trial_number INTEGER,
    objective_value REAL,
    secondary_status TEXT,
    transitions TEXT NOT NULL DEFAULT '[]',
    source TEXT,
    tags TEXT NOT NULL DEFAULT '{}',
    request TEXT,
    output_tarball TEXT
);
CREATE INDEX IF NOT EXISTS training_jobs_tuning ON training_jobs (tuning_job, trial_number);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    job_name TEXT NOT NULL REFERENCES training_jobs (name) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (job_name, epoch)
);
CREATE TABLE IF NOT EXISTS tuning_jobs (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    objective_metric TEXT NOT NULL,
    direction TEXT NOT NULL,
    strategy TEXT NOT NULL,
    ranges TEXT NOT NULL DEFAULT '{}',
    static_hyperparameters TEXT NOT NULL DEFAULT '{}',
    channels TEXT NOT NULL DEFAULT '{}',
    max_jobs INTEGER NOT NULL,
    max_parallel_jobs INTEGER NOT NULL,
    best_training_job TEXT,
    best_objective_value REAL,
    start_time REAL NOT NULL,
    end_time REAL,
    failure_reason TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    host TEXT
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    artifact TEXT NOT NULL,
    training_job TEXT,
    predictor_type TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    creation_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    url TEXT,
    host TEXT,
    port INTEGER,
    pid INTEGER,
    status TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    creation_time REAL NOT NULL,
    last_modified_time REAL NOT NULL,
    failure_reason TEXT,
    model_name TEXT
);
CREATE TABLE IF NOT EXISTS log_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name TEXT NOT NULL,
    time REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_job ON log_events (job_name, id);
CREATE TABLE IF NOT EXISTS transform_jobs (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model_dir TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    start_time REAL NOT NULL,
    end_time REAL,
    failure_reason TEXT,
    pid INTEGER,
    host TEXT,
    source TEXT
);
"""

# columns added after schema version 1: (table, column, declaration), applied to older files
_ADDED_COLUMNS = (
    ("training_jobs", "secondary_status", "TEXT"),
    ("training_jobs", "transitions", "TEXT NOT NULL DEFAULT '[]'"),
    ("training_jobs", "source", "TEXT"),
    ("training_jobs", "tags", "TEXT NOT NULL DEFAULT '{}'"),
    ("training_jobs", "request", "TEXT"),
    ("training_jobs", "output_tarball", "TEXT"),
    ("endpoints", "failure_reason", "TEXT"),
    ("endpoints", "model_name", "TEXT"),
)

_LOCKED = ("locked", "busy")


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a version-1 registry up to date: add the columns later versions introduced."""
    for table, column, decl in _ADDED_COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()}
        if have and column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def dumps(value: Any) -> str:
    """Encode a JSON column (non-finite floats become null, other objects their str)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and callable(v.item):  # numpy scalars
            return clean(v.item())
        return v

    return json.dumps(clean(value), default=str, sort_keys=True)


def loads(text: str | None) -> Any:
    """Decode a JSON column (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


class Database:
    """The registry database at ``path``, created with its schema on first use.

    Parameters
    ----------
    path : path-like
        The SQLite file; its folder is created if missing.
    timeout_s : float, default=30.0
        How long one operation waits for other writers before raising
        :class:`~fmkit.errors.RegistryError`.

    Raises
    ------
    RegistryError
        The file is not an SQLite database, is from a newer fmkit, or cannot be created.
    """

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create the registry folder {self.path.parent}: {exc}") \
                from None
        self._init_schema()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self.timeout_s, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the registry {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _init_schema(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            # one write transaction from reading the version to setting it: processes that
            # open an older registry at once upgrade it once (no "duplicate column name")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise RegistryError(
                        f"the registry {self.path} has schema version {version}, newer than "
                        f"this fmkit's {SCHEMA_VERSION}; upgrade fmkit or set FMKIT_HOME to "
                        "another folder."
                    )
                if 0 < version < SCHEMA_VERSION:
                    _add_columns(conn)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if version < SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        def wal(conn: sqlite3.Connection) -> None:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")

        self._retry(wal)
        self._retry(create)

    def _retry(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        attempt = 0
        while True:
            attempt += 1
            conn = self._connect()
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.rollback()
                message = str(exc).lower()
                if not any(word in message for word in _LOCKED):
                    raise RegistryError(f"registry {self.path}: {exc}") from None
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"registry {self.path} stayed locked for {self.timeout_s:g} s "
                        f"({attempt} attempts); another process holds it."
                    ) from None
                logger.debug("registry locked, retry %d in %.3f s", attempt, delay)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise RegistryError(
                    f"registry {self.path} is not a usable SQLite database ({exc}); move it "
                    "away or set FMKIT_HOME to another folder."
                ) from None
            finally:
                conn.close()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, retried while locked.

        ``fn`` may run more than once, so it must only touch the database.
        """

        def txn(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            conn.execute("COMMIT")
            return result

        return self._retry(txn)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; return the changed row count."""
        return self.write(lambda conn: conn.execute(sql, params).rowcount)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Return every row of a read statement."""
        return self._retry(lambda conn: conn.execute(sql, params).fetchall())

    def reader(self) -> KeptReader:
        """Return a :class:`KeptReader`: one kept connection for a read repeated often."""
        return KeptReader(self)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Yield a raw connection (autocommit; no retries), closed afterwards; for tests."""
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()


class KeptReader:
    """Reads on one connection kept open, for a statement run every epoch or sweep.

    :meth:`Database.query` opens a connection per call (about a millisecond: a 200-sweep
    MCMC job spent 0.2 s reading its stop flag). In WAL mode a read on a kept autocommit
    connection sees every committed write and blocks no writer. Any SQLite error closes
    the connection and falls back to :meth:`Database.query` (which retries while locked).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: sqlite3.Connection | None = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            if self._conn is None:
                self._conn = self.db._connect()
            return self._conn.execute(sql, params).fetchall()
        except (sqlite3.Error, RegistryError):
            self.close()
            return self.db.query(sql, params)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
