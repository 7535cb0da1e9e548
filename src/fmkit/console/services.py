"""What the console asks of the application layer (:mod:`fmkit.jobs`) and the registry.

The console has no job logic: starting, stopping, deploying and exporting go to the
services in ``fmkit.jobs``; reading goes to :class:`fmkit.registry.Registry`. This module
only gathers what a page shows (a model's files and sizes, a job's model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmkit.errors import FMError
from fmkit.registry import Registry
from fmkit.registry.records import (
    FINAL_STATUSES,
    Endpoint,
    LogEvent,
    Model,
    TrainingJob,
    TuningJob,
)


# ------------------------------------------------------------------------- training jobs
def list_jobs(reg: Registry, *, status: str | None = None, search: str = "",
              trials: bool = False) -> list[TrainingJob]:
    """Training jobs, newest first, filtered by status and by a name substring."""
    found = reg.jobs.list(status=status or None, include_trials=trials)
    needle = search.strip().lower()
    found = [j for j in found if needle in j.name.lower()] if needle else found
    return [describe_job(reg, j.name) if j.status not in FINAL_STATUSES else j for j in found]


def describe_job(reg: Registry, name: str) -> TrainingJob:
    """The job as ``fmkit.jobs.training.describe`` reports it (a job whose process died is
    recorded Failed); RegistryError if there is none."""
    from fmkit.jobs import training

    return training.describe(name, registry=reg)


def log_events(reg: Registry, job: TrainingJob, start: int = 0,
               limit: int = 1000) -> tuple[list[LogEvent], int]:
    """The job's log lines from ``start`` and the token to read on from.

    Uses ``fmkit.jobs.training.log_events``; a registry without log events (an older job)
    falls back to the job's log file, one line per event, each at the job's start time.
    """
    from fmkit.jobs import training

    events, nxt = training.log_events(job.name, start=start, limit=limit, registry=reg)
    if events or start or not job.log_file:
        return events, int(nxt)
    if not Path(job.log_file).is_file():
        return [], start
    lines = Path(job.log_file).read_text(errors="replace").splitlines()
    chosen = lines[start:start + limit]
    return ([LogEvent(start + i, job.start_time, m) for i, m in enumerate(chosen)],
            start + len(chosen))


def stop_job(reg: Registry, name: str) -> TrainingJob:
    """Ask training job ``name`` to stop (through :func:`fmkit.jobs.training.stop`)."""
    from fmkit.jobs import training

    return training.stop(name, registry=reg)


def stop_tuning(reg: Registry, name: str) -> TuningJob:
    """Ask tuning job ``name`` to stop (through :func:`fmkit.jobs.tuning.stop`)."""
    from fmkit.jobs import tuning

    return tuning.stop(name, registry=reg)


def job_models(reg: Registry, job_name: str) -> list[Model]:
    """Registered models trained by ``job_name``."""
    return [m for m in reg.models.list() if m.training_job == job_name]


def is_running(record: Any) -> bool:
    """Whether a job record has not reached a final status (Completed, Failed, Stopped)."""
    return getattr(record, "status", None) not in FINAL_STATUSES


# ------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelFile:
    """One file of a model folder: its path relative to the folder, and size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class ModelInfo:
    """What a model page shows beyond the record."""

    exists: bool
    files: list[ModelFile]
    size: int
    metadata: dict[str, Any]
    metrics: dict[str, Any]


def model_info(model: Model) -> ModelInfo:
    """Files, total size, metadata.json and metrics.json of the model folder."""
    root = Path(model.artifact)
    if not root.exists():
        return ModelInfo(False, [], 0, {}, dict(model.metrics))
    if root.is_file():
        return ModelInfo(True, [ModelFile(root.name, root.stat().st_size)],
                         root.stat().st_size, {}, dict(model.metrics))
    files = [ModelFile(str(p.relative_to(root)), p.stat().st_size)
             for p in sorted(root.rglob("*")) if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    meta = _json_file(root / "metadata.json")
    metrics = {**_json_file(root / "metrics.json"), **dict(model.metrics)}
    return ModelInfo(True, files, sum(f.size for f in files), meta, metrics)


def _json_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


EXPORT_FORMATS = {"npz": "model.npz", "sagemaker": "model.tar.gz"}


def export_model(reg: Registry, model: Model, fmt: str) -> Path:
    """Export ``model`` into ``<home>/console/exports/<model>/`` and return the file
    (through :func:`fmkit.jobs.models.export`)."""
    if fmt not in EXPORT_FORMATS:
        raise FMError(f"export format must be npz or sagemaker; got {fmt!r}.")
    folder = reg.home / "console" / "exports" / model.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / EXPORT_FORMATS[fmt]
    from fmkit.jobs.models import export

    return Path(export(model.artifact, str(target), format=fmt))


# ------------------------------------------------------------------------- endpoints
def list_endpoints(reg: Registry) -> list[Endpoint]:
    """Every endpoint with its status checked now."""
    from fmkit.jobs import endpoints

    return list(endpoints.list_endpoints(registry=reg))


def describe_endpoint(reg: Registry, name: str) -> Endpoint:
    """The endpoint with its status checked now; RegistryError (a 404) if unknown."""
    from fmkit.jobs import endpoints

    reg.endpoints.get(name)  # RegistryError for an unknown name
    return endpoints.describe(name, registry=reg)


def deploy(reg: Registry, model: Model, name: str, *, workers: int = 1) -> Endpoint:
    """Start an endpoint for ``model`` (returns at once, status Creating)."""
    from fmkit.jobs import endpoints

    return endpoints.deploy(model.artifact, name, workers=workers, wait_s=0,
                            model_name=model.name, registry=reg)


def redeploy(reg: Registry, name: str) -> Endpoint:
    """Start a stopped endpoint again: same model, workers and port (so the same URL)."""
    from fmkit.jobs import endpoints

    return endpoints.start(name, registry=reg)


def stop_endpoint(reg: Registry, name: str) -> Endpoint:
    """Stop the endpoint's server but keep its record, ``OutOfService``, for a later start."""
    from fmkit.jobs import endpoints

    return endpoints.stop(name, registry=reg)


def delete_endpoint(reg: Registry, name: str) -> Endpoint:
    """Stop the endpoint (if it runs) and forget it."""
    from fmkit.jobs import endpoints

    return endpoints.delete(name, registry=reg)


def model_metadata(path: str | None) -> dict[str, Any]:
    """metadata.json of a model folder (``{}`` when absent or not an fmkit folder)."""
    if not path:
        return {}
    return _json_file(Path(path) / "metadata.json")
