"""Local endpoints: model servers started in the background, and their records.

``deploy`` starts ``fmkit serve`` as a detached process, waits until ``/ping`` answers and
records the endpoint; ``list_endpoints`` reports each one's live status; ``delete`` sends
SIGTERM (the server drains in-flight requests), waits, and removes the record.

Records live in the registry (:class:`fmkit.registry.Registry`, the ``endpoints`` table of
``$FMKIT_HOME/registry.db``, default ``~/.fmkit``), behind four functions: :func:`add`,
:func:`get`, :func:`list_records`, :func:`remove`. The server's log is
``$FMKIT_HOME/endpoints/<name>.log``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmkit.errors import ConfigError, FMError

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
STATUSES = ("Creating", "InService", "Failed", "OutOfService")


class EndpointError(FMError):
    """An endpoint is unknown, already exists, or its server would not start or stop."""


@dataclass
class EndpointRecord:
    """One endpoint: which model a server at ``url`` serves, in which process."""

    name: str
    model: str
    url: str
    host: str
    port: int
    pid: int | None
    status: str = "Creating"
    config: dict[str, Any] = field(default_factory=dict)
    creation_time: float = 0.0
    last_modified_time: float = 0.0


def endpoints_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of endpoint records, ``<FMKIT_HOME>/endpoints``."""
    if home is None:
        from fmkit.registry.home import fmkit_home

        home = fmkit_home()
    return Path(home) / "endpoints"


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid SageMaker endpoint name (1-63 letters, digits, hyphens)."""
    return 1 <= len(name) <= 63 and NAME_PATTERN.match(name) is not None


def check_name(name: str) -> None:
    """Raise ConfigError unless ``name`` is a valid SageMaker endpoint name."""
    if not valid_name(name):
        raise ConfigError(f"endpoint name {name!r} is invalid: use 1-63 letters, digits and "
                          "hyphens, starting and ending with a letter or digit.")


# ---------------------------------------------------------------------------------- records
def _endpoints(home: str | os.PathLike[str] | None) -> Any:
    from fmkit.registry import Registry

    return Registry(home).endpoints


def _record(row: Any) -> EndpointRecord:
    return EndpointRecord(name=row.name, model=row.model, url=row.url or "",
                          host=row.host or "", port=int(row.port or 0), pid=row.pid,
                          status=row.status, config=dict(row.config or {}),
                          creation_time=row.creation_time,
                          last_modified_time=row.last_modified_time)


def add(record: EndpointRecord, *, home: str | os.PathLike[str] | None = None) -> EndpointRecord:
    """Create or replace the record ``record.name`` (its creation time is kept)."""
    check_name(record.name)
    row = _endpoints(home).add(record.name, record.model, url=record.url, host=record.host,
                               port=record.port, pid=record.pid, status=record.status,
                               config=record.config)
    return _record(row)


def get(name: str, *, home: str | os.PathLike[str] | None = None) -> EndpointRecord:
    """Return the record ``name``; raise EndpointError if there is none."""
    from fmkit.errors import RegistryError

    try:
        return _record(_endpoints(home).get(name))
    except RegistryError:
        raise EndpointError(f"no endpoint named {name!r}; see fmkit endpoints list.") from None


def list_records(*, home: str | os.PathLike[str] | None = None) -> list[EndpointRecord]:
    """Return every record, by name."""
    return [_record(row) for row in _endpoints(home).list()]


def remove(name: str, *, home: str | os.PathLike[str] | None = None) -> bool:
    """Delete the record ``name``; return whether it existed."""
    return bool(_endpoints(home).remove(name))


# ---------------------------------------------------------------------------------- processes
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


def _is_our_server(record: EndpointRecord) -> bool:
    """Guard against pid reuse: the process must be the fmkit server on the record's port."""
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _alive(record.pid)  # no /proc: trust the record
    text = [c.decode(errors="replace") for c in cmdline]
    return "serve" in text and str(record.port) in text


def deploy(
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    extra_args: Mapping[str, str] | None = None,
    wait_s: float = 60.0,
    home: str | os.PathLike[str] | None = None,
) -> EndpointRecord:
    """Start ``fmkit serve`` for ``model_dir`` in the background and record it as ``name``.

    Returns once ``/ping`` answers 200 (status InService).

    Raises
    ------
    EndpointError
        ``name`` is in use by a running endpoint, or the server exited or did not become
        ready within ``wait_s`` (the message quotes the end of its log).
    """
    check_name(name)
    try:
        old = get(name, home=home)
    except EndpointError:
        old = None
    if old is not None and _alive(old.pid) and _is_our_server(old):
        raise EndpointError(f"endpoint {name!r} is running at {old.url}; delete it first "
                            f"(fmkit endpoints delete {name}).")
    model = str(Path(model_dir).resolve())
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    folder = endpoints_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}.log"
    cmd = [sys.executable, "-m", "fmkit", "serve", "--model-dir", model, "--host", host,
           "--port", str(port), "--workers", str(workers), "--name", name]
    for flag, value in (extra_args or {}).items():
        cmd += [flag, value]
    env = dict(os.environ)
    if home is not None:
        env["FMKIT_HOME"] = str(home)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    record = add(EndpointRecord(name=name, model=model, url=url, host=host, port=port,
                                pid=proc.pid, status="Creating",
                                config={"workers": workers, "log": str(log_path),
                                        **dict(extra_args or {})}), home=home)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            record.status = "Failed"
            add(record, home=home)
            raise EndpointError(f"endpoint {name!r}: the server exited with code "
                                f"{proc.returncode}: {_log_tail(log_path)}")
        if ping(url, timeout_s=1.0):
            record.status = "InService"
            return add(record, home=home)
        time.sleep(0.1)
    _terminate(proc.pid, timeout_s=5.0)
    record.status = "Failed"
    add(record, home=home)
    raise EndpointError(f"endpoint {name!r}: the server was not ready after {wait_s:g} s: "
                        f"{_log_tail(log_path)}")


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def live_status(record: EndpointRecord) -> str:
    """Return InService (answers /ping), Creating (running, not ready) or OutOfService."""
    if not _alive(record.pid):
        return "Failed" if record.status == "Failed" else "OutOfService"
    return "InService" if ping(record.url, timeout_s=1.0) else "Creating"


def list_endpoints(*, home: str | os.PathLike[str] | None = None) -> list[EndpointRecord]:
    """Return every endpoint with its status checked now."""
    out = []
    for record in list_records(home=home):
        record.status = live_status(record)
        out.append(record)
    return out


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
           home: str | os.PathLike[str] | None = None) -> EndpointRecord:
    """Stop endpoint ``name`` (SIGTERM: in-flight requests finish) and remove its record.

    Raises
    ------
    EndpointError
        No such endpoint.
    """
    record = get(name, home=home)
    if record.pid and _alive(record.pid) and _is_our_server(record):
        _terminate(record.pid, timeout_s=timeout_s)
    remove(name, home=home)
    record.status = "OutOfService"
    return record
