"""Endpoints: model servers started in the background, recorded in the registry.

:func:`deploy` starts a model server (``python -m fmkit.serving``, what ``fmkit serve``
runs) as a detached process (:mod:`fmkit.jobs.processes`) and records the endpoint
(``Creating``); with ``wait_s`` > 0 it returns once ``/ping`` answers (``InService``).
:func:`describe` and :func:`list_endpoints` report each one's status checked now
(``InService`` when it answers, ``Creating`` while it loads, ``Failed`` with the end of its
log when the process exited, ``OutOfService`` when it was stopped); :func:`delete` sends
SIGTERM (the server drains in-flight requests), waits, and removes the record;
:func:`restore` restarts the endpoints whose processes are gone (after a reboot).

The records are :class:`fmkit.registry.records.Endpoint`; a server's log is
``<FMKIT_HOME>/endpoints/<name>.log``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmkit.errors import FMError, RegistryError
from fmkit.registry.records import Endpoint, check_name
from fmkit.registry.store import open_registry

if TYPE_CHECKING:
    from fmkit.registry import Registry


class EndpointError(FMError):
    """An endpoint is unknown, already exists, or its server would not start or stop."""


def endpoints_dir(home: str | os.PathLike[str]) -> Path:
    """Return the folder of endpoint server logs, ``<home>/endpoints``."""
    return Path(home) / "endpoints"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ping(url: str, *, timeout_s: float = 2.0) -> bool:
    """Return True if ``url``/ping answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int | None) -> bool:
    from fmkit.registry.jobs import process_alive

    if not pid or not process_alive(pid, socket.gethostname()):
        return False
    try:  # a zombie child of this process counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _is_our_server(record: Endpoint) -> bool:
    """Guard against pid reuse: the process must be the fmkit server on the record's port."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(record.pid)  # no /proc: trust the record
    text = [c.decode(errors="replace") for c in cmdline]
    return ("fmkit.serving" in text or "serve" in text) and str(record.port) in text


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def check_model(model_dir: str | os.PathLike[str], *, vocabulary: str | None = None) -> None:
    """Load the model (and vocabulary) once, so that a bad one fails here with the
    loader's message rather than in a server process.

    Raises
    ------
    ArtifactError
        The model is missing or unreadable, or the vocabulary does not fit it.
    """
    from fmkit.errors import ArtifactError
    from fmkit.model_store import load_model

    artifact = load_model(str(model_dir))
    if vocabulary is not None:
        from fmkit.features.vocabulary import Vocabulary

        vocab = Vocabulary.load(vocabulary)
        if vocab.feature_dim != artifact.feature_dim:
            raise ArtifactError(f"vocabulary {vocabulary} has feature_dim {vocab.feature_dim} "
                                f"but the model has {artifact.feature_dim}.")


def serve_command(model_dir: str | os.PathLike[str], *, host: str = "127.0.0.1",
                  port: int = 8080, workers: int = 1, max_payload_mb: float = 6.0,
                  name: str | None = None, vocabulary: str | None = None, batch: bool = False,
                  log_level: str = "info", max_users: int | None = None,
                  max_k: int | None = None) -> list[str]:
    """Return the command line of a model server process (``python -m fmkit.serving``)."""
    cmd = [sys.executable, "-m", "fmkit.serving", "--model-dir", str(model_dir), "--host", host,
           "--port", str(port), "--workers", str(workers), "--max-payload-mb",
           f"{max_payload_mb:g}", "--log-level", log_level]
    for flag, value in (("--name", name), ("--vocabulary", vocabulary),
                        ("--max-users-per-request", max_users), ("--max-k", max_k)):
        if value is not None:
            cmd += [flag, str(value)]
    if batch:
        cmd.append("--batch")
    return cmd


def deploy(
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    vocabulary: str | None = None,
    max_users: int | None = None,
    max_k: int | None = None,
    wait_s: float = 60.0,
    model_name: str | None = None,
    registry: Registry | None = None,
) -> Endpoint:
    """Start ``fmkit serve`` for ``model_dir`` in the background and record it as ``name``.

    Parameters
    ----------
    model_dir : path-like or str
        fmkit model folder, SageMaker model.tar.gz, or an ``s3://`` URI of either.
    wait_s : float, default=60.0
        How long to wait for ``/ping``; 0 returns at once with status ``Creating``
        (:func:`describe` reports ``InService`` or ``Failed`` later).
    max_users, max_k : int, optional
        The server's ``/recommend`` limits (users per request, items per user).

    Raises
    ------
    EndpointError
        ``name`` is in use by a running endpoint, or the server exited or did not become
        ready within ``wait_s`` (the message quotes the end of its log).
    """
    from fmkit.jobs.processes import spawn

    check_name(name, what="endpoint")
    registry = open_registry(registry)
    try:
        old = registry.endpoints.get(name)
    except RegistryError:
        old = None
    if old is not None and _serving(old):
        raise EndpointError(f"endpoint {name!r} is running at {old.url}; delete it first "
                            f"(fmkit endpoints delete {name}).")
    text = str(model_dir)
    model = text if "://" in text else str(Path(model_dir).resolve())
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    folder = endpoints_dir(registry.home)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}.log"
    cmd = serve_command(model, host=host, port=port, workers=workers, name=name,
                        vocabulary=vocabulary, max_users=max_users, max_k=max_k)
    config: dict[str, Any] = {"workers": workers, "log": str(log_path)}
    for key, value in (("vocabulary", vocabulary), ("max_users", max_users), ("max_k", max_k)):
        if value is not None:
            config[key] = value
    proc = spawn(cmd, log_path, registry.home)
    record = registry.endpoints.add(name, model, url=url, host=host, port=port, pid=proc.pid,
                                    status="Creating", config=config, model_name=model_name)
    if wait_s <= 0:
        return record
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            reason = (f"the server exited with code {proc.returncode}: "
                      f"{_log_tail(log_path)}")
            registry.endpoints.set_status(name, "Failed", reason)
            raise EndpointError(f"endpoint {name!r}: {reason}")
        if ping(url, timeout_s=1.0):
            registry.endpoints.set_status(name, "InService")
            return registry.endpoints.get(name)
        time.sleep(0.1)
    _terminate(proc.pid, timeout_s=5.0)
    reason = f"the server was not ready after {wait_s:g} s: {_log_tail(log_path)}"
    registry.endpoints.set_status(name, "Failed", reason)
    raise EndpointError(f"endpoint {name!r}: {reason}")


def live_status(record: Endpoint) -> tuple[str, str | None]:
    """Return the endpoint's status checked now, and the failure reason if it failed."""
    if record.status in ("Failed", "OutOfService") and not _alive(record.pid):
        return record.status, record.failure_reason
    if not _alive(record.pid):
        log = Path(str(record.config.get("log", "")))
        return "Failed", (f"the server process {record.pid} is no longer running: "
                          f"{_log_tail(log)}")
    return ("InService" if ping(record.url or "", timeout_s=1.0) else "Creating"), None


def _get(registry: Registry, name: str) -> Endpoint:
    """Return endpoint ``name``'s record; EndpointError if there is none."""
    try:
        return registry.endpoints.get(name)
    except RegistryError:
        raise EndpointError(f"no endpoint named {name!r}; see fmkit endpoints list.") from None


def _serving(record: Endpoint) -> bool:
    """Whether the record's server process runs (and is ours, not a reused pid)."""
    return _alive(record.pid) and _is_our_server(record)


def describe(name: str, *, registry: Registry | None = None) -> Endpoint:
    """Return endpoint ``name`` with its status checked now (and recorded when it changed).

    Raises
    ------
    EndpointError
        No such endpoint.
    """
    registry = open_registry(registry)
    record = _get(registry, name)
    status, reason = live_status(record)
    if status != record.status or reason != record.failure_reason:
        registry.endpoints.set_status(name, status, reason)
        record = dataclasses.replace(record, status=status, failure_reason=reason)
    return record


def list_endpoints(*, registry: Registry | None = None) -> list[Endpoint]:
    """Return every endpoint with its status checked now."""
    registry = open_registry(registry)
    return [describe(r.name, registry=registry) for r in registry.endpoints.list()]


def _terminate(pid: int, *, timeout_s: float) -> bool:
    """SIGTERM ``pid``'s process group, wait up to ``timeout_s``, then SIGKILL; True if it
    stopped on SIGTERM."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return False


def delete(name: str, *, timeout_s: float = 35.0,
           registry: Registry | None = None) -> Endpoint:
    """Stop endpoint ``name`` (SIGTERM: in-flight requests finish) and remove its record.

    Raises
    ------
    EndpointError
        No such endpoint.
    """
    registry = open_registry(registry)
    record = _get(registry, name)
    if record.pid and _serving(record):
        _terminate(record.pid, timeout_s=timeout_s)
    registry.endpoints.remove(name)
    return dataclasses.replace(record, status="OutOfService")


def stop(name: str, *, timeout_s: float = 35.0, registry: Registry | None = None) -> Endpoint:
    """Stop endpoint ``name``'s server but keep its record (``OutOfService``), so that
    :func:`start` can bring it back on the same URL.

    Raises
    ------
    EndpointError
        No such endpoint.
    """
    registry = open_registry(registry)
    record = describe(name, registry=registry)
    if record.pid and _serving(record):
        _terminate(record.pid, timeout_s=timeout_s)
    registry.endpoints.set_status(name, "OutOfService")
    return registry.endpoints.get(name)


def _redeploy(record: Endpoint, *, wait_s: float, registry: Registry) -> Endpoint:
    """Deploy ``record``'s model again with its recorded settings, host and port."""
    config = record.config or {}
    return deploy(record.model, record.name, host=record.host or "127.0.0.1",
                  port=record.port, workers=int(config.get("workers", 1)),
                  vocabulary=config.get("vocabulary"), max_users=config.get("max_users"),
                  max_k=config.get("max_k"), wait_s=wait_s, model_name=record.model_name,
                  registry=registry)


def start(name: str, *, wait_s: float = 0.0, registry: Registry | None = None) -> Endpoint:
    """Start a stopped endpoint again: the same model, settings and port (so the same URL).

    Raises
    ------
    EndpointError
        No such endpoint, or it is running.
    """
    registry = open_registry(registry)
    return _redeploy(describe(name, registry=registry), wait_s=wait_s, registry=registry)


def restore(*, registry: Registry | None = None, wait_s: float = 0.0) -> list[Endpoint]:
    """Restart every endpoint whose server is gone (a reboot, a crash); one whose model
    cannot be served any more is recorded ``Failed`` with the reason. Return them all."""
    registry = open_registry(registry)
    out = []
    for record in registry.endpoints.list():
        if record.status == "OutOfService" or _serving(record):
            out.append(describe(record.name, registry=registry))
            continue
        try:
            out.append(_redeploy(record, wait_s=wait_s, registry=registry))
        except (FMError, OSError) as exc:
            registry.endpoints.set_status(record.name, "Failed", f"could not restart: {exc}")
            out.append(registry.endpoints.get(record.name))
    return out
