"""The objective of a tuning job: ``<channel>:<metric>``, checked against the predictor type,
and its direction.

Channels say where a value is computed: ``test:*`` on the test channel after each trial
(SageMaker's objectives), ``validation:*`` on the validation channel after every epoch,
``train:*`` on the rows the trial trained on.
"""

from __future__ import annotations

from fmkit.errors import ConfigError
from fmkit.metrics import DIRECTIONS, metric_names

CHANNELS = ("test", "validation", "train")


def default_objective(predictor_type: str) -> str:
    """Return SageMaker's default objective for ``predictor_type``."""
    return "test:rmse" if predictor_type == "regressor" else \
        "test:binary_classification_accuracy"


def parse_objective(objective: str, predictor_type: str) -> tuple[str, str]:
    """Split ``'test:rmse'`` into (channel, metric) and check the predictor type emits it.

    Raises
    ------
    ConfigError
        Not ``<channel>:<metric>``, an unknown metric, or one ``predictor_type`` does not emit.
    """
    channel, sep, metric = str(objective).partition(":")
    emitted = metric_names(predictor_type)
    allowed = ", ".join(f"test:{m}" for m in emitted)
    if not sep or channel not in CHANNELS:
        raise ConfigError(
            f"objective metric {objective!r} is not '<channel>:<metric>' with channel test, "
            f"validation or train; for predictor_type={predictor_type!r} use one of {allowed}."
        )
    if metric not in DIRECTIONS:
        raise ConfigError(f"unknown objective metric {objective!r}; for predictor_type="
                          f"{predictor_type!r} use one of {allowed}.")
    if metric not in emitted:
        raise ConfigError(f"objective metric {objective!r} is not emitted by predictor_type="
                          f"{predictor_type!r}; it emits {allowed}.")
    return channel, metric


def resolve_direction(metric: str, direction: str | None) -> str:
    """Return 'minimize' or 'maximize': ``direction`` checked, or the metric's own."""
    if direction is None:
        return DIRECTIONS[metric]
    d = str(direction).strip().lower()
    if d not in ("minimize", "maximize"):
        raise ConfigError(f"direction must be 'minimize' or 'maximize'; got {direction!r}.")
    return d
