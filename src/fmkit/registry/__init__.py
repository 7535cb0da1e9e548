"""Records of training jobs, tuning jobs, models and endpoints, in SQLite under FMKIT_HOME.

>>> from fmkit.registry import Registry
>>> reg = Registry()                     # doctest: +SKIP
>>> # $FMKIT_HOME/registry.db, default ~/.fmkit
"""

from __future__ import annotations

from fmkit.registry.jobs import JobTracker, RegistryCallback
from fmkit.registry.records import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    Endpoint,
    Model,
    TrainingJob,
    TuningJob,
)
from fmkit.registry.store import Registry, open_registry

__all__ = [
    "COMPLETED", "FAILED", "IN_PROGRESS", "STOPPED", "STOPPING",
    "Endpoint", "JobTracker", "Model", "Registry", "RegistryCallback", "TrainingJob",
    "TuningJob", "open_registry",
]
