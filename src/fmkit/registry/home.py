"""Where fmkit keeps its registry and job folders: ``$FMKIT_HOME``, default ``~/.fmkit``.

This is the only module below the front ends that reads the environment
(``FMKIT_HOME``, ``FMKIT_JOB_SLOTS``); everything else takes paths.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FMKIT_HOME"
DB_NAME = "registry.db"


def fmkit_home() -> Path:
    """Return fmkit's home folder: ``$FMKIT_HOME`` if set and non-empty, else ``~/.fmkit``.

    The folder is not created here; :class:`fmkit.registry.Registry` creates it on first use.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".fmkit"


def registry_path(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the registry database path, ``<home>/registry.db``."""
    return Path(home if home is not None else fmkit_home()) / DB_NAME


def jobs_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder holding one sub-folder per job (models, logs): ``<home>/jobs``."""
    return Path(home if home is not None else fmkit_home()) / "jobs"


def slots_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of job-slot lock files, ``<home>/slots``."""
    return Path(home if home is not None else fmkit_home()) / "slots"


def job_slots() -> int | None:
    """Return ``$FMKIT_JOB_SLOTS`` (how many background jobs train at once), if set."""
    value = os.environ.get("FMKIT_JOB_SLOTS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def child_environ(home: str | os.PathLike[str]) -> dict[str, str]:
    """Return the environment for a child process (a background job, a model server) that
    keeps its records under ``home``: this process's environment with ``FMKIT_HOME`` set."""
    env = dict(os.environ)
    env[ENV_VAR] = str(home)
    return env
