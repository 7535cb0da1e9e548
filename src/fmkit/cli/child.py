"""Run another front end's server as a child process of a CLI command.

``fmkit serve``, ``fmkit console`` and ``fmkit sagemaker-api`` check their options, then
start ``python -m fmkit.serving`` (or ``fmkit.console``, ``fmkit.sagemaker_api``): a front
end never imports another one. Ctrl-C and SIGTERM are passed on to the server, which drains
its in-flight requests, and the command ends as the server did.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def run_server(cmd: list[str]) -> int:
    """Run ``cmd`` in the foreground, passing SIGTERM/SIGINT on; return its exit code.

    A server that ended on a signal we passed on makes this process end the same way.
    """
    proc = subprocess.Popen(cmd)

    def forward(signum: int, frame: Any) -> None:
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code
