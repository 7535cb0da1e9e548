"""``fmkit console``: serves on 127.0.0.1 by default and stops on Ctrl-C."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from console.browser import free_port

pytest.importorskip("uvicorn")


def test_defaults_bind_localhost() -> None:
    from fmkit.console.app import run

    params = inspect.signature(run).parameters
    assert params["host"].default == "127.0.0.1" and params["port"].default == 8788


def test_fmkit_console_serves_and_stops(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "FMKIT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "fmkit", "console", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs", timeout=2) as r:
                    assert r.status == 200 and b"no training jobs" in r.read()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "the console did not start"
                time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) in (0, 130, -signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_port_is_one_line(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "fmkit", "console", "--port", "70000"],
                         capture_output=True, text=True,
                         env={**os.environ, "FMKIT_HOME": str(tmp_path)})
    assert out.returncode == 2 and "--port must be 1-65535" in out.stderr
    assert "Traceback" not in out.stderr
