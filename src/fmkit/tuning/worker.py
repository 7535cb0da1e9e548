"""Run one tuning trial: train with the trial's hyperparameters, save the model, report.

:func:`run_trial` does the work in the calling process. :class:`ProcessWorker` keeps one
spawned child process (data sent once) that runs trials one after another, so parallel
trials use separate cores instead of sharing one interpreter's lock. Either way, after
every epoch the worker calls back to the tuner (``on_epoch(epoch, logs) -> action``) and the
tuner answers ``"continue"``, ``"stop"`` (end now, keep the model: status Stopped) or
``"prune"`` (end now, no model: status Stopped with a pruning reason).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

CONTINUE, STOP, PRUNE = "continue", "stop", "prune"
EpochHook = Callable[[int, dict[str, float]], str]


@dataclass(frozen=True)
class TrialData:
    """The channels every trial trains and scores on."""

    train: SparseBatch
    test: SparseBatch | None = None
    validation: SparseBatch | None = None
    vocabulary: Any = None


@dataclass(frozen=True)
class TrialSpec:
    """What one trial runs: full hyperparameters and where its outputs go."""

    number: int
    job_name: str
    hyperparameters: dict[str, Any]
    model_dir: str | None = None
    log_file: str | None = None
    max_run_seconds: float | None = None
    defaults: str = "fmkit"


@dataclass
class TrialOutcome:
    """How a trial ended. ``status``: Completed, Stopped, Pruned or Failed."""

    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    artifact: str | None = None
    reason: str | None = None
    seconds: float = 0.0


class _Pruned(Exception):
    def __init__(self, epoch: int) -> None:
        super().__init__(f"pruned after epoch {epoch}")
        self.epoch = epoch


class _HookCallback:
    """Trainer callback forwarding each epoch to the tuner and acting on its answer."""

    def __init__(self, on_epoch: EpochHook) -> None:
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        action = self.on_epoch(epoch, {k: float(v) for k, v in logs.items()})
        if action == PRUNE:
            raise _Pruned(epoch)
        return action == STOP


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    from fmkit.errors import FMError

    return f"{type(exc).__name__}: {exc}" + ("" if isinstance(exc, FMError) else where)


def run_trial(spec: TrialSpec, data: TrialData, on_epoch: EpochHook) -> TrialOutcome:
    """Train ``spec``'s configuration on ``data`` in this process; never raises on failure.

    Any exception from training (a bad configuration, divergence, a bug) becomes a
    ``Failed`` outcome with the reason; the model is saved to ``spec.model_dir`` for
    Completed and Stopped trials.
    """
    from fmkit.artifact import save
    from fmkit.config import FMConfig
    from fmkit.engine.trainer import fit

    started = time.perf_counter()
    hook = _HookCallback(on_epoch)
    try:
        config = FMConfig.from_values(spec.hyperparameters, defaults=spec.defaults)  # type: ignore[arg-type]
        result = fit(config, data.train, test=data.test, validation=data.validation,
                     callbacks=[hook], vocabulary=data.vocabulary,
                     max_run_seconds=spec.max_run_seconds)
        artifact = None
        if spec.model_dir is not None:
            artifact = str(save(result.artifact, spec.model_dir))
    except _Pruned as pruned:
        return TrialOutcome("Pruned",
                            reason=f"pruned after epoch {pruned.epoch}: its per-epoch "
                                   "objective trailed the other trials",
                            seconds=time.perf_counter() - started)
    except Exception as exc:  # a failing trial is recorded and the tuning job goes on
        logger.debug("trial %d failed", spec.number, exc_info=True)
        return TrialOutcome("Failed", reason=_describe(exc)[:2000],
                            seconds=time.perf_counter() - started)
    return TrialOutcome(
        result.status, metrics=dict(result.metrics), best_epoch=result.best_epoch,
        artifact=artifact,
        reason=result.stop_reason if result.status != "Completed" else None,
        seconds=time.perf_counter() - started,
    )


def _serve(conn: Any, data: TrialData, torch_threads: int) -> None:
    """Child-process loop: run trials sent over ``conn`` until told to exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the tuner decides how Ctrl-C stops trials
    import torch

    from fmkit.engine.cpu_kernel import limit_threads

    torch.set_num_threads(max(1, torch_threads))
    limit_threads(torch_threads)  # the numba CPU step: the same share of the cores
    root = logging.getLogger("fmkit")
    root.setLevel(logging.INFO)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] != "trial":
            return
        spec: TrialSpec = message[1]
        handler = None
        if spec.log_file is not None:
            handler = logging.FileHandler(spec.log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            root.addHandler(handler)

        def hook(epoch: int, logs: dict[str, float]) -> str:
            conn.send(("epoch", epoch, logs))
            return str(conn.recv())

        try:
            outcome = run_trial(spec, data, hook)
        finally:
            if handler is not None:
                root.removeHandler(handler)
                handler.close()
        conn.send(("done", outcome))


class ProcessWorker:
    """One child process that runs trials one at a time (started once, data sent once).

    The child is a fresh interpreter running :func:`_child_main` over a socket pair, so it
    never re-imports the caller's ``__main__`` (scripts without an
    ``if __name__ == "__main__"`` guard work) and it exits when the tuner goes away.

    Parameters
    ----------
    data : TrialData
        Sent to the child when it starts.
    torch_threads : int, default=1
        Intra-op threads for the child's torch.
    """

    def __init__(self, data: TrialData, *, torch_threads: int = 1) -> None:
        parent, child = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, str(child.fileno()), str(int(torch_threads))],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        try:
            self._conn.send(("data", data))
        except OSError:  # the child died while starting; run() reports it as a failed trial
            logger.warning("a trial worker process exited while starting (code %s)",
                           self._proc.poll())

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def run(self, spec: TrialSpec, on_epoch: EpochHook) -> TrialOutcome:
        """Run ``spec`` in the child; a dead child gives a ``Failed`` outcome."""
        started = time.perf_counter()
        try:
            self._conn.send(("trial", spec))
            while True:
                if not self._conn.poll(0.5):
                    if not self.alive:
                        break
                    continue
                message = self._conn.recv()
                if message[0] == "epoch":
                    self._conn.send(on_epoch(message[1], message[2]))
                elif message[0] == "done":
                    outcome: TrialOutcome = message[1]
                    return outcome
        except (EOFError, OSError):
            pass
        try:
            code = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            code = None
        return TrialOutcome(
            "Failed", reason=f"the trial's worker process died (exit code {code})",
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        """Ask the child to exit; terminate it if it does not within a few seconds."""
        try:
            self._conn.send(("exit",))
        except OSError:
            pass
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            self._proc.wait(5.0)
        self._conn.close()


_CHILD_CODE = "import sys; from fmkit.tuning.worker import _child_main; _child_main(sys.argv[1:])"


def _child_main(argv: list[str]) -> None:
    conn = Connection(int(argv[0]))
    message = conn.recv()
    if message[0] != "data":
        return
    _serve(conn, message[1], int(argv[1]))


class InlineWorker:
    """Runs trials in the calling thread (tests, ``max_parallel_jobs=1`` without processes)."""

    def __init__(self, data: TrialData) -> None:
        self.data = data
        self.alive = True

    def run(self, spec: TrialSpec, on_epoch: EpochHook) -> TrialOutcome:
        return run_trial(spec, self.data, on_epoch)

    def close(self) -> None:
        pass

