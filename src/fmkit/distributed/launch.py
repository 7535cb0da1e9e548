"""Process groups for multi-process training: local workers, torchrun and multi-host jobs.

- :func:`launch` starts ``nprocs`` worker processes on this machine (a fork server), joins them
  in a process group with a rendezvous on ``127.0.0.1`` and a free port, runs a function
  in each, and watches them: when one fails or dies, the others are stopped and
  :class:`~fmkit.errors.WorkerError` (or the worker's own fmkit error) says which worker
  failed and why. A job never hangs on a dead worker: the survivors' collectives fail
  within ``timeout_s`` at the latest, and the launcher stops them as soon as it sees the
  death (usually within a second).
- :func:`torchrun_env` reads torchrun's ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/
  ``MASTER_PORT``/``LOCAL_RANK`` from a mapping the caller passes (the CLI passes
  ``os.environ``), so ``torchrun --nnodes 2 --nproc-per-node 4 -m fmkit train ...`` runs
  the same code.
- :func:`init_process_group` joins the group described by a :class:`Rendezvous` (one
  from torchrun, from SageMaker's resourceconfig.json, or from :func:`launch`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import wait
from typing import Any

from fmkit.errors import ConfigError, FMError, WorkerError

logger = logging.getLogger(__name__)

# seconds a collective may wait for a peer before failing (a hung or dead worker)
DEFAULT_TIMEOUT_S = 300.0
# seconds the launcher waits for the other workers to notice a failure before stopping them
FAILURE_GRACE_S = 2.0


@dataclass(frozen=True)
class Rendezvous:
    """Where and as whom a process joins the group."""

    rank: int
    world_size: int
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    local_rank: int = 0

    @property
    def init_method(self) -> str:
        return f"tcp://{self.master_addr}:{self.master_port}"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_backend(device: str) -> str:
    """Return ``'nccl'`` for a CUDA device (or 'auto' with CUDA present), else ``'gloo'``."""
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return "nccl"
    return "gloo"


def torchrun_env(environ: Mapping[str, str]) -> Rendezvous | None:
    """Return the rendezvous torchrun describes in ``environ``, or None outside torchrun.

    Raises
    ------
    ConfigError
        The variables are present but not integers, or the rank is out of range.
    """
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    if not all(k in environ for k in needed):
        return None
    try:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        port, local = int(environ["MASTER_PORT"]), int(environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE, MASTER_PORT and LOCAL_RANK must be integers; got "
                          + ", ".join(f"{k}={environ.get(k)!r}" for k in
                                      ("RANK", "WORLD_SIZE", "MASTER_PORT", "LOCAL_RANK"))
                          + ".") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK must be in [0, WORLD_SIZE); got RANK={rank}, WORLD_SIZE={world}.")
    return Rendezvous(rank, world, environ["MASTER_ADDR"], port, local)


def init_process_group(rdzv: Rendezvous, *, backend: str = "gloo",
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group of ``rdzv`` (blocks until all ``world_size`` have joined).

    With NCCL, the process uses CUDA device ``local_rank % device_count``.
    """
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(rdzv.local_rank % max(torch.cuda.device_count(), 1))
    dist.init_process_group(backend, init_method=rdzv.init_method, rank=rdzv.rank,
                            world_size=rdzv.world_size, timeout=timedelta(seconds=timeout_s))


def shutdown_process_group() -> None:
    """Leave the process group if one is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class _Failure:
    rank: int
    exitcode: int | None
    module: str | None = None
    name: str | None = None
    message: str | None = None
    trace: str | None = None

    @property
    def is_fm_error(self) -> bool:
        return self.module == "fmkit.errors"

    @property
    def is_collective_error(self) -> bool:
        # what survivors raise when a peer vanished: the symptom, not the cause
        text = f"{self.name} {self.message}".lower()
        return any(w in text for w in ("gloo", "nccl", "connection", "peer", "distbackend",
                                       "timed out", "timeout", "broken pipe"))

    def describe(self, world_size: int) -> str:
        who = f"worker {self.rank} of {world_size}"
        if self.name is not None:
            return f"{who} failed: {self.name}: {self.message}"
        code = self.exitcode
        if code is not None and code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return (f"{who} {how} without reporting an error (out of memory, or killed?); the "
                "other workers were stopped.")


def _configure_worker_logging(rank: int, level: int | None) -> None:
    if level is None:
        return
    log = logging.getLogger("fmkit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level if rank == 0 else max(level, logging.WARNING))
    log.propagate = False


def _worker_main(rank: int, nprocs: int, port: int, backend: str, timeout_s: float,
                 log_level: int | None, target: Callable[..., Any], args: tuple[Any, ...],
                 results: Any) -> None:
    """Body of one spawned worker: join the group, run ``target``, report, exit."""
    try:
        _configure_worker_logging(rank, log_level)
        if backend == "gloo":
            # N workers share the cores: N x all-cores intra-op threads oversubscribe them
            # (as torchrun's OMP_NUM_THREADS=1 avoids)
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // nprocs))
        init_process_group(Rendezvous(rank, nprocs, "127.0.0.1", port, rank),
                           backend=backend, timeout_s=timeout_s)
        value = target(*args)
        results.put(("ok", rank, value if rank == 0 else None))
        results.close()
        results.join_thread()
        shutdown_process_group()
    except BaseException as exc:  # noqa: BLE001 - report everything, exit without teardown
        results.put(("error", rank, type(exc).__module__, type(exc).__name__, str(exc),
                     traceback.format_exc()))
        results.close()
        results.join_thread()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)


def launch(target: Callable[..., Any], args: Sequence[Any] = (), *, nprocs: int,
           backend: str = "gloo", timeout_s: float = DEFAULT_TIMEOUT_S,
           log_level: int | None = None, poll_s: float = 0.2) -> Any:
    """Run ``target(*args)`` in ``nprocs`` new processes joined in one process group.

    Parameters
    ----------
    target : callable
        A module-level function (it is pickled into each worker). Inside it,
        ``torch.distributed`` is initialised; build a
        :class:`~fmkit.distributed.strategy.DistributedStrategy` there.
    args : sequence
        Picklable positional arguments, the same for every worker.
    nprocs : int
        Number of workers (>= 1).
    backend : {'gloo', 'nccl'}
        gloo for CPU training, NCCL for CUDA (worker r uses device ``r % device_count``).
    timeout_s : float
        How long a collective waits for a peer before failing.
    log_level : int, optional
        Logging level of the ``fmkit`` logger in the workers (rank 0 logs; the others
        show warnings only). None leaves workers' logging unconfigured.

    Returns
    -------
    Any
        Rank 0's return value (it must be picklable).

    Raises
    ------
    FMError subclass
        A worker raised an fmkit error (bad data, bad hyperparameters): the same class,
        with the worker named.
    WorkerError
        A worker raised another exception, exited non-zero or was killed.
    """
    if nprocs < 1:
        raise ConfigError(f"instance_count must be >= 1; got {nprocs}.")
    ctx = _context()
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker_main, name=f"fmkit-worker-{r}",
                         args=(r, nprocs, port, backend, timeout_s, log_level, target,
                               tuple(args), results), daemon=False)
             for r in range(nprocs)]
    for p in procs:
        p.start()
    failures: dict[int, _Failure] = {}
    value: Any = None
    first_failure_at: float | None = None

    def drain(block_s: float = 0.0) -> None:
        nonlocal value
        end = time.monotonic() + block_s
        while True:
            try:
                left = end - time.monotonic()
                msg = results.get(timeout=left) if left > 0 else results.get_nowait()
            except queue_mod.Empty:
                return
            if msg[0] == "ok":
                if msg[1] == 0:
                    value = msg[2]
            else:
                _, rank, module, name, message, trace = msg
                failures[rank] = _Failure(rank, 1, module, name, message, trace)

    try:
        alive = set(range(nprocs))
        while alive:
            wait([procs[r].sentinel for r in alive], timeout=poll_s)
            drain()
            for r in sorted(alive):
                code = procs[r].exitcode
                if code is None:
                    continue
                alive.discard(r)
                if code != 0:
                    failures.setdefault(r, _Failure(r, code))
                    failures[r].exitcode = code
                    if first_failure_at is None:
                        first_failure_at = time.monotonic()
            if first_failure_at is not None and (
                    not alive or time.monotonic() - first_failure_at > FAILURE_GRACE_S):
                break
    except KeyboardInterrupt:
        _stop(procs)
        raise
    if failures:
        _stop(procs)
        drain(block_s=0.5)
        raise _job_error(failures, nprocs, timeout_s)
    drain(block_s=1.0)
    for p in procs:
        p.join()
    return value


def _context() -> Any:
    """Workers start from a fork server that has torch and the trainer imported already
    (a worker then starts in well under a second instead of re-importing torch); spawn
    where fork servers do not exist. Neither inherits CUDA state or threads."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch.distributed", "fmkit.engine.trainer",
                                    "fmkit.distributed.strategy"])
        return ctx
    return mp.get_context("spawn")


def _stop(procs: list[Any]) -> None:
    """Terminate live workers (SIGTERM, then SIGKILL after 5 s)."""
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    end = time.monotonic() + 5.0
    for p in procs:
        p.join(max(end - time.monotonic(), 0.0))
        if p.exitcode is None:
            p.kill()
            p.join()


def _job_error(failures: dict[int, _Failure], world_size: int, timeout_s: float) -> FMError:
    """Pick the root cause among the failures and build the error to raise."""
    def order(f: _Failure) -> tuple[int, int]:
        if f.is_fm_error:
            return (0, f.rank)
        if f.name is None:  # died without a word: killed, out of memory, os._exit
            return (1, f.rank)
        if not f.is_collective_error:
            return (2, f.rank)
        return (3, f.rank)

    cause = min(failures.values(), key=order)
    for f in failures.values():
        if f.trace and f is not cause:
            logger.debug("worker %d: %s", f.rank, f.trace)
    if cause.trace:
        logger.debug("worker %d traceback:\n%s", cause.rank, cause.trace)
    if cause.is_fm_error:
        from fmkit import errors

        cls = getattr(errors, cause.name or "", FMError)
        if isinstance(cls, type) and issubclass(cls, FMError):
            return cls(f"worker {cause.rank} of {world_size}: {cause.message}")
    message = cause.describe(world_size)
    if cause.is_collective_error and "time" in message.lower():
        message += (f" (a peer did not answer for timeout_s={timeout_s:g} s: it hung or was "
                    "overloaded; the other workers were stopped. If the workers are only "
                    "slow, raise --worker-timeout.)")
    return WorkerError(message)
