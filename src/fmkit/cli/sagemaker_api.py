"""``fmkit sagemaker-api``: the local SageMaker server (``python -m fmkit.sagemaker_api``).

The API is a front end of its own; this command checks the options, starts its server
process and passes Ctrl-C / SIGTERM on to it.
"""

from __future__ import annotations

import ipaddress
import sys

import typer

from fmkit.errors import ConfigError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    @app.command("sagemaker-api")
    def sagemaker_api(
        host: str = typer.Option("127.0.0.1", help="Address to bind; a non-loopback one "
                                 "needs --allow-remote."),
        port: int = typer.Option(8787, help="TCP port of every service."),
        allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a "
                                          "non-loopback --host (there is no authentication)."),
    ) -> None:
        """Serve a local SageMaker (SageMaker, runtime, Logs, S3 and STS APIs) for SDK notebooks.

        One port answers the SageMaker API, the runtime's InvokeEndpoint, CloudWatch Logs,
        S3 (path-style; objects are files under $FMKIT_HOME/s3) and STS, told apart by the
        request's SigV4 credential scope. Point a notebook at it with
        AWS_ENDPOINT_URL=http://HOST:PORT and dummy credentials (docs/sagemaker-local.md).
        Jobs, models and endpoints are the registry's: `fmkit jobs list` shows them.
        """
        if not _is_loopback(host) and not allow_remote:
            raise ConfigError(f"--host {host} is not a loopback address: the API has no "
                              "authentication (credentials are accepted, never checked), so "
                              "anyone who can reach it can run jobs and read every object. "
                              "Add --allow-remote to serve it anyway.")
        if not 0 < port < 65536:
            raise ConfigError(f"--port must be in 1..65535; got {port}.")
        cmd = [sys.executable, "-m", "fmkit.sagemaker_api", "--host", host, "--port",
               str(port)] + (["--allow-remote"] if allow_remote else [])
        from fmkit.cli.child import run_server

        raise typer.Exit(run_server(cmd))
