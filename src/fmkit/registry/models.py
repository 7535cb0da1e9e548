"""Model records: a registered name for a model folder, with the job and metrics behind it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmkit.errors import ConfigError, RegistryError
from fmkit.registry.db import Database, dumps
from fmkit.registry.records import Model, check_name


class Models:
    """The ``models`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        name: str,
        artifact: str | Path,
        *,
        training_job: str | None = None,
        predictor_type: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> Model:
        """Register the model folder ``artifact`` as ``name`` and return the record.

        A local path is stored absolute; a URI (``s3://bucket/prefix``) as given. With
        ``replace=False`` an existing name raises ConfigError.
        """
        check_name(name, what="model")
        text = str(artifact)
        path = text if "://" in text else str(Path(artifact).expanduser().resolve())
        verb = "INSERT OR REPLACE" if replace else "INSERT"

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"{verb} INTO models (name, artifact, training_job, predictor_type, "
                    "metrics, creation_time) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, path, training_job, predictor_type, dumps(dict(metrics or {})),
                     time.time()),
                )
            except sqlite3.IntegrityError:
                raise ConfigError(
                    f"a model named {name!r} already exists; choose another name."
                ) from None

        self.db.write(insert)
        return self.get(name)

    def get(self, name: str) -> Model:
        rows = self.db.query("SELECT * FROM models WHERE name=?", (name,))
        if not rows:
            raise RegistryError(f"no model named {name!r}; `fmkit models list` shows the names.")
        return Model.from_row(rows[0])

    def list(self) -> list[Model]:
        """Return every model, newest first."""
        rows = self.db.query("SELECT * FROM models ORDER BY creation_time DESC, name")
        return [Model.from_row(r) for r in rows]

    def remove(self, name: str) -> None:
        """Forget the model ``name`` (its folder is left alone)."""
        if not self.db.execute("DELETE FROM models WHERE name=?", (name,)):
            raise RegistryError(f"no model named {name!r}.")
