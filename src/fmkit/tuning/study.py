"""The Optuna study behind a tuning job: its sampler and pruner, and the defaults trial.

- ``bayesian``: multivariate TPE; its first ``min(10, max(2, max_jobs // 3))`` trials are
  random;
- ``random``: uniform sampling in each range's scale;
- ``hyperband``: TPE plus Hyperband pruning on the per-epoch objective (epochs are the
  resource);
- ``early_stopping='Auto'`` (bayesian, random): median pruning once three trials finished.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from fmkit.config import FMConfig
from fmkit.tuning.ranges import CategoricalParameter, ContinuousParameter, Parameter

STRATEGIES = ("bayesian", "random", "hyperband")


def needs_per_epoch_values(strategy: str, early_stopping: str) -> bool:
    """Whether the pruner needs an objective value after every epoch."""
    return strategy == "hyperband" or early_stopping == "Auto"


def create_study(*, strategy: str, early_stopping: str, direction: str, seed: int,
                 max_jobs: int, epochs: int) -> Any:
    """Return an Optuna study with the strategy's sampler and pruner.

    Parameters
    ----------
    strategy : {'bayesian', 'random', 'hyperband'}
    early_stopping : {'Off', 'Auto'}
    direction : {'minimize', 'maximize'}
    seed : int
        The sampler's seed.
    max_jobs : int
        Trials of the job (sets TPE's random start-up trials).
    epochs : int
        Epochs of one trial (Hyperband's largest resource).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if strategy == "random":
        sampler: Any = optuna.samplers.RandomSampler(seed=seed)
    else:
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=min(10, max(2, max_jobs // 3)), multivariate=True)
    if strategy == "hyperband":
        pruner: Any = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    elif early_stopping == "Auto":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)


def default_point(ranges: Mapping[str, Parameter], config: FMConfig) -> dict[str, Any]:
    """Return Optuna parameters placing each range at ``config``'s value, where it fits."""
    point: dict[str, Any] = {}
    for name, rng in ranges.items():
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(rng, CategoricalParameter):
            labels = [str(v) for v in rng.values]
            parsed = rng.parsed_values(name)
            if value in parsed:
                point[name] = labels[parsed.index(value)]
            continue
        if not rng.min_value <= value <= rng.max_value:
            continue
        if isinstance(rng, ContinuousParameter) and rng.scale() == "ReverseLogarithmic":
            point[f"{name}__reverse_log"] = 1.0 - float(value)
        else:
            point[name] = value
    return point
