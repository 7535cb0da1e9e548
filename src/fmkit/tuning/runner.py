"""Running a tuning job: trials scheduled on worker slots, each recorded as a training job.

:class:`TuningRun` holds the state of one running job, shared by its ``max_parallel_jobs``
threads: each thread owns a worker (a child process, or the calling process), asks the study
for the next trial, trains it, reports every epoch to the pruner, records the outcome in the
registry and keeps only the best model (``keep_models='best'``). The job stops starting
trials on ``max_run_seconds``, ``fmkit tuning stop`` or Ctrl-C.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fmkit.registry.records import COMPLETED, FAILED, STOPPED
from fmkit.tuning.ranges import suggest
from fmkit.tuning.results import Trial, TuningResult
from fmkit.tuning.worker import (
    CONTINUE,
    PRUNE,
    STOP,
    InlineWorker,
    ProcessWorker,
    TrialData,
    TrialOutcome,
    TrialSpec,
)

logger = logging.getLogger(__name__)


class TuningRun:
    """The state of one running tuning job, shared by its worker threads.

    Parameters
    ----------
    tuner : fmkit.tuning.Tuner
        Its settings (max_jobs, max_parallel_jobs, max_run_seconds, keep_models,
        include_defaults).
    plan : dict
        What :meth:`fmkit.tuning.Tuner.check` resolved.
    registry : Registry
    study : optuna.Study
    name : str
        The tuning job (already recorded).
    per_epoch : bool
        Whether trials get a validation set (the pruner reads ``validation:<metric>``).
    channels : dict
        The tuning job's channels, recorded on every trial.
    validation_fraction : float, optional
        Set when the validation set was held out of train.
    """

    def __init__(self, tuner: Any, plan: dict[str, Any], registry: Any, study: Any,
                 name: str, per_epoch: bool, channels: dict[str, Any],
                 validation_fraction: float | None = None) -> None:
        self.tuner = tuner
        self.plan = plan
        self.registry = registry
        self.study = study
        self.name = name
        self.channels = channels  # the tuning job's, recorded on every trial
        self.per_epoch_metric = f"validation:{plan['metric']}" if per_epoch else None
        self.validation_fraction = validation_fraction
        self.lock = threading.Lock()
        self.next_number = 0
        self.trials: list[Trial] = []
        self.best: Trial | None = None
        self.started = time.monotonic()
        self.deadline = (self.started + tuner.max_run_seconds
                         if tuner.max_run_seconds is not None else None)
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None

    # --------------------------------------------------------------- scheduling
    def execute(self, data: TrialData, *, processes: bool) -> None:
        n = self.tuner.max_parallel_jobs
        threads = max(1, (os.cpu_count() or 1) // n)
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="fmkit-tune") as pool:
            futures = [pool.submit(self._slot, data, processes, threads) for _ in range(n)]
            try:
                while not all(f.done() for f in futures):
                    time.sleep(0.2)
                    self._check_stop()
            except KeyboardInterrupt:
                # running trials stop after their current epoch and keep their models
                self._request_stop("interrupted (Ctrl-C)")
            for f in futures:
                f.result()

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            return
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self._request_stop(f"max_run_seconds={self.tuner.max_run_seconds:g} reached")
        elif self.registry.tuning.stop_requested(self.name):
            self._request_stop("stopped by user")

    def _request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()
            logger.info("tuning job %s stopping: %s", self.name, reason)

    def _slot(self, data: TrialData, processes: bool, threads: int) -> None:
        worker: Any = None
        if not processes:  # trials in this thread: its numba CPU steps get its share
            from fmkit.engine.cpu_kernel import limit_threads

            limit_threads(threads)
        try:
            while True:
                self._check_stop()
                with self.lock:
                    if self.stop_event.is_set() or self.next_number >= self.tuner.max_jobs:
                        return
                    number = self.next_number
                    self.next_number += 1
                    trial = self.study.ask()
                    values = {k: suggest(trial, k, r) for k, r in self.plan["ranges"].items()}
                if worker is None or not worker.alive:
                    if worker is not None:
                        worker.close()
                    worker = ProcessWorker(data, torch_threads=threads) if processes \
                        else InlineWorker(data)
                self._run_trial(worker, trial, number, values)
        finally:
            if worker is not None:
                worker.close()

    # --------------------------------------------------------------- one trial
    def _run_trial(self, worker: Any, trial: Any, number: int, values: dict[str, Any]) -> None:
        registry = self.registry
        job_name = f"{self.name}-{number + 1:03d}"
        job_dir = registry.job_dir(job_name)
        job_dir.mkdir(parents=True, exist_ok=True)
        model_dir = str(job_dir / "model")
        log_file = str(job_dir / "train.log") if isinstance(worker, ProcessWorker) else None
        hyperparameters = {**self.plan["fixed"], **values}
        registry.jobs.create(job_name, hyperparameters=hyperparameters,
                             channels=self.channels,
                             model_dir=model_dir, log_file=log_file, tuning_job=self.name,
                             trial_number=number + 1)
        remaining = None
        if self.deadline is not None:
            remaining = max(0.01, self.deadline - time.monotonic())
        spec = TrialSpec(number=number + 1, job_name=job_name, hyperparameters=hyperparameters,
                         model_dir=model_dir, log_file=log_file, max_run_seconds=remaining,
                         defaults=self.plan["defaults"])
        baseline = self.tuner.include_defaults and number == 0
        pretty = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        logger.info("trial %s: %s", job_name, pretty)

        def on_epoch(epoch: int, logs: dict[str, float]) -> str:
            registry.jobs.log_epoch(job_name, epoch, logs)
            if self.per_epoch_metric is not None and self.per_epoch_metric in logs:
                value = logs[self.per_epoch_metric]
                if math.isfinite(value):
                    with self.lock:
                        trial.report(value, epoch)
                        # the baseline trial (include_defaults) always runs in full
                        if not baseline and trial.should_prune():
                            return PRUNE
            if self.stop_event.is_set() or registry.jobs.stop_requested(job_name):
                return STOP
            return CONTINUE

        outcome = worker.run(spec, on_epoch)
        self._record(trial, number, job_name, values, outcome, model_dir)

    def _record(self, trial: Any, number: int, job_name: str, values: dict[str, Any],
                outcome: TrialOutcome, model_dir: str) -> None:
        import optuna

        objective = self.plan["objective"]
        value = outcome.metrics.get(objective)
        reason = outcome.reason
        status = {"Completed": COMPLETED, "Stopped": STOPPED, "Pruned": STOPPED}.get(
            outcome.status, FAILED)
        if status != FAILED and outcome.status != "Pruned" and (
                value is None or not math.isfinite(value)):
            status, reason = FAILED, (f"the objective {objective} was not produced "
                                      f"(got {value!r})")
            value = None
        if outcome.status == "Pruned":
            value = None
        if status == STOPPED and outcome.status != "Pruned" and (
                not reason or reason == "stopped by a callback"):
            reason = ("stopped by user" if self.registry.jobs.stop_requested(job_name)
                      else self.stop_reason or reason)
        self.registry.jobs.finish(
            job_name, status=status, metrics=outcome.metrics,
            artifact=outcome.artifact if status != FAILED else None, failure_reason=reason,
            best_epoch=outcome.best_epoch, objective_value=value)
        result = Trial(number=number + 1, training_job=job_name, status=status,
                       hyperparameters=dict(values), objective_value=value,
                       metrics=dict(outcome.metrics), seconds=outcome.seconds,
                       failure_reason=reason,
                       model_dir=outcome.artifact if status != FAILED else None)
        hook = self.tuner.on_trial_end
        if hook is not None and result.model_dir is not None:
            hook(result)  # e.g. SageMaker's model.tar.gz, written as each trial ends
        with self.lock:
            if status == COMPLETED:
                self.study.tell(trial, value)
            elif outcome.status == "Pruned" or status == STOPPED:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.trials.append(result)
            drop = None
            if value is not None and result.model_dir is not None and self._better(result):
                drop, self.best = self.best, result
                self.registry.tuning.set_best(self.name, job_name, value)
            elif result.model_dir is not None:
                drop = result
            if drop is not None and drop.model_dir and self.tuner.keep_models == "best":
                shutil.rmtree(drop.model_dir, ignore_errors=True)
                self.registry.jobs.clear_artifact(drop.training_job)
        shown = "-" if value is None else f"{value:.6g}"
        logger.info("trial %s %s: %s=%s (%.1f s)%s", job_name, status, objective, shown,
                    outcome.seconds, f" [{reason}]" if reason else "")

    def _better(self, trial: Trial) -> bool:
        if self.best is None or self.best.objective_value is None:
            return True
        assert trial.objective_value is not None
        if self.plan["direction"] == "maximize":
            return trial.objective_value > self.best.objective_value
        return trial.objective_value < self.best.objective_value

    # --------------------------------------------------------------- end
    def finish(self) -> TuningResult:
        registry = self.registry
        self.trials.sort(key=lambda t: t.number)
        status = STOPPED if self.stop_event.is_set() else COMPLETED
        reason = self.stop_reason
        model_name = None
        if self.best is None:
            if status == COMPLETED:
                status = FAILED
                reason = "no trial produced the objective metric; see the trials' failure reasons"
        else:
            model = registry.register_model(
                self.name, self.best.model_dir or "", job_name=self.best.training_job,
                metrics=self.best.metrics, predictor_type=self.plan["predictor_type"])
            model_name = model.name
        registry.tuning.finish(self.name, status=status, failure_reason=reason)
        logger.info("tuning job %s %s; best: %s", self.name, status,
                    "none" if self.best is None else
                    f"{self.best.training_job} {self.plan['objective']}="
                    f"{self.best.objective_value:.6g}")
        return TuningResult(name=self.name, objective_metric=self.plan["objective"],
                            direction=self.plan["direction"], status=status,
                            trials=list(self.trials), best_trial=self.best,
                            model_name=model_name,
                            validation_fraction=self.validation_fraction)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
