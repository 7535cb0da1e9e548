"""A job's log: every line fmkit logs while the job runs, kept in the registry.

:class:`JobLogHandler` is attached to the ``fmkit`` logger for the duration of a job (in
the process that runs it), so the CLI's terminal output, a background job's log and the
local SageMaker API's CloudWatch stream are the same lines, ``#quality_metric`` ones
included. Readers page through them with :func:`fmkit.jobs.training.log_events`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmkit.registry import Registry

_FORMAT = logging.Formatter("%(message)s")
# a job's log reaches the registry at least this often (seconds), or every FLUSH_LINES lines
FLUSH_S = 0.5
FLUSH_LINES = 256


class JobLogHandler(logging.Handler):
    """Append each record's message to a job's log in the registry (and to ``on_log``).

    A registry that cannot be written (locked for longer than its timeout) loses that line
    with a debug message; logging never stops training.
    """

    def __init__(self, registry: Registry, job_name: str,
                 on_log: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.INFO)
        self.registry = registry
        self.job_name = job_name
        self.on_log = on_log
        self.setFormatter(_FORMAT)
        # lines go to the registry in batches: one transaction a line cost 2-5 ms, half a
        # second of a MovieLens `fmkit train` (issue 18). A line waits at most FLUSH_S: a
        # timer writes what is pending when no newer line comes (a long epoch)
        self._pending: list[tuple[float, str]] = []
        self._written = time.time()
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # a bad format string in someone's log call
            return
        if self.on_log is not None:
            self.on_log(message)
        with self.lock:  # logging.Handler's own lock
            self._pending.append((record.created, message))
            due = (len(self._pending) >= FLUSH_LINES
                   or record.created - self._written >= FLUSH_S)
            if not due and self._timer is None:
                self._timer = threading.Timer(FLUSH_S, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the lines not yet in the registry (at most FLUSH_S seconds old)."""
        with self.lock:
            pending, self._pending = self._pending, []
            self._written = time.time()
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if not pending:
            return
        try:
            self.registry.jobs.append_log(self.job_name, pending)
        except Exception:  # noqa: BLE001 - the log must never break the job
            logging.getLogger(__name__).debug("could not record a log line", exc_info=True)


@contextmanager
def capture(registry: Registry, job_name: str,
            on_log: Callable[[str], None] | None = None) -> Iterator[JobLogHandler]:
    """Record fmkit's log lines into job ``job_name``'s log while the block runs."""
    log = logging.getLogger("fmkit")
    handler = JobLogHandler(registry, job_name, on_log)
    log.addHandler(handler)
    saved = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        handler.flush()
        log.removeHandler(handler)
        log.setLevel(saved)


def record_line(registry: Registry, job_name: str, message: str) -> None:
    """Append one line to a job's log directly (lines of the service itself)."""
    registry.jobs.append_log(job_name, [(time.time(), message)])
