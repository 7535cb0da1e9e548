"""Training jobs: the one service behind ``fmkit train``, the container's ``train``, the
local SageMaker API's CreateTrainingJob and the console's form.

A job reads its channels (:mod:`fmkit.jobs.channels`), trains in one process or in
``instance_count`` torch.distributed workers, saves the model with its ``metrics.json`` in
one atomic step (:mod:`fmkit.jobs.saving`), optionally writes SageMaker's
``model.tar.gz``, and registers the model under the job's name. The registry holds the
job's status, SageMaker-style secondary status transitions, per-epoch metrics and every
log line while it runs (:func:`log_events`), whether it runs in the foreground
(:func:`run`) or in a detached process (:func:`start`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fmkit.errors import ConfigError, DataError
from fmkit.jobs.channels import (
    CHANNELS,
    DISTRIBUTIONS,
    ChannelSpec,
    find_vocabulary,
    normalize_channels,
    open_channel,
)
from fmkit.jobs.hyperparameters import make_config
from fmkit.registry.store import open_registry

if TYPE_CHECKING:
    from fmkit.config import FMConfig
    from fmkit.registry import Registry, TrainingJob
    from fmkit.registry.records import LogEvent

logger = logging.getLogger(__name__)

SOURCES = ("cli", "python", "container", "sagemaker-api", "console", "tuning")
SAGEMAKER_REQUIRED = ("feature_dim", "num_factors", "predictor_type")


@dataclass(frozen=True)
class TrainingRequest:
    """Everything one training job needs; plain data, so it can be stored and rerun.

    Attributes
    ----------
    channels : mapping of str to str or ChannelSpec
        ``train`` (required), ``test`` (scored once after training) and ``validation``
        (scored every epoch; early stopping watches it).
    model_dir : str
        Folder or ``s3://`` prefix for the fmkit model and ``metrics.json``.
    hyperparameters : mapping
        SageMaker names to values or strings (hyperparameters.json's form).
    defaults : {'fmkit', 'sagemaker'}
        The default set under the given hyperparameters.
    required_hyperparameters : tuple of str
        Hyperparameters that must be given (SageMaker requires
        :data:`SAGEMAKER_REQUIRED`).
    name : str, optional
        Job name (SageMaker's rule, unique); generated when None.
    output_tarball : str, optional
        Also write SageMaker's ``model.tar.gz`` here (path or ``s3://`` URI).
    model_layout : {'fmkit', 'container'}
        ``container`` writes ``model_algo-1`` and fmkit's files into ``model_dir``
        itself (the container's /opt/ml/model, possibly a mount point).
    instance_count : int
        Worker processes (torch.distributed; gloo on CPU, NCCL on CUDA).
    distribution : {'FullyReplicated', 'ShardedByS3Key'}
        Default for channels given as plain URIs.
    source : str
        Which front end started the job (:data:`SOURCES`), recorded on the job.
    """

    channels: Mapping[str, Any]
    model_dir: str
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    defaults: str = "fmkit"
    required_hyperparameters: tuple[str, ...] = ()
    name: str | None = None
    content_type: str | None = None
    vocabulary: str | None = None
    init_model: str | None = None
    groups: str | None = None
    sample_weight: str | None = None
    stream: bool = False
    max_run_seconds: float | None = None
    instance_count: int = 1
    distribution: str = "FullyReplicated"
    worker_timeout_s: float = 300.0
    output_tarball: str | None = None
    model_layout: str = "fmkit"
    source: str = "python"
    tags: Mapping[str, str] = field(default_factory=dict)
    progress: bool = False
    host: str = "algo-1"

    def channel_specs(self) -> dict[str, ChannelSpec]:
        """The channels as specs (``train`` required)."""
        return normalize_channels(self.channels, content_type=self.content_type,
                                  distribution=self.distribution)

    def resolved(self) -> TrainingRequest:
        """The request with every local path made absolute (URIs kept), so that the record
        and a background process mean the same files wherever they are read from."""
        def local(path: str | None) -> str | None:
            return path if path is None or "://" in path else os.path.abspath(path)

        specs = {}
        for name, spec in self.channel_specs().items():
            files = None if spec.files is None else tuple(local(f) or f for f in spec.files)
            specs[name] = dataclasses.replace(spec, uri=local(spec.uri) or spec.uri,
                                              files=files)
        return dataclasses.replace(
            self, channels=specs, model_dir=local(self.model_dir) or self.model_dir,
            vocabulary=local(self.vocabulary), init_model=local(self.init_model),
            groups=local(self.groups), sample_weight=local(self.sample_weight),
            output_tarball=local(self.output_tarball))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (:meth:`from_dict` reads it back)."""
        out = dataclasses.asdict(self)
        out["channels"] = {k: v.to_dict() for k, v in self.channel_specs().items()}
        out["hyperparameters"] = dict(self.hyperparameters)
        out["required_hyperparameters"] = list(self.required_hyperparameters)
        out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRequest:
        """Read :meth:`to_dict`'s form back (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["required_hyperparameters"] = tuple(values.get("required_hyperparameters", ()))
        return cls(**values)


@dataclass
class TrainOutcome:
    """What the training part of a job hands back to the part that records it."""

    metrics: dict[str, float]
    status: str
    best_epoch: int | None
    stop_reason: str | None


def validate(request: TrainingRequest) -> FMConfig:
    """Check a request without reading data; return its :class:`~fmkit.config.FMConfig`.

    Raises
    ------
    ConfigError
        A hyperparameter, channel, count or option is invalid (the message names it).
    """
    from fmkit.registry.records import check_name

    config = make_config(request.hyperparameters, request.defaults,
                         required=request.required_hyperparameters)
    if request.distribution not in DISTRIBUTIONS:
        raise ConfigError(f"--distribution must be FullyReplicated or ShardedByS3Key; got "
                          f"{request.distribution!r}.")
    specs = request.channel_specs()
    for name in specs:
        if name not in CHANNELS:
            logger.warning("ignoring channel %r: Factorization Machines reads 'train', 'test' "
                           "and 'validation'.", name)
    if request.name is not None:
        check_name(request.name, what="training job")
    if not isinstance(request.instance_count, int) or request.instance_count < 1:
        raise ConfigError(f"--instance-count must be >= 1; got {request.instance_count!r}.")
    if request.instance_count > 1 and config.solver != "sgd":
        raise ConfigError(f"--instance-count > 1 needs solver='sgd'; got {config.solver!r}.")
    if request.sample_weight is not None and request.stream:
        raise ConfigError("--sample-weight needs the train channel in memory; drop --stream.")
    if request.sample_weight is not None and request.instance_count > 1:
        raise ConfigError("--sample-weight is not supported with several processes yet.")
    if request.max_run_seconds is not None and not request.max_run_seconds > 0:
        raise ConfigError(f"--max-run-seconds must be > 0; got {request.max_run_seconds!r}.")
    if request.model_layout not in ("fmkit", "container"):
        raise ConfigError(f"model_layout must be 'fmkit' or 'container'; got "
                          f"{request.model_layout!r}.")
    if not request.model_dir:
        raise ConfigError("--model-dir is required: where the model goes.")
    return config


def _create(request: TrainingRequest, config: FMConfig, registry: Registry, *,
            secondary: str, pid: int | None = None, log_file: str | None = None
            ) -> TrainingJob:
    specs = request.channel_specs()
    return registry.jobs.create(
        request.name, hyperparameters=config.to_dict(),
        channels={k: (v.uri if v == ChannelSpec(v.uri) else v.to_dict())
                  for k, v in specs.items()},
        model_dir=request.model_dir, secondary_status=secondary, source=request.source,
        tags=request.tags, request=request.to_dict(), output_tarball=request.output_tarball,
        pid=pid, log_file=log_file)


# ---------------------------------------------------------------------------------- foreground
def run(request: TrainingRequest, *, registry: Registry | None = None,
        on_log: Callable[[str], None] | None = None,
        environ: Mapping[str, str] | None = None) -> TrainingJob | None:
    """Run a training job here and return its final :class:`~fmkit.registry.TrainingJob`.

    Under torchrun (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` in ``environ``)
    this process joins that group and rank 0 records the job (the other ranks return
    None). With ``instance_count`` > 1 it starts that many local workers.

    Raises
    ------
    FMError
        Bad hyperparameters (before any record is made), or bad data (after the job is
        recorded ``Failed`` with the reason).
    """
    config = validate(request)
    request = request.resolved()
    registry = open_registry(registry)
    from fmkit.distributed.launch import torchrun_env

    rdzv = torchrun_env(environ or {})
    if rdzv is not None and rdzv.world_size > 1:
        return _run_under_torchrun(request, config, registry, rdzv, on_log)
    job = _create(request, config, registry, secondary="Starting")
    return execute(job.name, request, config=config, registry=registry, on_log=on_log)


def execute(name: str, request: TrainingRequest, *, config: FMConfig | None = None,
            registry: Registry | None = None,
            on_log: Callable[[str], None] | None = None) -> TrainingJob:
    """Run the recorded job ``name`` (created by :func:`run` or :func:`start`) to its end."""
    reg = open_registry(registry)
    cfg = config if config is not None else validate(request)

    def train() -> TrainOutcome:
        if request.instance_count > 1:
            return _launch_workers(name, request, cfg, reg)
        return _train(name, request, cfg, reg, strategy=None)

    return _run_recorded(name, request, cfg, reg, on_log, train)


def _run_recorded(name: str, request: TrainingRequest, config: FMConfig, registry: Registry,
                  on_log: Callable[[str], None] | None,
                  train: Callable[[], TrainOutcome]) -> TrainingJob:
    """Run ``train`` as the recorded job ``name``: every log line into the job's log, its
    end recorded (Completed, Stopped or Failed with the reason), its model registered."""
    from fmkit.jobs.logs import capture
    from fmkit.registry.jobs import attach

    started = time.time()
    # the order is what a poller relies on: every log line and the registered model are
    # in the registry before the job is seen to end
    with attach(registry.jobs, name) as job:
        with capture(registry, name, on_log):
            outcome = train()
            logger.info("training job %s: training %s in %.1f s", name,
                        outcome.status.lower(), time.time() - started)
        if request.model_layout == "fmkit":
            registry.register_model(name, request.model_dir, job_name=name,
                                    metrics=outcome.metrics,
                                    predictor_type=config.predictor_type, replace=True)
        job.complete(metrics=outcome.metrics, artifact=request.model_dir,
                     status=outcome.status, best_epoch=outcome.best_epoch,
                     failure_reason=_stop_reason(outcome, registry, name))
    return registry.jobs.get(name)


def _stop_reason(outcome: TrainOutcome, registry: Registry, name: str) -> str | None:
    """Why a job ended early (None for a completed one): a user's stop request is said so."""
    if outcome.status == "Completed":
        return None
    if outcome.status == "Stopped" and registry.jobs.stop_requested(name):
        return "stopped by user"
    return outcome.stop_reason


def replicated_train(request: TrainingRequest) -> bool:
    """Whether the workers of a multi-process job each read the whole train channel: an
    in-memory FullyReplicated channel (docs/distributed.md: then N workers take exactly
    one process's steps)."""
    spec = request.channel_specs()["train"]
    return (not request.stream and spec.distribution == "FullyReplicated"
            and spec.mode != "Pipe")


def _read_channels(request: TrainingRequest, config: FMConfig, *, rank: int, world: int
                   ) -> tuple[Any, Any, Any]:
    specs = request.channel_specs()
    fd = config.feature_dim

    def one(name: str) -> Any:
        spec = specs.get(name)
        if spec is None:
            return None
        # a replicated train channel: every worker holds all of it (SageMaker's
        # FullyReplicated) and trains its part of each global batch
        whole = name == "train" and world > 1 and replicated_train(request)
        return open_channel(spec, name, stream=request.stream, feature_dim=fd,
                            rank=0 if whole else rank, world_size=1 if whole else world)

    return one("train"), one("test"), one("validation")


def _train(name: str | None, request: TrainingRequest, config: FMConfig,
           registry: Registry | None, *, strategy: Any) -> TrainOutcome:
    """Read the channels, train and (on the main process) save; the body of every job."""
    import numpy as np

    from fmkit.engine.trainer import fit

    main = strategy is None or strategy.is_main
    world = 1 if strategy is None else strategy.world_size
    rank = 0 if strategy is None else strategy.rank
    jobs = registry.jobs if (main and registry is not None and name) else None
    if jobs is not None:
        jobs.set_secondary_status(name, "Downloading")
    train, test, validation = _read_channels(request, config, rank=rank, world=world)
    if request.sample_weight is not None:
        try:
            weights = np.loadtxt(request.sample_weight, dtype=np.float32, ndmin=1)
        except (OSError, ValueError) as exc:
            raise DataError(f"--sample-weight {request.sample_weight}: {exc}") from None
        train = train.with_weights(weights)
    vocab = find_vocabulary(request.vocabulary, request.channel_specs()["train"])
    group_ids = None
    if request.groups is not None:
        from fmkit.bayes import read_groups

        group_ids = read_groups(request.groups)
    init = None
    if request.init_model:
        from fmkit.model_store import load_model

        init = load_model(request.init_model)
    callbacks = []
    if jobs is not None:
        from fmkit.registry import RegistryCallback
        from fmkit.registry.jobs import JobTracker

        callbacks.append(RegistryCallback(JobTracker(jobs, name)))
        jobs.set_secondary_status(name, "Training")
    try:
        result = fit(config, train, test=test, validation=validation, vocabulary=vocab,
                     init=init, max_run_seconds=request.max_run_seconds,
                     progress=request.progress, groups=group_ids, strategy=strategy,
                     callbacks=callbacks, host=request.host)
    finally:
        for cb in callbacks:  # epochs the registry callback holds back (it writes in batches)
            cb.close()
    if main:
        if jobs is not None:
            jobs.set_secondary_status(name, "Uploading")
        _save(result, request)
    return TrainOutcome(dict(result.metrics), result.status, result.best_epoch,
                        result.stop_reason)


def _save(result: Any, request: TrainingRequest) -> None:
    from pathlib import Path

    from fmkit.jobs import saving

    if request.model_layout == "container":
        saving.save_container_model(result.artifact, result.metrics, Path(request.model_dir))
    else:
        saving.save_model(result.artifact, result.metrics, request.model_dir)
    if request.output_tarball:
        saving.write_tarball(result.artifact, request.output_tarball)


# ---------------------------------------------------------------------------------- processes
def _launch_workers(name: str, request: TrainingRequest, config: FMConfig, registry: Registry
                    ) -> TrainOutcome:
    from fmkit.distributed.launch import default_backend, launch

    backend = default_backend(config.device)
    if backend == "nccl":
        import torch

        if request.instance_count > torch.cuda.device_count():
            raise ConfigError(f"--instance-count {request.instance_count} with device cuda "
                              f"needs one GPU per worker; this machine has "
                              f"{torch.cuda.device_count()}. Use fewer workers or --device cpu.")
    logger.info("training job %s: starting %d worker processes (%s)", name,
                request.instance_count, backend)
    outcome = launch(_worker, (name, request.to_dict(), str(registry.home)),
                     nprocs=request.instance_count, backend=backend,
                     timeout_s=request.worker_timeout_s,
                     log_level=logging.getLogger("fmkit").getEffectiveLevel())
    return TrainOutcome(**outcome)


def _worker(name: str, request_data: dict[str, Any], home: str) -> dict[str, Any]:
    """One worker of a multi-process job (the process group is initialised); rank 0
    records epochs and log lines and saves the model."""
    from fmkit.distributed.strategy import DistributedStrategy
    from fmkit.jobs.logs import capture
    from fmkit.registry import Registry

    request = TrainingRequest.from_dict(request_data)
    config = validate(request)
    strategy = DistributedStrategy(replicated=replicated_train(request))
    if not strategy.is_main:
        return dataclasses.asdict(_train(None, request, config, None, strategy=strategy))
    registry = Registry(home)
    with capture(registry, name):
        return dataclasses.asdict(_train(name, request, config, registry, strategy=strategy))


def _run_under_torchrun(request: TrainingRequest, config: FMConfig, registry: Registry,
                        rdzv: Any, on_log: Callable[[str], None] | None) -> TrainingJob | None:
    from fmkit.distributed import launch as L
    from fmkit.distributed.strategy import DistributedStrategy

    if request.instance_count != 1:
        raise ConfigError("--instance-count cannot be used under torchrun; torchrun starts the "
                          "processes (--nproc-per-node, --nnodes).")
    if rdzv.rank > 0:  # rank 0 logs for the job; the others only warn
        log = logging.getLogger("fmkit")
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    L.init_process_group(rdzv, backend=L.default_backend(config.device),
                         timeout_s=request.worker_timeout_s)
    try:
        strategy = DistributedStrategy(replicated=replicated_train(request))
        if not strategy.is_main:
            _train(None, request, config, None, strategy=strategy)
            return None
        job = _create(request, config, registry, secondary="Starting")
        return _run_recorded(job.name, request, config, registry, on_log,
                             lambda: _train(job.name, request, config, registry,
                                            strategy=strategy))
    finally:
        L.shutdown_process_group()


# ---------------------------------------------------------------------------------- background
def start(request: TrainingRequest, *, registry: Registry | None = None) -> TrainingJob:
    """Record a job and run it in a detached process; return the record at once.

    The job is ``InProgress`` with secondary status ``Starting`` until a capacity slot is
    free (:mod:`fmkit.jobs.capacity`), then moves through Downloading, Training and
    Uploading. Its status, metrics and log are read from the registry while it runs.

    Raises
    ------
    ConfigError
        The request is invalid (nothing is recorded).
    """
    from fmkit.jobs.processes import start_runner

    config = validate(request)
    request = request.resolved()
    registry = open_registry(registry)
    job = _create(request, config, registry, secondary="Starting", pid=0)
    if request.name is None:  # the runner reads the request: give it the generated name
        request = dataclasses.replace(request, name=job.name)
    registry.jobs.update(job.name, log_file=str(registry.job_dir(job.name) / "process.log"),
                         request=request.to_dict())
    proc = start_runner("training", job.name, registry,
                        on_failure=lambda reason: registry.jobs.finish(
                            job.name, status="Failed", failure_reason=reason))
    registry.jobs.set_process(job.name, proc.pid)
    return registry.jobs.get(job.name)


def stop(name: str, *, registry: Registry | None = None) -> TrainingJob:
    """Ask job ``name`` to stop: it ends ``Stopped`` after its current epoch, keeping the
    model reached (a job still waiting for a slot stops at once)."""
    return open_registry(registry).jobs.request_stop(name)


def describe(name: str, *, registry: Registry | None = None) -> TrainingJob:
    """Return job ``name``; a job whose process died without recording an end is
    recorded ``Failed`` first.

    Raises
    ------
    RegistryError
        No such job.
    """
    from fmkit.registry.jobs import process_alive
    from fmkit.registry.records import FINAL_STATUSES

    registry = open_registry(registry)
    job = registry.jobs.get(name)
    if job.status not in FINAL_STATUSES and job.pid and process_alive(job.pid, job.host) is False:
        # the job may have recorded its end just before its process exited: keep that
        if job.stop_requested:
            return registry.jobs.finish(name, status="Stopped", metrics=job.final_metrics,
                                        failure_reason="stopped by user", unless_ended=True)
        return registry.jobs.finish(
            name, status="Failed", metrics=job.final_metrics, unless_ended=True,
            failure_reason=f"AlgorithmError: the job's process {job.pid} ended without "
                           "recording a result (killed or out of memory).")
    return job


def log_events(name: str, *, start: int = 0, limit: int = 1000,
               registry: Registry | None = None) -> tuple[list[LogEvent], int]:
    """Return job ``name``'s log lines from token ``start`` on, and the next token.

    Each :class:`~fmkit.registry.records.LogEvent` has ``seq``, ``time`` (Unix seconds)
    and ``message``; pass the returned token back to read only newer lines.
    """
    return open_registry(registry).jobs.log_events(name, start=start, limit=limit)


def epochs(name: str, *, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Return job ``name``'s per-epoch metrics (``train:*``, ``validation:*``), in order."""
    return list(open_registry(registry).jobs.epochs(name))
