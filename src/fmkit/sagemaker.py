"""The SageMaker training container contract: ``train`` reads /opt/ml, writes /opt/ml/model.

A bring-your-own SageMaker training container runs the ``train`` command (the console entry
point :func:`train_main`). It reads

- ``input/config/hyperparameters.json``: SageMaker FM hyperparameters, all strings, over
  SageMaker's defaults (``feature_dim``, ``num_factors``, ``predictor_type`` required);
- ``input/config/inputdataconfig.json``: the channels (``train`` required, ``test``
  optional, others ignored with a warning), each File/FastFile mode (files under
  ``input/data/<channel>/``) or Pipe mode (FIFO ``input/data/<channel>_<epoch>``, a new
  one per pass);
- ``input/config/resourceconfig.json``: the hosts; with several, the hosts train
  together (one process per host, torch.distributed over the first host), each on its own
  data (ShardedByS3Key) or on its row range of a replicated channel (FullyReplicated);

and writes ``model/model_algo-1`` in SageMaker's format (loadable by SageMaker's own FM
server and by ``fmkit serve``) with fmkit's model files (metadata.json, weights.npz,
metrics.json) next to it. On failure it writes ``output/failure`` (``ClientError: ...`` for
bad hyperparameters or data, exit 2; ``AlgorithmError: ...`` for anything else, exit 1).

Every path sits under a root, ``/opt/ml`` unless ``FMKIT_SM_ROOT`` says otherwise, so the
same entry point runs outside a container. See docs/container.md.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmkit.errors import ConfigError, DataError, FMError
from fmkit.io import paths as io_paths
from fmkit.jobs.channels import DISTRIBUTIONS

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV = "FMKIT_SM_ROOT"
# rendezvous of a multi-host job: the first host listens on this port
PORT_ENV = "FMKIT_SM_PORT"
MASTER_ENV = "FMKIT_SM_MASTER_ADDR"  # overrides the first host's name (tests, odd DNS)
DEFAULT_PORT = 7777
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"
CHANNELS = ("train", "test")
MODES = ("File", "FastFile", "Pipe")
FAILURE_CHARS = 1024
EXIT_CLIENT_ERROR = 2
EXIT_ALGORITHM_ERROR = 1


@dataclass(frozen=True)
class ContainerPaths:
    """Every path of the contract under one root (``/opt/ml`` in a container)."""

    root: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ContainerPaths:
        return cls(Path(environ.get(ROOT_ENV) or DEFAULT_ROOT))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name

    def fifo(self, name: str, epoch: int) -> Path:
        """Pipe mode: the FIFO of channel ``name`` for pass ``epoch`` (0, 1, ...)."""
        return self.data_dir / f"{name}_{epoch}"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


@dataclass(frozen=True)
class Channel:
    """One entry of inputdataconfig.json."""

    name: str
    mode: str = "File"
    content_type: str | None = None
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"

    @property
    def format(self) -> str:
        """The data format: from the content type, else recordIO-protobuf (SageMaker's)."""
        from fmkit.io import formats

        return formats.from_content_type(self.content_type or DEFAULT_CONTENT_TYPE)


@dataclass(frozen=True)
class ResourceConfig:
    """resourceconfig.json: this host and all hosts of the job."""

    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    network_interface_name: str | None = None

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def world_size(self) -> int:
        return len(self.hosts)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: the {what} is not valid JSON: {exc}.") from None


def read_hyperparameters(paths: ContainerPaths) -> dict[str, Any]:
    """Return hyperparameters.json as a dict (empty when the file is absent).

    Raises
    ------
    ConfigError
        Unreadable, not JSON, or not a flat object.
    """
    if not paths.hyperparameters.is_file():
        return {}
    data = _read_json(paths.hyperparameters, "hyperparameters")
    if not isinstance(data, dict):
        raise ConfigError(f"{paths.hyperparameters}: expected a JSON object of name -> value "
                          f"strings; got {type(data).__name__}.")
    return data


def load_config(values: Mapping[str, Any]) -> Any:
    """Merge ``values`` over SageMaker's defaults; feature_dim is required as in SageMaker.

    Raises
    ------
    ConfigError
        A required hyperparameter is missing or a value is invalid.
    """
    from fmkit.jobs.hyperparameters import make_config
    from fmkit.jobs.training import SAGEMAKER_REQUIRED

    return make_config(values, "sagemaker", required=SAGEMAKER_REQUIRED)


def read_input_config(paths: ContainerPaths) -> dict[str, Channel]:
    """Return the channels of inputdataconfig.json; without the file, the folders present.

    Raises
    ------
    ConfigError
        Bad JSON, an unknown TrainingInputMode or S3DistributionType.
    """
    if not paths.input_data_config.is_file():
        found = sorted(p.name for p in paths.data_dir.iterdir()) if paths.data_dir.is_dir() else []
        return {name: Channel(name) for name in found if (paths.data_dir / name).is_dir()}
    data = _read_json(paths.input_data_config, "input data configuration")
    if not isinstance(data, dict):
        raise ConfigError(f"{paths.input_data_config}: expected an object of channel -> "
                          "settings.")
    channels = {}
    for name, spec in data.items():
        spec = spec if isinstance(spec, dict) else {}
        mode = spec.get("TrainingInputMode", "File")
        if mode not in MODES:
            raise ConfigError(f"{paths.input_data_config}: channel {name!r} has "
                              f"TrainingInputMode {mode!r}; expected File, FastFile or Pipe.")
        dist = spec.get("S3DistributionType", "FullyReplicated")
        if dist not in DISTRIBUTIONS:
            raise ConfigError(f"{paths.input_data_config}: channel {name!r} has "
                              f"S3DistributionType {dist!r}; expected FullyReplicated or "
                              "ShardedByS3Key.")
        channels[name] = Channel(name, mode, spec.get("ContentType") or None, dist,
                                 spec.get("RecordWrapperType", "None") or "None")
    return channels


def read_resource_config(paths: ContainerPaths) -> ResourceConfig:
    """Return resourceconfig.json; a missing file means one host, ``algo-1``.

    Raises
    ------
    ConfigError
        current_host is not among hosts, or the file is malformed.
    """
    if not paths.resource_config.is_file():
        return ResourceConfig()
    data = _read_json(paths.resource_config, "resource configuration")
    hosts = data.get("hosts") if isinstance(data, dict) else None
    current = data.get("current_host") if isinstance(data, dict) else None
    if not isinstance(hosts, list) or not hosts or not isinstance(current, str):
        raise ConfigError(f"{paths.resource_config}: expected {{\"current_host\": str, "
                          "\"hosts\": [str, ...]}}.")
    if current not in hosts:
        raise ConfigError(f"{paths.resource_config}: current_host {current!r} is not in hosts "
                          f"{hosts}.")
    return ResourceConfig(current, tuple(str(h) for h in hosts),
                          data.get("network_interface_name"))


def write_failure(paths: ContainerPaths, exc: BaseException) -> int:
    """Write ``output/failure`` for ``exc``; return the exit code (2 client, 1 algorithm)."""
    client = isinstance(exc, FMError) and not _is_algorithm_error(exc)
    kind = "ClientError" if client else "AlgorithmError"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not client:
        text = f"{type(exc).__name__}: {text}"
    message = f"{kind}: {text}"
    try:
        with io_paths.atomic_write(str(paths.failure)) as f:
            f.write((message[:FAILURE_CHARS * 4] + "\n").encode())
    except (OSError, FMError) as err:
        logger.error("cannot write %s: %s", paths.failure, err)
    logger.error("%s", message)
    return EXIT_CLIENT_ERROR if client else EXIT_ALGORITHM_ERROR


def _is_algorithm_error(exc: BaseException) -> bool:
    from fmkit.errors import WorkerError

    return isinstance(exc, WorkerError)  # a crashed worker is ours, not the user's


def _channel_spec(paths: ContainerPaths, channel: Channel) -> Any:
    from fmkit.jobs.channels import ChannelSpec

    if channel.mode == "Pipe":  # pass N reads the FIFO input/data/<channel>_<N>
        return ChannelSpec(str(paths.data_dir / channel.name), channel.content_type,
                           channel.distribution, "Pipe")
    folder = paths.channel_dir(channel.name)
    if not folder.is_dir():
        raise DataError(f"channel {channel.name!r}: {folder} does not exist.")
    return ChannelSpec(str(folder), channel.content_type or DEFAULT_CONTENT_TYPE,
                       channel.distribution, channel.mode)


def _rendezvous(resources: ResourceConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """torchrun's variables for a multi-host job: the hosts' order gives the ranks."""
    port = environ.get(PORT_ENV, str(DEFAULT_PORT))
    if not port.isdigit():
        raise ConfigError(f"{PORT_ENV} must be an integer port; got {port!r}.")
    return {"RANK": str(resources.rank), "WORLD_SIZE": str(resources.world_size),
            "MASTER_ADDR": environ.get(MASTER_ENV) or resources.hosts[0],
            "MASTER_PORT": port, "LOCAL_RANK": "0"}


def build_request(paths: ContainerPaths, environ: Mapping[str, str]) -> Any:
    """Return the training job the container's files describe (a TrainingRequest).

    Raises
    ------
    FMError
        Bad hyperparameters, channels or configuration files (reported as ClientError).
    """
    from fmkit.jobs.training import SAGEMAKER_REQUIRED, TrainingRequest
    from fmkit.registry.records import valid_name

    hyperparameters = read_hyperparameters(paths)
    load_config(hyperparameters)  # required names and values, before any data is read
    channels = read_input_config(paths)
    for name in channels:
        if name not in CHANNELS:
            logger.warning("ignoring channel %r: Factorization Machines reads 'train' and "
                           "'test' only.", name)
    if "train" not in channels:
        raise DataError(f"the 'train' channel is required; {paths.input_data_config} lists "
                        f"{sorted(channels) or 'no channels'}.")
    resources = read_resource_config(paths)
    job_name = environ.get("TRAINING_JOB_NAME") or None
    return TrainingRequest(
        channels={name: _channel_spec(paths, channels[name]) for name in CHANNELS
                  if name in channels},
        model_dir=str(paths.model_dir), hyperparameters=hyperparameters, defaults="sagemaker",
        required_hyperparameters=SAGEMAKER_REQUIRED,
        name=job_name if job_name and valid_name(job_name) else None,
        model_layout="container", source="container", host=resources.current_host)


def run(paths: ContainerPaths, environ: Mapping[str, str]) -> Any:
    """Train as the contract says, through the training service; return the job record
    (None on hosts other than the first).

    Raises
    ------
    FMError
        Bad hyperparameters, channels or data (reported as ClientError).
    """
    from fmkit.errors import RegistryError
    from fmkit.jobs import training
    from fmkit.registry import Registry

    request = build_request(paths, environ)
    logger.info("merged configuration (SageMaker defaults + hyperparameters.json): %s",
                load_config(request.hyperparameters).to_sagemaker_strings())
    registry = Registry()
    if request.name is not None:
        try:
            registry.jobs.get(request.name)
        except RegistryError:
            pass
        else:  # a rerun in the same home: SageMaker names are unique, so record it anew
            import dataclasses

            request = dataclasses.replace(request, name=None)
    resources = read_resource_config(paths)
    rdzv: dict[str, str] = {}
    if resources.world_size > 1:
        rdzv = _rendezvous(resources, environ)
        logger.info("host %s is worker %d of %d", resources.current_host, resources.rank,
                    resources.world_size)
    job = training.run(request, registry=registry, environ=rdzv)
    if job is not None and job.status == "Failed":
        from fmkit.errors import FMError

        raise FMError(job.failure_reason or "training failed")
    return job


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever sys.stdout is at the time of the record (SageMaker reads stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging() -> None:
    """The entry point owns the process: fmkit's log lines go to stdout, one per line."""
    log = logging.getLogger("fmkit")
    log.handlers[:] = [_StdoutHandler()]
    log.setLevel(logging.INFO)
    log.propagate = False


def train_main(environ: Mapping[str, str] | None = None) -> None:
    """The container's ``train`` command: train, then exit 0, 1 (AlgorithmError) or 2.

    Parameters
    ----------
    environ : mapping, optional
        Environment (``os.environ`` by default): ``FMKIT_SM_ROOT`` moves /opt/ml;
        ``FMKIT_SM_PORT`` and ``FMKIT_SM_MASTER_ADDR`` set a multi-host rendezvous.
    """
    env = os.environ if environ is None else environ
    log = logging.getLogger("fmkit")
    saved = (list(log.handlers), log.level, log.propagate)
    _configure_logging()
    paths = ContainerPaths.from_env(env)
    started = time.time()
    try:
        try:
            run(paths, env)
        except BaseException as exc:  # every failure ends in the failure file and an exit code
            if isinstance(exc, SystemExit) and not exc.code:
                raise
            if isinstance(exc, KeyboardInterrupt):
                exc = FMError("training was interrupted (SIGINT).")
            logger.debug("training failed", exc_info=True)
            raise SystemExit(write_failure(paths, exc)) from None
        logger.info("training finished in %.1f s; model written to %s",
                    time.time() - started, paths.model_dir)
    finally:  # an in-process caller (tests, notebooks) gets its logging back
        log.handlers[:], log.propagate = saved[0], saved[2]
        log.setLevel(saved[1])
    raise SystemExit(0)
