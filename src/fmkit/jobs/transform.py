"""Batch transform jobs: score every file of an input with a model, one ``.out`` each.

The same job behind ``fmkit transform`` and the local SageMaker API's CreateTransformJob:
:func:`run` in the foreground, :func:`start` in a detached process; both are recorded in
the registry (``transform_jobs``) with a summary of outputs, records and requests, and log
their lines to the job's log (read with :func:`log_events`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fmkit.errors import ConfigError, FMError
from fmkit.registry.store import open_registry

if TYPE_CHECKING:
    from fmkit.registry import Registry
    from fmkit.registry.records import LogEvent, TransformJob

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class TransformRequest:
    """One batch transform: SageMaker's TransformInput/TransformOutput settings."""

    model_dir: str
    input: str
    output: str
    content_type: str = "application/x-recordio-protobuf"
    accept: str = "application/jsonlines"
    split_type: str | None = None
    batch_strategy: str = "MultiRecord"
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    assemble_with: str = "Line"
    name: str | None = None
    source: str = "python"

    def check(self) -> TransformRequest:
        """Return self; ConfigError naming the option if a setting is not allowed."""
        if self.max_payload_bytes <= 0:
            raise ConfigError(f"--max-payload-mb must be > 0; got "
                              f"{self.max_payload_bytes / 1048576:g}.")
        if self.batch_strategy not in ("MultiRecord", "SingleRecord"):
            raise ConfigError(f"--batch-strategy must be MultiRecord or SingleRecord; got "
                              f"{self.batch_strategy!r}.")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransformRequest:
        """Read ``dataclasses.asdict``'s form back (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def log_key(name: str) -> str:
    """The key of transform job ``name``'s lines in the registry's log store."""
    return f"transform:{name}"


def log_events(name: str, *, start: int = 0, limit: int = 1000,
               registry: Registry | None = None) -> tuple[list[LogEvent], int]:
    """Return transform job ``name``'s log lines from token ``start`` on, and the next token."""
    return open_registry(registry).jobs.log_events(log_key(name), start=start, limit=limit)


def _transform(request: TransformRequest) -> dict[str, Any]:
    from fmkit.inference.predictor import Predictor
    from fmkit.inference.transform import transform

    summary = transform(Predictor.load(request.model_dir), request.input, request.output,
                        content_type=request.content_type, accept=request.accept,
                        split_type=request.split_type, batch_strategy=request.batch_strategy,
                        max_payload_bytes=request.max_payload_bytes,
                        assemble_with=request.assemble_with)
    return {"outputs": summary.outputs, "records": summary.records,
            "requests": summary.requests}


def _execute(name: str, request: TransformRequest, registry: Registry) -> TransformJob:
    from fmkit.jobs.logs import capture

    with capture(registry, log_key(name)):
        try:
            logger.info("transform job %s: %s -> %s with %s", name, request.input,
                        request.output, request.model_dir)
            summary = _transform(request)
        except KeyboardInterrupt:
            return registry.transforms.finish(name, status="Stopped",
                                              failure_reason="interrupted")
        except FMError as exc:
            logger.error("ClientError: %s", exc)
            registry.transforms.finish(name, status="Failed",
                                       failure_reason=f"ClientError: {exc}")
            raise
        except Exception as exc:
            registry.transforms.finish(name, status="Failed",
                                       failure_reason=f"AlgorithmError: {type(exc).__name__}: "
                                                      f"{exc}")
            raise
        logger.info("transform job %s: %d records in %d requests", name, summary["records"],
                    summary["requests"])
    return registry.transforms.finish(name, status="Completed", summary=summary)


def run(request: TransformRequest, *, registry: Registry | None = None) -> TransformJob:
    """Run a transform job here; return its final TransformJob record.

    Raises
    ------
    FMError
        Bad settings (nothing recorded) or bad input (recorded ``Failed``).
    """
    request.check()
    registry = open_registry(registry)
    job = _create(request, registry)
    return _execute(job.name, request, registry)


def _create(request: TransformRequest, registry: Registry, *,
            pid: int | None = None) -> TransformJob:
    return registry.transforms.create(request.name, model_dir=request.model_dir,
                                      input=request.input, output=request.output,
                                      request=dataclasses.asdict(request),
                                      source=request.source, pid=pid)


def start(request: TransformRequest, *, registry: Registry | None = None) -> TransformJob:
    """Record a transform job and run it in a detached process; return the record."""
    from fmkit.jobs.processes import start_runner

    request.check()
    registry = open_registry(registry)
    job = _create(request, registry, pid=0)
    proc = start_runner("transform", job.name, registry,
                        on_failure=lambda reason: registry.transforms.finish(
                            job.name, status="Failed", failure_reason=reason))
    registry.transforms.set_process(job.name, proc.pid)
    return registry.transforms.get(job.name)


def describe(name: str, *, registry: Registry | None = None) -> TransformJob:
    """Return transform job ``name``; one whose process died unrecorded becomes Failed."""
    from fmkit.registry.jobs import process_alive

    registry = open_registry(registry)
    job = registry.transforms.get(name)
    if job.status == "InProgress" and job.pid and process_alive(job.pid, job.host) is False:
        return registry.transforms.finish(name, status="Failed", unless_ended=True,
                                          failure_reason="AlgorithmError: the job's process "
                                          "ended without a result.")
    return job


def run_recorded(name: str) -> int:
    """The detached process's body (:mod:`fmkit.jobs.runner`)."""
    from fmkit.registry import Registry

    registry = Registry()
    request = TransformRequest.from_dict(registry.transforms.get(name).request)
    try:
        record = _execute(name, request, registry)
    except Exception:
        logger.debug("transform job %s failed", name, exc_info=True)
        return 2
    return 0 if record.status == "Completed" else 2
