"""``fmkit console``: the web console over the registry (``python -m fmkit.console``).

The console is a front end of its own; this command starts its server process and passes
Ctrl-C / SIGTERM on to it.
"""

from __future__ import annotations

import sys

import typer

from fmkit.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("console")
    def console(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on "
                                 "(0.0.0.0 for all; the console has no login)."),
        port: int = typer.Option(8788, "--port"),
    ) -> None:
        """Open the web console over the local registry."""
        if not 0 < port < 65536:
            raise ConfigError(f"--port must be 1-65535; got {port}.")
        cmd = [sys.executable, "-m", "fmkit.console", "--host", host, "--port", str(port)]
        from fmkit.cli.child import run_server

        raise typer.Exit(run_server(cmd))
