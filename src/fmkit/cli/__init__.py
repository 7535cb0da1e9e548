"""The ``fmkit`` command line: one module per command group, loaded when it is used.

:data:`COMMANDS` lists every top-level command with the module that defines it and the help
line ``fmkit --help`` shows, so ``fmkit --help`` imports no command module and adding a
command module is one line per command in that table. Each module defines ``register(app)``,
adding its typer commands; heavy imports (torch, the server, Optuna) happen inside the
commands. A table entry whose module is absent from this build is left out of ``--help``; a
module that exists and fails to import stops the command with one line naming it.

Errors fmkit raises on purpose print one line on stderr and exit 2; so do usage errors (an
unknown option or command names the closest valid one); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from fmkit.errors import FMError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer: the click package
    from click import exceptions as _click_errors  # type: ignore[no-redef]

# command -> (module under fmkit.cli, the help line of `fmkit --help`), in help order.
# tests/cli/test_cli_errors.py checks that every line matches the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "Train an FM; write the model and metrics.json (SageMaker metric names)."),
    "evaluate": ("train", "Score a labelled channel and print SageMaker-named metrics as JSON."),
    "convert": ("data", "Convert data between recordIO-protobuf, libsvm, CSV and npz."),
    "inspect": ("data", "Summarise a data file or channel and report where its first defect "
                        "is."),
    "serve": ("serve", "Serve a model with SageMaker's inference API (GET /ping, POST "
                       "/invocations)."),
    "deploy": ("serve", "Start a server in the background and record it as endpoint NAME."),
    "recommend": ("serve", "Print the top-k items for a user (JSON), best first, excluding "
                           "rated items."),
    "similar": ("serve", "Print the k items most similar to ITEM by factor cosine similarity "
                         "(JSON)."),
    "transform": ("serve", "Batch transform: one <name>.out per input file, records in input "
                           "order."),
    "export": ("serve", "Export a model as SageMaker's model.tar.gz or as plain numpy arrays."),
    "tune": ("tune", "Tune hyperparameters; register the best trial's model under the job "
                     "name."),
    "prepare": ("train", "Prepare data sets as FM rows."),
    "endpoints": ("serve", "Local endpoints started with fmkit deploy."),
    "jobs": ("jobs", "Training jobs in the registry ($FMKIT_HOME/registry.db)."),
    "models": ("jobs", "Registered models."),
    "tuning": ("jobs", "Hyperparameter tuning jobs."),
    "sagemaker-api": ("sagemaker_api", "Serve a local SageMaker (SageMaker, runtime, Logs, S3 "
                                       "and STS APIs) for SDK notebooks."),
    "console": ("console", "Open the web console over the local registry."),
}


class CommandImportError(RuntimeError):
    """A command module exists but cannot be imported: a broken install or a bug."""


def _module_present(module: str) -> bool:
    """Whether ``fmkit.cli.<module>`` exists in this build (without importing it)."""
    return importlib.util.find_spec(f"fmkit.cli.{module}") is not None


class LazyGroup(TyperGroup):
    """The top-level group: lists :data:`COMMANDS`, imports a module when a command runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()
        self._present: dict[str, bool] = {}
        self._listing = False

    def _available(self, name: str) -> bool:
        module = COMMANDS[name][0]
        if module not in self._present:
            self._present[module] = _module_present(module)
        return self._present[module]

    def _load(self, module: str) -> None:
        if module in self._loaded:
            return
        try:
            imported = importlib.import_module(f"fmkit.cli.{module}")
        except Exception as exc:
            names = ", ".join(n for n, (m, _) in COMMANDS.items() if m == module)
            raise CommandImportError(
                f"fmkit.cli.{module} failed to import, so 'fmkit {names}' cannot run: "
                f"{type(exc).__name__}: {exc}") from exc
        sub = typer.Typer(add_completion=False)
        imported.register(sub)
        self.commands.update(typer.main.get_group(sub).commands)
        self._loaded.add(module)

    def list_commands(self, ctx: Any) -> list[str]:
        extra = [n for n in self.commands if n not in COMMANDS]
        return [n for n in COMMANDS if self._available(n)] + extra

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS or not self._available(cmd_name):
            return None
        module, help_line = COMMANDS[cmd_name]
        if self._listing:  # `fmkit --help`: the table's line, no import
            return TyperCommand(cmd_name, help=help_line, short_help=help_line)
        self._load(module)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="fmkit",
    cls=LazyGroup,
    help="Factorization machines, SageMaker-compatible: prepare, train, evaluate, serve, tune.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from fmkit import __version__

        print(f"fmkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print fmkit's version and exit."),
) -> None:
    """Factorization machines, SageMaker-compatible: prepare, train, evaluate, serve, tune."""


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


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name`` (difflib), or None when none is close."""
    import difflib

    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    return matches[0] if matches else None


def _option_names(ctx: Any) -> list[str]:
    names: list[str] = []
    for param in ctx.command.get_params(ctx):
        if getattr(param, "param_type_name", "") == "option" and not param.hidden:
            names += [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
    return names


def _usage_message(exc: Any) -> str:
    """One line for a click usage error: what was wrong and, for a typo, the closest name."""
    ctx = exc.ctx
    if isinstance(exc, _click_errors.NoSuchOption) and ctx is not None:
        best = closest(exc.option_name, _option_names(ctx))
        hint = f"; did you mean {best}?" if best else ""
        return f"no such option {exc.option_name}{hint}"
    found = re.match(r"No such command '(.+?)'", exc.message or "")
    if found and ctx is not None and hasattr(ctx.command, "list_commands"):
        best = closest(found.group(1), ctx.command.list_commands(ctx))
        hint = f"; did you mean '{best}'?" if best else ""
        return f"no such command '{found.group(1)}' in '{ctx.command_path}'{hint}"
    return exc.format_message()


def _show_usage_error(exc: Any) -> None:
    print(f"error: {_usage_message(exc)}", file=sys.stderr)
    ctx = exc.ctx
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
        print(f"Try '{ctx.command_path} --help' for help.", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn fmkit's errors into one line on stderr and exit code 2.

    Called without ``argv`` (the ``fmkit`` script, ``python -m fmkit``) it is the whole
    process: when the command ends, the garbage collector's objects are frozen
    (:func:`gc.freeze`), so that the interpreter's last collection at exit does not walk
    numba's object graph (0.3 s after every command that loaded a compiled build, 20% of
    a MovieLens ``fmkit train``). Files, connections and atexit handlers close as usual.
    """
    if argv is None:
        try:
            _main(list(sys.argv[1:]))
        finally:
            gc.freeze()
        return
    _main(list(argv))


def _main(args: list[str]) -> None:
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
    except _click_errors.UsageError as exc:
        if debug:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # `fmkit jobs`: the group's help
            exc.show()
        else:
            _show_usage_error(exc)
        raise SystemExit(exc.exit_code) from None
    except _click_errors.ClickException as exc:
        if debug:
            raise
        print(f"error: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except CommandImportError as exc:
        if debug:
            raise
        print(f"error: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        if debug:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
