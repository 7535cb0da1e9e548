"""Run the ``fmkit`` CLI in process and capture what a shell would see."""

from __future__ import annotations

from typing import Any

from fmkit.cli import main


def run_cli(capture: Any, *args: Any) -> tuple[int, str, str]:
    """Run ``fmkit ARGS``; return (exit code, stdout, stderr) from a capsys/capfd fixture."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capture.readouterr()
    return code, out, err
