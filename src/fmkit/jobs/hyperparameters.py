"""Hyperparameters as front ends receive them: ``--name value`` pairs and SageMaker's
hyperparameters.json, merged and checked into an :class:`~fmkit.config.FMConfig`."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmkit.errors import ConfigError

if TYPE_CHECKING:
    from fmkit.config import FMConfig

DEFAULT_SETS = ("sagemaker", "fmkit")


def _closest(name: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean --{match[0].replace('_', '-')}?" if match else ";"


def parse_hyperparameter_args(args: Sequence[str]) -> dict[str, str]:
    """Turn ``--name value`` / ``--name=value`` pairs into {sagemaker_name: value}.

    Raises
    ------
    ConfigError
        An argument is not a known hyperparameter flag or has no value.
    """
    from fmkit.config import HYPERPARAMETERS

    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; hyperparameters are given as "
                              "--name value.")
        name, eq, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key not in HYPERPARAMETERS:
            hint = _closest(key, list(HYPERPARAMETERS))
            if hint != ";":
                raise ConfigError(f"unknown option or hyperparameter {arg.split('=')[0]!r}"
                                  f"{hint}")
            known = ", ".join("--" + k.replace("_", "-") for k in HYPERPARAMETERS)
            raise ConfigError(f"unknown option or hyperparameter {arg.split('=')[0]!r}; "
                              f"hyperparameters: {known} (docs/hyperparameters.md).")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"{arg} needs a value.")
            i += 1
            value = args[i]
        out[key] = value
        i += 1
    return out


def read_hyperparameters_file(path: str | Path) -> dict[str, Any]:
    """Read a SageMaker hyperparameters.json (a flat object of strings).

    Raises
    ------
    ConfigError
        The file cannot be read, is not JSON, or is not an object.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"--hyperparameters {p}: cannot read: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise ConfigError(f"--hyperparameters {p}: not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--hyperparameters {p}: expected a JSON object of "
                          "name -> value strings.")
    return data


def hyperparameter_values(hyperparameters: str | Path | None, args: Sequence[str],
                          defaults: str | None) -> tuple[dict[str, Any], str]:
    """Merge ``--hyperparameters FILE`` and the ``--name value`` flags (flags win); return
    them with the defaults to apply: ``defaults``, else 'sagemaker' with a file, else 'fmkit'."""
    values: dict[str, Any] = {}
    if hyperparameters is not None:
        values.update(read_hyperparameters_file(hyperparameters))
    values.update(parse_hyperparameter_args(args))
    chosen = defaults or ("sagemaker" if hyperparameters is not None else "fmkit")
    check_defaults(chosen)
    return values, chosen


def check_defaults(defaults: str) -> str:
    """Return ``defaults`` if it names a default set, else raise ConfigError."""
    if defaults not in DEFAULT_SETS:
        raise ConfigError(f"--defaults must be 'sagemaker' or 'fmkit'; got {defaults!r}.")
    return defaults


def make_config(values: Mapping[str, Any], defaults: str, *, required: Sequence[str] = ()
                ) -> FMConfig:
    """Return the :class:`~fmkit.config.FMConfig` of ``values`` over a default set.

    ``required`` names hyperparameters that must be given (SageMaker requires
    ``feature_dim``, ``num_factors`` and ``predictor_type``).

    Raises
    ------
    ConfigError
        A required hyperparameter is missing or a value is invalid.
    """
    from fmkit.config import FMConfig

    missing = [n for n in required if values.get(n) in (None, "")]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise ConfigError(f"No value(s) were specified for {names} which are required "
                          "hyperparameter(s).")
    return FMConfig.from_values(dict(values), defaults=check_defaults(defaults))  # type: ignore[arg-type]
