"""The ``fmkit`` command line: one module per command group, registered here.

Each module defines ``register(app)``, adding its typer commands; heavy imports (torch, the
server, Optuna) happen inside the commands, so ``fmkit --help`` stays fast. Errors fmkit
raises on purpose print one line on stderr and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from fmkit.errors import FMError

app = typer.Typer(
    name="fmkit",
    help="Factorization machines, SageMaker-compatible: prepare, train, evaluate, serve, tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# command-group modules in help order; each owns its commands
_MODULES = ("train", "data", "serve", "tune", "jobs")

for _name in _MODULES:
    try:
        _module = importlib.import_module(f"fmkit.cli.{_name}")
    except ModuleNotFoundError as exc:  # a group not yet present in this build
        if exc.name != f"fmkit.cli.{_name}":
            raise
        continue
    _module.register(app)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever sys.stderr is at the time of the record (tests swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def _configure_logging(level: int) -> None:
    log = logging.getLogger("fmkit")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(level)
    log.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn fmkit's errors into one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FMKIT_DEBUG") == "1"
    if "--debug" in args:
        args.remove("--debug")
    _configure_logging(logging.DEBUG if debug else logging.INFO)
    try:
        code = app(args=args, prog_name="fmkit", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) comes back as n here
            raise SystemExit(code)
    except FMError as exc:
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if debug:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
