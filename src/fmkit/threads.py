"""numpy work split over threads: the same numbers, sooner on several cores.

numpy's and scipy's ufuncs, sorts and searches release the GIL, so independent pieces of
one computation run at once on a small, lazily started pool: the parts of a long
element-wise computation (:func:`in_parts`: the probit sampler's ``ndtr``/``ndtri`` over
every training row, 45% of a binary MCMC sweep on MovieLens 100K) or a few separate calls
(:func:`concurrently`: the two sorts of a training epoch's AUC, the two halves of a libsvm
block). Every piece computes what
it would on one thread, so results do not depend on the number of threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# below this many elements a part costs more to hand over than it saves
MIN_PART = 20_000
_MAX_THREADS = 4
_WARNED: set[str] = set()
logger = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def n_threads() -> int:
    """Threads to use: ``FMKIT_NUM_THREADS`` if set, else the usable cores (at most 4).

    A value that is not a positive integer is ignored, with one warning naming it."""
    env = os.environ.get("FMKIT_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if env and env not in _WARNED:
        _WARNED.add(env)
        logger.warning("FMKIT_NUM_THREADS=%r is not a positive integer; ignored (the usable "
                       "cores are used, at most %d).", env, _MAX_THREADS)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


_worker = threading.local()


def _mark_worker() -> None:
    _worker.busy = True


def _serial() -> bool:
    """Run on this thread only: one thread is allowed, or this is one of the pool's (a
    nested split would wait on the workers that are waiting on it)."""
    return n_threads() == 1 or getattr(_worker, "busy", False)


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here; start a new one."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fmkit",
                                       initializer=_mark_worker)
        return _pool


def in_parts(n: int, work: Callable[[int, int], None]) -> None:
    """Call ``work(a, b)`` on consecutive ranges covering ``0..n``, in parallel.

    ``work`` must write only its own range. The calling thread takes the first range;
    exceptions from any part are raised here. Called from a pool thread, it runs the whole
    range there (no nested split).
    """
    parts = 1 if _serial() else min(n_threads(), max(1, n // MIN_PART))
    bounds = [n * k // parts for k in range(parts + 1)]
    concurrently(*[lambda a=a, b=b: work(a, b) for a, b in zip(bounds, bounds[1:],
                                                                strict=False)])


def concurrently(*calls: Callable[[], T]) -> list[T]:
    """Return ``[call() for call in calls]``, the calls run at once (the first on the
    calling thread; one after the other where :func:`n_threads` is 1 or on a pool thread).
    Every call has ended when this returns, raised or not."""
    if _serial() or len(calls) < 2:
        return [call() for call in calls]
    pool = _executor(n_threads() - 1)
    futures = [pool.submit(call) for call in calls[1:]]
    try:
        first = calls[0]()
    finally:
        rest = [f.result() for f in futures]
    return [first, *rest]
