"""Detached processes: the runners of background jobs and the model servers of endpoints.

Each starts in a session of its own (so that it outlives the front end that started it and
a signal to the front end's group does not reach it), reads nothing from stdin, appends its
output to a log file, and finds the registry at the home it was given (``FMKIT_HOME``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from fmkit.registry.home import child_environ

if TYPE_CHECKING:
    from fmkit.registry import Registry


def spawn(command: Sequence[str], log_path: str | os.PathLike[str],
          home: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start ``command`` detached, its stdout and stderr appended to ``log_path``, with the
    registry under ``home``; return the process (its pid is the group's)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=child_environ(home))


def start_runner(kind: str, name: str, registry: Registry,
                 on_failure: Callable[[str], object] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m fmkit.jobs.runner KIND NAME`` for the recorded job ``name``; its
    output goes to ``<job folder>/process.log``.

    If the process cannot be started, ``on_failure(reason)`` records the job Failed (so a
    job is never left InProgress with no process) and the OSError is raised.
    """
    folder = registry.job_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return spawn([sys.executable, "-m", "fmkit.jobs.runner", kind, name],
                     folder / "process.log", registry.home)
    except OSError as exc:
        if on_failure is not None:
            on_failure(f"AlgorithmError: could not start the job's process: {exc}")
        raise
