"""Machine capacity: background jobs take slots so they never oversubscribe the cores.

A slot is an exclusively locked file ``<home>/slots/slot-<i>.lock`` (``flock``), held for
the life of the process that runs a job, so a crashed job frees its slot at once. Jobs
that find every slot taken wait (SageMaker's secondary status ``Starting``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def slot_count(configured: int | None = None) -> int:
    """Jobs that may train at once: ``configured``, else one per two cores (at least one),
    since the CPU step of one job already uses every core it is given."""
    if configured is not None and configured >= 1:
        return int(configured)
    return max(1, (os.cpu_count() or 1) // 2)


class Slots:
    """Take ``n`` of the ``total`` slots under ``folder``; release them on :meth:`release`."""

    def __init__(self, folder: Path, total: int) -> None:
        self.folder = folder
        self.total = total
        self.held: list[IO[Any]] = []

    def try_acquire(self, n: int) -> bool:
        """Take ``n`` free slots now (all or none); return whether it did."""
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        n = max(1, min(n, self.total))
        taken: list[IO[Any]] = []
        for i in range(self.total):
            f = open(self.folder / f"slot-{i}.lock", "a+b")  # noqa: SIM115 - held open
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            taken.append(f)
            if len(taken) == n:
                self.held.extend(taken)
                return True
        for f in taken:
            f.close()
        return False

    def acquire(self, n: int, *, cancelled: Callable[[], bool] = lambda: False,
                poll_s: float = 0.5) -> bool:
        """Wait for ``n`` slots; return False if ``cancelled()`` became true first."""
        while not self.try_acquire(n):
            if cancelled():
                return False
            time.sleep(poll_s)
        return True

    def release(self) -> None:
        for f in self.held:
            f.close()  # closing the file drops its lock
        self.held.clear()
