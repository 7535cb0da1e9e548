"""CLI errors a user can act on, and the lazily loaded command table of ``fmkit``.

An unknown option or command exits 2 naming it and the closest valid one; a command module
that is absent from the build is left out, one that exists but fails to import fails loudly;
``fmkit --help`` lists every command with its help line without importing the modules.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from helpers.cli import run_cli

import fmkit.cli as cli

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                               if p]))


@pytest.mark.parametrize(("args", "first_line"), [
    (["jobs", "list", "--all"], "error: no such option --all; did you mean --trials?"),
    (["evaluate", "--model-dirr", "m", "--test", "t"],
     "error: no such option --model-dirr; did you mean --model-dir?"),
    (["--verison"], "error: no such option --verison; did you mean --version?"),
    (["trian"], "error: no such command 'trian' in 'fmkit'; did you mean 'train'?"),
    (["jobs", "lst"], "error: no such command 'lst' in 'fmkit jobs'; did you mean 'list'?"),
    (["endpoints", "delet", "x"],
     "error: no such command 'delet' in 'fmkit endpoints'; did you mean 'delete'?"),
])
def test_unknown_option_or_command_names_the_closest(capsys, args, first_line):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    lines = err.splitlines()
    assert lines[0] == first_line
    assert any(line.startswith("Try 'fmkit") for line in lines[1:])
    assert "internal error" not in err and "Traceback" not in err


def test_unknown_option_without_a_close_one_points_to_help(capsys):
    code, _, err = run_cli(capsys, "jobs", "list", "--zzzzzzzz")
    assert code == 2
    assert err.splitlines()[0] == "error: no such option --zzzzzzzz"
    assert "Try 'fmkit jobs list --help' for help." in err


def test_missing_option_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "evaluate", "--test", "t")
    assert code == 2
    assert err.startswith("error: Missing option '--model-dir'")
    assert "internal error" not in err


@pytest.mark.parametrize(("command", "typo", "closest"), [
    ("train", "--epochz", "--epochs"),
    ("train", "--num_factor=3", "--num-factors"),
    ("tune", "--mini-batchsize", "--mini-batch-size"),
])
def test_unknown_hyperparameter_suggests_the_closest(capsys, tmp_path, command, typo, closest):
    args = [command, "--train", str(tmp_path / "missing"), typo]
    if "=" not in typo:
        args.append("3")
    if command == "train":
        args += ["--model-dir", str(tmp_path / "m")]
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert f"unknown option or hyperparameter '{typo.split('=')[0]}'; did you mean {closest}?" \
        in err
    assert not (tmp_path / "m").exists()


def test_the_console_script_exits_2_on_an_unknown_option():
    done = subprocess.run([sys.executable, "-m", "fmkit", "jobs", "list", "--all"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "error: no such option --all; did you mean --trials?"


def _first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def _present_modules() -> list[str]:
    return sorted({m for m, _ in cli.COMMANDS.values() if cli._module_present(m)})


def test_every_table_line_matches_the_command_it_lists():
    """The table is what `fmkit --help` shows: it must say what each command's own help says."""
    registered: dict[str, object] = {}
    for module in _present_modules():
        sub = typer.Typer(add_completion=False)
        __import__(f"fmkit.cli.{module}", fromlist=["register"]).register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            registered[name] = (module, command)
    missing = sorted(set(registered) - set(cli.COMMANDS))
    assert not missing, f"add these commands to fmkit.cli.COMMANDS: {missing}"
    for name, (module, command) in registered.items():
        table_module, line = cli.COMMANDS[name]
        assert table_module == module, name
        own = _first_paragraph(command.short_help or command.help)  # type: ignore[attr-defined]
        assert line == own, f"fmkit.cli.COMMANDS[{name!r}] says {line!r}; the command: {own!r}"


def test_help_lists_every_present_command_without_importing_them():
    code = (
        "import sys\n"
        "from fmkit.cli import main, COMMANDS, _module_present\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('fmkit.cli.'))\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(_env(), COLUMNS="200"), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    help_text = " ".join(done.stdout.split())
    for name, (module, line) in cli.COMMANDS.items():
        if cli._module_present(module):
            assert f"{name} {line}" in help_text, name
        else:
            assert f" {name} " not in help_text, name


def test_a_table_entry_without_its_module_is_skipped(capsys, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "not-built", ("no_such_module_here", "Not in this build."))
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "train" in out and "not-built" not in out
    code, _, err = run_cli(capsys, "not-built")
    assert code == 2 and err.startswith("error: no such command 'not-built'")


class _BrokenFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds fmkit.cli._broken_for_test; importing it fails as a missing dependency would."""

    NAME = "fmkit.cli._broken_for_test"

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        if fullname == self.NAME:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return None

    def exec_module(self, module):  # noqa: ANN001
        raise ModuleNotFoundError("No module named 'selenium'", name="selenium")


def test_a_module_that_fails_to_import_fails_loudly(capsys, monkeypatch):
    finder = _BrokenFinder()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    monkeypatch.setitem(cli.COMMANDS, "broken", ("_broken_for_test", "A broken command."))
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "broken" in out  # listed: it does not vanish from --help
    code, _, err = run_cli(capsys, "broken")
    assert code == 1
    assert err.splitlines()[0].startswith(
        "error: fmkit.cli._broken_for_test failed to import, so 'fmkit broken' cannot run: "
        "ModuleNotFoundError: No module named 'selenium'")
    with pytest.raises(cli.CommandImportError, match="_broken_for_test"):
        cli.main(["--debug", "broken"])
    sys.modules.pop(finder.NAME, None)


def test_version_flag(capsys):
    from fmkit import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"fmkit {__version__}"


@pytest.mark.parametrize("argv", [["--help"], ["inspect", "/no/such/file"]])
def test_the_process_entry_freezes_the_gc_at_the_end_and_keeps_exit_codes(argv, tmp_path):
    """``main()`` without argv (the console script) freezes the collector's objects when
    the command ends, whatever the exit code; ``main(argv)`` (in-process callers) does not."""
    code = (
        "import gc, sys\n"
        "from fmkit.cli import main\n"
        "sys.argv = ['fmkit', *sys.argv[1:]]\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert gc.get_freeze_count() == 0\n"
        "try:\n"
        "    main()\n"
        "    status = 0\n"
        "except SystemExit as exc:\n"
        "    status = exc.code or 0\n"
        "print('frozen', gc.get_freeze_count() > 0, 'status', status, file=sys.stderr)\n"
    )
    env = dict(os.environ, FMKIT_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    want = 0 if argv == ["--help"] else 2
    assert f"frozen True status {want}" in out.stderr
