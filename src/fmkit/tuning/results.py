"""What a tuning job returns: its trials and the best one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trial:
    """One finished trial."""

    number: int
    training_job: str
    status: str  # Completed | Stopped | Failed
    hyperparameters: dict[str, Any]  # the tuned values only
    objective_value: float | None
    metrics: dict[str, float]
    seconds: float
    failure_reason: str | None = None
    model_dir: str | None = None


@dataclass
class TuningResult:
    """What :meth:`~fmkit.tuning.Tuner.fit` returns.

    ``validation_fraction`` is the fraction of train held out as validation for pruning
    (None when a validation channel was given or nothing was pruned on).
    """

    name: str
    objective_metric: str
    direction: str
    status: str
    trials: list[Trial] = field(default_factory=list)
    best_trial: Trial | None = None
    model_name: str | None = None
    validation_fraction: float | None = None

    @property
    def best_hyperparameters(self) -> dict[str, Any]:
        """The tuned values of the best trial (empty when no trial produced a value)."""
        return dict(self.best_trial.hyperparameters) if self.best_trial else {}

    @property
    def best_value(self) -> float | None:
        return self.best_trial.objective_value if self.best_trial else None

    @property
    def best_model_dir(self) -> str | None:
        return self.best_trial.model_dir if self.best_trial else None
